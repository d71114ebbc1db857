// The generator's objects other than plain images (see Extra in testdata.hpp): each a minimal but
// well-formed instance of its IOD as a PACS would hold it, built with DCMTK (dcmsr's DSRDocument
// for the structured reports and the key object selection, dcmdata for the rest).
#include "testdata_detail.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmsr/dsrdoc.h>

#include <cstdio>
#include <stdexcept>
#include <vector>

namespace p2x::test {

const char* to_string(Extra extra) {
  switch (extra) {
    case Extra::DoseSR:
      return "dose SR";
    case Extra::ComprehensiveSR:
      return "comprehensive SR";
    case Extra::SecondaryCapture:
      return "secondary capture";
    case Extra::ScInImageSeries:
      return "secondary capture in an image series";
    case Extra::KeyObject:
      return "key object selection";
    case Extra::PresentationState:
      return "presentation state";
    case Extra::Pdf:
      return "encapsulated PDF";
    case Extra::RtStruct:
      return "RT structure set";
    case Extra::RtPlan:
      return "RT plan";
    case Extra::RtDose:
      return "RT dose";
    case Extra::CsaNonImage:
      return "Siemens CSA non-image";
  }
  return "?";
}

namespace detail {

namespace {

constexpr const char* kSiemensCsaNonImage = "1.3.12.2.1107.5.9.1";

void put_sequence_empty(DcmItem* ds, const DcmTagKey& tag) {
  check(ds->insertEmptyElement(tag), "empty " + DcmTag(tag).toString());
}

DcmItem* new_item(DcmItem* parent, const DcmTagKey& seq) {
  DcmItem* item = nullptr;
  check(parent->findOrCreateSequenceItem(seq, item, -2), "item of " + DcmTag(seq).toString());
  return item;
}

void put_u16(DcmItem* ds, const DcmTagKey& tag, Uint16 v) {
  check(ds->putAndInsertUint16(tag, v), "put " + DcmTag(tag).toString());
}

// SOP Common, Patient, Study, Series and instance attributes of an extra object.
void put_identity(DcmItem* ds, const ExtraArgs& a, const char* sop_class) {
  put(ds, DCM_SOPClassUID, sop_class);
  put(ds, DCM_SOPInstanceUID, a.sop_uid);
  put_common(ds, a.st);
  put_series(ds, a.st, a.series_uid, a.series_number, a.modality, a.description);
  put(ds, DCM_InstanceNumber, std::to_string(a.instance_number));
  put(ds, DCM_ContentDate, a.st.spec.study_date);
  put(ds, DCM_ContentTime, a.st.study_time);
  put(ds, DCM_InstanceCreationDate, a.st.spec.study_date);
  put(ds, DCM_InstanceCreationTime, a.st.study_time);
}

GeneratedFile saved(DcmFileFormat& ff, const ExtraArgs& a, const char* sop_class) {
  save(ff, a.path, EXS_LittleEndianExplicit);
  return GeneratedFile{a.path, a.sop_uid, sop_class, UID_LittleEndianExplicitTransferSyntax,
                       a.series_uid};
}

// --- structured reports (dcmsr) ------------------------------------------------------------

DSRCodedEntryValue code(const char* value, const char* scheme, const char* meaning) {
  return DSRCodedEntryValue(value, scheme, meaning);
}

void add(DSRDocumentTree& tree, bool child, DSRTypes::E_RelationshipType rel,
         DSRTypes::E_ValueType type, const DSRCodedEntryValue& concept) {
  const OFCondition c = child ? tree.addChildContentItem(rel, type, concept)
                              : tree.addContentItem(rel, type, concept);
  check(c, std::string("SR content item ") + concept.getCodeMeaning().c_str());
}

void set_num(DSRDocumentTree& tree, const char* value, const char* unit) {
  check(tree.getCurrentContentItem().setNumericValue(
            DSRNumericMeasurementValue(value, code(unit, "UCUM", unit))),
        "SR numeric value");
}

// The document written with the study's identity (DSRDocument makes its own UIDs and times).
GeneratedFile write_sr(DSRDocument& doc, const ExtraArgs& a, const char* sop_class) {
  // Enhanced General Equipment (type 1 in the dose SR), as the device that made it.
  check(doc.setManufacturer("P2X Synthetic"), "SR manufacturer");
  check(doc.setManufacturerModelName("P2X Scanner"), "SR model");
  check(doc.setDeviceSerialNumber("0001"), "SR serial number");
  check(doc.setSoftwareVersions("1.0"), "SR software versions");
  if (doc.getDocumentType() != DSRTypes::DT_KeyObjectSelectionDocument)
    check(doc.completeDocument(), "SR completion");
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  check(doc.write(*ds), std::string("write SR document ") + dcmFindNameOfUID(sop_class, sop_class));
  put_identity(ds, a, sop_class);
  return saved(ff, a, sop_class);
}

// X-Ray Radiation Dose SR: the outline of a CT dose report (TID 10011), as a CT scanner files it.
GeneratedFile write_dose_sr(const ExtraArgs& a) {
  DSRDocument doc(DSRTypes::DT_XRayRadiationDoseSR);
  DSRDocumentTree& tree = doc.getTree();
  check(tree.addContentItem(DSRTypes::RT_isRoot, DSRTypes::VT_Container) > 0 ? EC_Normal
                                                                             : EC_IllegalCall,
        "SR root");
  tree.getCurrentContentItem().setConceptName(code("113701", "DCM", "X-Ray Radiation Dose Report"));
  tree.getCurrentContentItem().setTemplateIdentification("10011", "DCMR");
  add(tree, true, DSRTypes::RT_hasConceptMod, DSRTypes::VT_Code,
      code("121058", "DCM", "Procedure reported"));
  tree.getCurrentContentItem().setCodeValue(code("P5-08000", "SRT", "Computed Tomography X-Ray"));
  add(tree, false, DSRTypes::RT_hasObsContext, DSRTypes::VT_Code,
      code("121005", "DCM", "Observer Type"));
  tree.getCurrentContentItem().setCodeValue(code("121007", "DCM", "Device"));
  add(tree, false, DSRTypes::RT_hasObsContext, DSRTypes::VT_UIDRef,
      code("121012", "DCM", "Device Observer UID"));
  tree.getCurrentContentItem().setStringValue(make_uid(a.st.study_uid + "|device", a.st.seed));
  add(tree, false, DSRTypes::RT_contains, DSRTypes::VT_Container,
      code("113811", "DCM", "CT Accumulated Dose Data"));
  add(tree, true, DSRTypes::RT_contains, DSRTypes::VT_Num,
      code("113812", "DCM", "Total Number of Irradiation Events"));
  set_num(tree, "1", "{events}");
  add(tree, false, DSRTypes::RT_contains, DSRTypes::VT_Num,
      code("113813", "DCM", "CT Dose Length Product Total"));
  set_num(tree, "432.1", "mGy.cm");
  tree.goUp();
  add(tree, false, DSRTypes::RT_contains, DSRTypes::VT_Container,
      code("113819", "DCM", "CT Acquisition"));
  add(tree, true, DSRTypes::RT_contains, DSRTypes::VT_Text,
      code("125203", "DCM", "Acquisition Protocol"));
  tree.getCurrentContentItem().setStringValue("Head routine");
  add(tree, false, DSRTypes::RT_contains, DSRTypes::VT_UIDRef,
      code("113769", "DCM", "Irradiation Event UID"));
  tree.getCurrentContentItem().setStringValue(make_uid(a.st.study_uid + "|event", a.st.seed));
  add(tree, false, DSRTypes::RT_contains, DSRTypes::VT_Container, code("113829", "DCM", "CT Dose"));
  add(tree, true, DSRTypes::RT_contains, DSRTypes::VT_Num, code("113830", "DCM", "Mean CTDIvol"));
  set_num(tree, "45.2", "mGy");
  add(tree, false, DSRTypes::RT_contains, DSRTypes::VT_Num, code("113838", "DCM", "DLP"));
  set_num(tree, "432.1", "mGy.cm");
  return write_sr(doc, a, UID_XRayRadiationDoseSRStorage);
}

// The first `n` images of the referenced series, as SR image references (and their evidence).
void add_image_refs(DSRDocument& doc, const ExtraArgs& a, std::size_t n, bool child,
                    const DSRCodedEntryValue* concept) {
  DSRDocumentTree& tree = doc.getTree();
  for (std::size_t i = 0; i < a.images.files.size() && i < n; ++i) {
    const GeneratedFile& f = a.images.files[i];
    const bool below = child && i == 0;
    if (concept != nullptr) {
      add(tree, below, DSRTypes::RT_contains, DSRTypes::VT_Image, *concept);
    } else {
      check(tree.addContentItem(DSRTypes::RT_contains, DSRTypes::VT_Image,
                                below ? DSRTypes::AM_belowCurrent : DSRTypes::AM_afterCurrent) > 0
                ? EC_Normal
                : EC_IllegalCall,
            "SR image item");
    }
    check(tree.getCurrentContentItem().setImageReference(
              DSRImageReferenceValue(f.sop_class, f.sop_uid)),
          "SR image reference");
    check(doc.getCurrentRequestedProcedureEvidence().addItem(a.st.study_uid, a.images.uid,
                                                             f.sop_class, f.sop_uid),
          "SR evidence");
  }
}

// Comprehensive SR: a short report with one finding and the image that shows it.
GeneratedFile write_comprehensive_sr(const ExtraArgs& a) {
  DSRDocument doc(DSRTypes::DT_ComprehensiveSR);
  DSRDocumentTree& tree = doc.getTree();
  check(tree.addContentItem(DSRTypes::RT_isRoot, DSRTypes::VT_Container) > 0 ? EC_Normal
                                                                             : EC_IllegalCall,
        "SR root");
  tree.getCurrentContentItem().setConceptName(code("18748-4", "LN", "Diagnostic Imaging Report"));
  add(tree, true, DSRTypes::RT_hasObsContext, DSRTypes::VT_PName,
      code("121008", "DCM", "Person Observer Name"));
  tree.getCurrentContentItem().setStringValue("P2X^Reader");
  add(tree, false, DSRTypes::RT_contains, DSRTypes::VT_Container,
      code("121070", "DCM", "Findings"));
  add(tree, true, DSRTypes::RT_contains, DSRTypes::VT_Text, code("121071", "DCM", "Finding"));
  tree.getCurrentContentItem().setStringValue("No acute intracranial abnormality.");
  const DSRCodedEntryValue best = code("121080", "DCM", "Best illustration of finding");
  add_image_refs(doc, a, 1, false, &best);
  return write_sr(doc, a, UID_ComprehensiveSRStorage);
}

// Key Object Selection: "Of Interest" with a description and two images of series 1.
GeneratedFile write_key_object(const ExtraArgs& a) {
  DSRDocument doc(DSRTypes::DT_KeyObjectSelectionDocument);
  DSRDocumentTree& tree = doc.getTree();
  check(tree.addContentItem(DSRTypes::RT_isRoot, DSRTypes::VT_Container) > 0 ? EC_Normal
                                                                             : EC_IllegalCall,
        "KO root");
  tree.getCurrentContentItem().setConceptName(code("113000", "DCM", "Of Interest"));
  tree.getCurrentContentItem().setTemplateIdentification("2010", "DCMR");
  add(tree, true, DSRTypes::RT_contains, DSRTypes::VT_Text,
      code("113012", "DCM", "Key Object Description"));
  tree.getCurrentContentItem().setStringValue("Images of interest");
  add_image_refs(doc, a, 2, false, nullptr);
  return write_sr(doc, a, UID_KeyObjectSelectionDocumentStorage);
}

// --- images that are not the study's own ----------------------------------------------------

// Secondary Capture: an RGB dose screen in its own series, or a monochrome page inside an image
// series (then of that series' modality).
GeneratedFile write_secondary_capture(const ExtraArgs& a, bool rgb) {
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  put_identity(ds, a, UID_SecondaryCaptureImageStorage);
  put(ds, DCM_ConversionType, "WSD");
  put(ds, DCM_ImageType, "DERIVED\\SECONDARY");
  put(ds, DCM_PatientOrientation, "");
  put(ds, DCM_BurnedInAnnotation, "YES");
  put(ds, DCM_DateOfSecondaryCapture, a.st.spec.study_date);
  const Uint16 size = 64, samples = rgb ? 3 : 1;
  put_u16(ds, DCM_SamplesPerPixel, samples);
  put(ds, DCM_PhotometricInterpretation, rgb ? "RGB" : "MONOCHROME2");
  if (rgb) put_u16(ds, DCM_PlanarConfiguration, 0);
  put_u16(ds, DCM_Rows, size);
  put_u16(ds, DCM_Columns, size);
  put_u16(ds, DCM_BitsAllocated, 8);
  put_u16(ds, DCM_BitsStored, 8);
  put_u16(ds, DCM_HighBit, 7);
  put_u16(ds, DCM_PixelRepresentation, 0);
  std::vector<Uint8> px(std::size_t(size) * size * samples);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = Uint8((i * 7 + a.instance_number) & 0xff);
  check(ds->putAndInsertUint8Array(DCM_PixelData, px.data(), Uint32(px.size())), "SC pixels");
  return saved(ff, a, UID_SecondaryCaptureImageStorage);
}

// Grayscale Softcopy Presentation State on every image of series 1.
GeneratedFile write_presentation_state(const ExtraArgs& a) {
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  const char* cls = UID_GrayscaleSoftcopyPresentationStateStorage;
  put_identity(ds, a, cls);
  put(ds, DCM_ContentLabel, "P2X_PS");
  put(ds, DCM_ContentDescription, "Synthetic presentation state");
  put(ds, DCM_ContentCreatorName, "P2X^Generator");
  put(ds, DCM_PresentationCreationDate, a.st.spec.study_date);
  put(ds, DCM_PresentationCreationTime, a.st.study_time);
  put(ds, DCM_PresentationLUTShape, "IDENTITY");
  DcmItem* ser = new_item(ds, DCM_ReferencedSeriesSequence);
  put(ser, DCM_SeriesInstanceUID, a.images.uid);
  for (const auto& f : a.images.files) {
    DcmItem* img = new_item(ser, DCM_ReferencedImageSequence);
    put(img, DCM_ReferencedSOPClassUID, f.sop_class);
    put(img, DCM_ReferencedSOPInstanceUID, f.sop_uid);
  }
  DcmItem* area = new_item(ds, DCM_DisplayedAreaSelectionSequence);
  put(area, DCM_DisplayedAreaTopLeftHandCorner, "1\\1");
  put(area, DCM_DisplayedAreaBottomRightHandCorner,
      std::to_string(a.st.spec.cols) + "\\" + std::to_string(a.st.spec.rows));
  put(area, DCM_PresentationSizeMode, "SCALE TO FIT");
  return saved(ff, a, cls);
}

// --- encapsulated PDF -------------------------------------------------------------------------

// A one-page PDF 1.4 document with a correct cross-reference table.
std::string tiny_pdf(const std::string& text) {
  const std::string content = "BT /F1 12 Tf 20 50 Td (" + text + ") Tj ET\n";
  const std::vector<std::string> objects = {
      "<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
      "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents 4 0 R "
      "/Resources << /Font << /F1 5 0 R >> >> >>",
      "<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content + "endstream",
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"};
  std::string pdf = "%PDF-1.4\n";
  std::vector<std::size_t> offsets;
  for (std::size_t i = 0; i < objects.size(); ++i) {
    offsets.push_back(pdf.size());
    pdf += std::to_string(i + 1) + " 0 obj\n" + objects[i] + "\nendobj\n";
  }
  const std::size_t xref = pdf.size();
  pdf += "xref\n0 " + std::to_string(objects.size() + 1) + "\n0000000000 65535 f \n";
  for (std::size_t off : offsets) {
    char line[24];
    std::snprintf(line, sizeof line, "%010zu 00000 n \n", off);
    pdf += line;
  }
  pdf += "trailer\n<< /Size " + std::to_string(objects.size() + 1) +
         " /Root 1 0 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
  return pdf;
}

GeneratedFile write_pdf(const ExtraArgs& a) {
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  const char* cls = UID_EncapsulatedPDFStorage;
  put_identity(ds, a, cls);
  put(ds, DCM_ConversionType, "WSD");
  put(ds, DCM_AcquisitionDateTime, a.st.spec.study_date + a.st.study_time);
  put(ds, DCM_BurnedInAnnotation, "YES");
  put(ds, DCM_DocumentTitle, "Dose report");
  put_sequence_empty(ds, DCM_ConceptNameCodeSequence);
  put(ds, DCM_MIMETypeOfEncapsulatedDocument, "application/pdf");
  std::string pdf = tiny_pdf("P2X synthetic report " + a.st.spec.accession);
  check(ds->putAndInsertUint32(DCM_EncapsulatedDocumentLength, Uint32(pdf.size())), "PDF length");
  if (pdf.size() % 2 != 0) pdf.push_back('\0');  // OB values have even length
  check(ds->putAndInsertUint8Array(DCM_EncapsulatedDocument,
                                   reinterpret_cast<const Uint8*>(pdf.data()), Uint32(pdf.size())),
        "encapsulated document");
  return saved(ff, a, cls);
}

// --- radiotherapy -----------------------------------------------------------------------------

void put_rt_series(DcmItem* ds) {
  put(ds, DCM_OperatorsName, "");
  put(ds, DCM_ApprovalStatus, "UNAPPROVED");
}

// Structure Set module's references: the frame of reference, study, series and contour images.
void put_structure_refs(DcmItem* ds, const ExtraArgs& a) {
  DcmItem* frame = new_item(ds, DCM_ReferencedFrameOfReferenceSequence);
  put(frame, DCM_FrameOfReferenceUID, a.st.frame_of_ref);
  DcmItem* study = new_item(frame, DCM_RTReferencedStudySequence);
  put(study, DCM_ReferencedSOPClassUID, UID_RETIRED_DetachedStudyManagementSOPClass);
  put(study, DCM_ReferencedSOPInstanceUID, a.st.study_uid);
  DcmItem* series = new_item(study, DCM_RTReferencedSeriesSequence);
  put(series, DCM_SeriesInstanceUID, a.images.uid);
  for (const auto& f : a.images.files) {
    DcmItem* img = new_item(series, DCM_ContourImageSequence);
    put(img, DCM_ReferencedSOPClassUID, f.sop_class);
    put(img, DCM_ReferencedSOPInstanceUID, f.sop_uid);
  }
}

GeneratedFile write_rt_struct(const ExtraArgs& a) {
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  const char* cls = UID_RTStructureSetStorage;
  put_identity(ds, a, cls);
  put_rt_series(ds);
  put(ds, DCM_StructureSetLabel, "P2X_SS");
  put(ds, DCM_StructureSetDate, a.st.spec.study_date);
  put(ds, DCM_StructureSetTime, a.st.study_time);
  put_structure_refs(ds, a);
  DcmItem* roi = new_item(ds, DCM_StructureSetROISequence);
  put(roi, DCM_ROINumber, "1");
  put(roi, DCM_ReferencedFrameOfReferenceUID, a.st.frame_of_ref);
  put(roi, DCM_ROIName, "PTV");
  put(roi, DCM_ROIGenerationAlgorithm, "MANUAL");
  DcmItem* contour_roi = new_item(ds, DCM_ROIContourSequence);
  put(contour_roi, DCM_ReferencedROINumber, "1");
  put(contour_roi, DCM_ROIDisplayColor, "255\\0\\0");
  const GeneratedFile& on = a.images.files.front();
  DcmItem* contour = new_item(contour_roi, DCM_ContourSequence);
  DcmItem* img = new_item(contour, DCM_ContourImageSequence);
  put(img, DCM_ReferencedSOPClassUID, on.sop_class);
  put(img, DCM_ReferencedSOPInstanceUID, on.sop_uid);
  put(contour, DCM_ContourGeometricType, "CLOSED_PLANAR");
  put(contour, DCM_NumberOfContourPoints, "4");
  put(contour, DCM_ContourData, "10\\10\\2\\40\\10\\2\\40\\40\\2\\10\\40\\2");
  DcmItem* obs = new_item(ds, DCM_RTROIObservationsSequence);
  put(obs, DCM_ObservationNumber, "1");
  put(obs, DCM_ReferencedROINumber, "1");
  put(obs, DCM_RTROIInterpretedType, "PTV");
  put(obs, DCM_ROIInterpreter, "");
  return saved(ff, a, cls);
}

// One control point of the beam (the first carries the machine settings).
void put_control_point(DcmItem* beam, int index) {
  DcmItem* cp = new_item(beam, DCM_ControlPointSequence);
  put(cp, DCM_ControlPointIndex, std::to_string(index));
  put(cp, DCM_CumulativeMetersetWeight, index == 0 ? "0" : "1");
  if (index != 0) return;
  put(cp, DCM_NominalBeamEnergy, "6");
  put(cp, DCM_GantryAngle, "0");
  put(cp, DCM_GantryRotationDirection, "NONE");
  put(cp, DCM_BeamLimitingDeviceAngle, "0");
  put(cp, DCM_BeamLimitingDeviceRotationDirection, "NONE");
  put(cp, DCM_PatientSupportAngle, "0");
  put(cp, DCM_PatientSupportRotationDirection, "NONE");
  put(cp, DCM_TableTopEccentricAngle, "0");
  put(cp, DCM_TableTopEccentricRotationDirection, "NONE");
  put(cp, DCM_IsocenterPosition, "25\\25\\2");
  for (const char* jaw : {"ASYMX", "ASYMY"}) {
    DcmItem* pos = new_item(cp, DCM_BeamLimitingDevicePositionSequence);
    put(pos, DCM_RTBeamLimitingDeviceType, jaw);
    put(pos, DCM_LeafJawPositions, "-50\\50");
  }
}

// RT Beams module: one static 6 MV photon beam with two control points.
void put_beam(DcmItem* ds) {
  DcmItem* beam = new_item(ds, DCM_BeamSequence);
  put(beam, DCM_BeamNumber, "1");
  put(beam, DCM_BeamName, "AP");
  put(beam, DCM_BeamType, "STATIC");
  put(beam, DCM_RadiationType, "PHOTON");
  put(beam, DCM_TreatmentMachineName, "P2X_LINAC");
  put(beam, DCM_PrimaryDosimeterUnit, "MU");
  put(beam, DCM_SourceAxisDistance, "1000");
  for (const char* jaw : {"ASYMX", "ASYMY"}) {
    DcmItem* dev = new_item(beam, DCM_BeamLimitingDeviceSequence);
    put(dev, DCM_RTBeamLimitingDeviceType, jaw);
    put(dev, DCM_NumberOfLeafJawPairs, "1");
  }
  put(beam, DCM_TreatmentDeliveryType, "TREATMENT");
  put(beam, DCM_NumberOfWedges, "0");
  put(beam, DCM_NumberOfCompensators, "0");
  put(beam, DCM_NumberOfBoli, "0");
  put(beam, DCM_NumberOfBlocks, "0");
  put(beam, DCM_FinalCumulativeMetersetWeight, "1");
  put(beam, DCM_NumberOfControlPoints, "2");
  put(beam, DCM_ReferencedPatientSetupNumber, "1");
  put_control_point(beam, 0);
  put_control_point(beam, 1);
}

GeneratedFile write_rt_plan(const ExtraArgs& a) {
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  const char* cls = UID_RTPlanStorage;
  put_identity(ds, a, cls);
  put_rt_series(ds);
  put(ds, DCM_FrameOfReferenceUID, a.st.frame_of_ref);
  put(ds, DCM_PositionReferenceIndicator, "");
  put(ds, DCM_RTPlanLabel, "P2X_PLAN");
  put(ds, DCM_RTPlanDate, a.st.spec.study_date);
  put(ds, DCM_RTPlanTime, a.st.study_time);
  put(ds, DCM_RTPlanGeometry, "PATIENT");
  DcmItem* ss = new_item(ds, DCM_ReferencedStructureSetSequence);
  put(ss, DCM_ReferencedSOPClassUID, UID_RTStructureSetStorage);
  put(ss, DCM_ReferencedSOPInstanceUID, extra_sop_uid(a.st, Extra::RtStruct));
  DcmItem* setup = new_item(ds, DCM_PatientSetupSequence);
  put(setup, DCM_PatientSetupNumber, "1");
  put(setup, DCM_PatientPosition, "HFS");
  DcmItem* group = new_item(ds, DCM_FractionGroupSequence);
  put(group, DCM_FractionGroupNumber, "1");
  put(group, DCM_NumberOfFractionsPlanned, "25");
  put(group, DCM_NumberOfBeams, "1");
  put(group, DCM_NumberOfBrachyApplicationSetups, "0");
  DcmItem* ref = new_item(group, DCM_ReferencedBeamSequence);
  put(ref, DCM_ReferencedBeamNumber, "1");
  put(ref, DCM_BeamMeterset, "200");
  put_beam(ds);
  return saved(ff, a, cls);
}

// RT Dose: a 16x16 dose grid of 3 frames (multi-frame, GridFrameOffsetVector) for the plan.
GeneratedFile write_rt_dose(const ExtraArgs& a) {
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  const char* cls = UID_RTDoseStorage;
  put_identity(ds, a, cls);
  put_rt_series(ds);
  put(ds, DCM_FrameOfReferenceUID, a.st.frame_of_ref);
  put(ds, DCM_PositionReferenceIndicator, "");
  put(ds, DCM_PixelSpacing, "4\\4");
  put(ds, DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
  put(ds, DCM_ImagePositionPatient, "0\\0\\0");
  put(ds, DCM_SliceThickness, "");
  const Uint16 size = 16, frames = 3;
  put(ds, DCM_NumberOfFrames, std::to_string(frames));
  check(ds->putAndInsertTagKey(DCM_FrameIncrementPointer, DCM_GridFrameOffsetVector), "frame ptr");
  put(ds, DCM_GridFrameOffsetVector, "0\\2\\4");
  put_u16(ds, DCM_SamplesPerPixel, 1);
  put(ds, DCM_PhotometricInterpretation, "MONOCHROME2");
  put_u16(ds, DCM_Rows, size);
  put_u16(ds, DCM_Columns, size);
  put_u16(ds, DCM_BitsAllocated, 16);
  put_u16(ds, DCM_BitsStored, 16);
  put_u16(ds, DCM_HighBit, 15);
  put_u16(ds, DCM_PixelRepresentation, 0);
  put(ds, DCM_DoseUnits, "GY");
  put(ds, DCM_DoseType, "PHYSICAL");
  put(ds, DCM_DoseSummationType, "PLAN");
  put(ds, DCM_DoseGridScaling, "0.001");
  DcmItem* plan = new_item(ds, DCM_ReferencedRTPlanSequence);
  put(plan, DCM_ReferencedSOPClassUID, UID_RTPlanStorage);
  put(plan, DCM_ReferencedSOPInstanceUID, extra_sop_uid(a.st, Extra::RtPlan));
  std::vector<Uint16> dose(std::size_t(size) * size * frames);
  for (std::size_t i = 0; i < dose.size(); ++i) dose[i] = Uint16(1000 + (i * 37) % 2000);
  check(ds->putAndInsertUint16Array(DCM_PixelData, dose.data(), Uint32(dose.size())), "dose grid");
  return saved(ff, a, cls);
}

// --- private ------------------------------------------------------------------------------------

// Siemens CSA Non-Image: a private SOP class carrying its payload in private elements, no pixels.
GeneratedFile write_csa_non_image(const ExtraArgs& a) {
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  put_identity(ds, a, kSiemensCsaNonImage);
  put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\SPECTROSCOPY\\NONE");
  const char* creator = "SIEMENS CSA NON-IMAGE";
  check(ds->putAndInsertString(DcmTag(0x0029, 0x0010, EVR_LO), creator), "CSA creator");
  check(ds->putAndInsertString(DcmTag(0x0029, 0x1008, EVR_CS), "SPEC NUM 4"), "CSA data type");
  check(ds->putAndInsertString(DcmTag(0x0029, 0x1009, EVR_LO), "P2X 1.0"), "CSA data version");
  check(ds->putAndInsertString(DcmTag(0x7fe1, 0x0010, EVR_LO), creator), "CSA data creator");
  std::vector<Uint8> blob(1024);
  for (std::size_t i = 0; i < blob.size(); ++i) blob[i] = Uint8((i * 13 + 5) & 0xff);
  check(
      ds->putAndInsertUint8Array(DcmTag(0x7fe1, 0x1010, EVR_OB), blob.data(), Uint32(blob.size())),
      "CSA data");
  return saved(ff, a, kSiemensCsaNonImage);
}

}  // namespace

ExtraKind kind_of(Extra extra) {
  switch (extra) {
    case Extra::DoseSR:
      return {UID_XRayRadiationDoseSRStorage, "SR", "Dose Report"};
    case Extra::ComprehensiveSR:
      return {UID_ComprehensiveSRStorage, "SR", "Radiology Report"};
    case Extra::SecondaryCapture:
      return {UID_SecondaryCaptureImageStorage, "OT", "Dose Screen"};
    case Extra::ScInImageSeries:
      return {UID_SecondaryCaptureImageStorage, "", ""};
    case Extra::KeyObject:
      return {UID_KeyObjectSelectionDocumentStorage, "KO", "Key Images"};
    case Extra::PresentationState:
      return {UID_GrayscaleSoftcopyPresentationStateStorage, "PR", "Presentation State"};
    case Extra::Pdf:
      return {UID_EncapsulatedPDFStorage, "DOC", "PDF Report"};
    case Extra::RtStruct:
      return {UID_RTStructureSetStorage, "RTSTRUCT", "Structure Set"};
    case Extra::RtPlan:
      return {UID_RTPlanStorage, "RTPLAN", "Treatment Plan"};
    case Extra::RtDose:
      return {UID_RTDoseStorage, "RTDOSE", "Plan Dose"};
    case Extra::CsaNonImage:
      return {kSiemensCsaNonImage, "", "CSA Non-Image"};
  }
  throw std::invalid_argument("testdata: unknown extra object");
}

std::string extra_series_uid(const StudyCtx& st, Extra extra) {
  // The presentation state keeps the key it had before extras existed.
  if (extra == Extra::PresentationState) return make_uid(st.study_uid + "|pr", st.seed);
  return make_uid(st.study_uid + "|extra|" + to_string(extra), st.seed);
}

std::string extra_sop_uid(const StudyCtx& st, Extra extra) {
  return make_uid(extra_series_uid(st, extra) + "|inst|1", st.seed);
}

GeneratedFile write_extra(Extra extra, const ExtraArgs& a) {
  if (a.images.files.empty()) throw std::invalid_argument("testdata: extras need image series 1");
  switch (extra) {
    case Extra::DoseSR:
      return write_dose_sr(a);
    case Extra::ComprehensiveSR:
      return write_comprehensive_sr(a);
    case Extra::SecondaryCapture:
      return write_secondary_capture(a, true);
    case Extra::ScInImageSeries:
      return write_secondary_capture(a, false);
    case Extra::KeyObject:
      return write_key_object(a);
    case Extra::PresentationState:
      return write_presentation_state(a);
    case Extra::Pdf:
      return write_pdf(a);
    case Extra::RtStruct:
      return write_rt_struct(a);
    case Extra::RtPlan:
      return write_rt_plan(a);
    case Extra::RtDose:
      return write_rt_dose(a);
    case Extra::CsaNonImage:
      return write_csa_non_image(a);
  }
  throw std::invalid_argument("testdata: unknown extra object");
}

}  // namespace detail

}  // namespace p2x::test
