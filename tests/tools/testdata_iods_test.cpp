// The generator's objects of other SOP classes (testdata.hpp Extra, testdata_iods.cpp): each is
// a well-formed instance of its IOD — the SOP class, modality and series a PACS would file it
// under, pixel data only where the IOD has it, the structured reports readable and valid for
// DCMTK's dcmsr, the PDF a PDF, the RT objects referring to each other, the multi-frame objects
// with their frames.
#include "support/temp_dir.hpp"
#include "support/testdata.hpp"

#include <catch2/catch.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmsr/dsrdoc.h>

#include <map>
#include <set>
#include <string>

using namespace p2x::test;

namespace {

std::string str_of(DcmItem* item, const DcmTagKey& key) {
  OFString v;
  item->findAndGetOFStringArray(key, v);
  return v.c_str();
}

struct Loaded {
  DcmFileFormat ff;
  DcmDataset* ds = nullptr;
  explicit Loaded(const std::string& path) {
    REQUIRE(ff.loadFile(path.c_str()).good());
    ds = ff.getDataset();
  }
};

// Every file of the studies by SOP class.
std::map<std::string, std::vector<std::pair<const GeneratedSeries*, const GeneratedFile*>>>
by_class(const std::vector<GeneratedStudy>& studies) {
  std::map<std::string, std::vector<std::pair<const GeneratedSeries*, const GeneratedFile*>>> out;
  for (const auto& st : studies)
    for (const auto& se : st.series)
      for (const auto& f : se.files) out[f.sop_class].push_back({&se, &f});
  return out;
}

const char* const kCsa = "1.3.12.2.1107.5.9.1";

}  // namespace

TEST_CASE("the SOP class corpus holds every class real studies carry, each as its IOD",
          "[generator]") {
  TempDir tmp("p2x-gen-iods");
  const auto studies = generate(sop_class_corpus("IOD"), tmp.file("data"), 3);
  REQUIRE(studies.size() == 3);
  const auto classes = by_class(studies);
  // class -> modality a PACS files it under
  const std::map<std::string, std::string> want = {
      {UID_CTImageStorage, "CT"},
      {UID_XRayRadiationDoseSRStorage, "SR"},
      {UID_ComprehensiveSRStorage, "SR"},
      {UID_KeyObjectSelectionDocumentStorage, "KO"},
      {UID_GrayscaleSoftcopyPresentationStateStorage, "PR"},
      {UID_EncapsulatedPDFStorage, "DOC"},
      {UID_RTStructureSetStorage, "RTSTRUCT"},
      {UID_RTPlanStorage, "RTPLAN"},
      {UID_RTDoseStorage, "RTDOSE"},
      {UID_EnhancedMRImageStorage, "MR"},
      {kCsa, "MR"},
  };
  for (const auto& [cls, modality] : want) {
    INFO(cls);
    REQUIRE(classes.count(cls) == 1);
    for (const auto& [series, file] : classes.at(cls)) {
      Loaded l(file->path);
      CHECK(str_of(l.ds, DCM_SOPClassUID) == cls);
      CHECK(str_of(l.ff.getMetaInfo(), DCM_MediaStorageSOPClassUID) == cls);
      CHECK(str_of(l.ds, DCM_Modality) == modality);
      CHECK(series->modality == modality);
      CHECK(str_of(l.ds, DCM_SeriesInstanceUID) == series->uid);
    }
  }
  // Secondary Capture twice: a dose screen (OT, RGB) in a series of its own, and one inside the
  // CT series (mixed SOP classes in one series), of modality CT.
  REQUIRE(classes.at(UID_SecondaryCaptureImageStorage).size() == 2);
  std::set<std::string> sc_modalities;
  for (const auto& [series, file] : classes.at(UID_SecondaryCaptureImageStorage)) {
    Loaded l(file->path);
    sc_modalities.insert(str_of(l.ds, DCM_Modality));
    CHECK(str_of(l.ds, DCM_ConversionType) == "WSD");
    CHECK(l.ds->tagExists(DCM_PixelData));
    if (str_of(l.ds, DCM_Modality) == "CT") {
      std::set<std::string> in_series;
      for (const auto& f : series->files) in_series.insert(f.sop_class);
      CHECK(in_series ==
            std::set<std::string>{UID_CTImageStorage, UID_SecondaryCaptureImageStorage});
    } else {
      CHECK(series->files.size() == 1);
      CHECK(str_of(l.ds, DCM_PhotometricInterpretation) == "RGB");
    }
  }
  CHECK(sc_modalities == std::set<std::string>{"CT", "OT"});
}

TEST_CASE("pixel data only where the IOD has it - multi-frame objects carry NumberOfFrames",
          "[generator]") {
  TempDir tmp("p2x-gen-iods");
  const auto studies = generate(sop_class_corpus("PIX"), tmp.file("data"), 3);
  const std::set<std::string> with_pixels = {UID_CTImageStorage, UID_SecondaryCaptureImageStorage,
                                             UID_RTDoseStorage, UID_EnhancedMRImageStorage};
  for (const auto& [cls, files] : by_class(studies)) {
    for (const auto& [series, file] : files) {
      INFO(cls << " " << file->path);
      Loaded l(file->path);
      CHECK(l.ds->tagExists(DCM_PixelData) == (with_pixels.count(cls) == 1));
      if (cls == UID_EnhancedMRImageStorage) {
        CHECK(str_of(l.ds, DCM_NumberOfFrames) == "3");
        DcmSequenceOfItems* frames = nullptr;
        REQUIRE(l.ds->findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, frames).good());
        CHECK(frames->card() == 3);
        CHECK(l.ds->tagExists(DCM_SharedFunctionalGroupsSequence));
        CHECK(l.ds->tagExists(DCM_DimensionIndexSequence));
      }
      if (cls == UID_RTDoseStorage) {
        CHECK(str_of(l.ds, DCM_NumberOfFrames) == "3");
        CHECK(str_of(l.ds, DCM_GridFrameOffsetVector) == "0\\2\\4");
        CHECK(str_of(l.ds, DCM_DoseUnits) == "GY");
      }
    }
  }
}

TEST_CASE("the reports and the key object selection are valid dcmsr documents", "[generator]") {
  TempDir tmp("p2x-gen-iods");
  const auto studies =
      generate({ct_with_dose_objects("SR1", "SRP1", "20240301")}, tmp.file("data"));
  const auto classes = by_class(studies);
  const std::map<std::string, DSRTypes::E_DocumentType> docs = {
      {UID_XRayRadiationDoseSRStorage, DSRTypes::DT_XRayRadiationDoseSR},
      {UID_ComprehensiveSRStorage, DSRTypes::DT_ComprehensiveSR},
      {UID_KeyObjectSelectionDocumentStorage, DSRTypes::DT_KeyObjectSelectionDocument}};
  for (const auto& [cls, type] : docs) {
    INFO(cls);
    REQUIRE(classes.count(cls) == 1);
    Loaded l(classes.at(cls).front().second->path);
    DSRDocument doc;
    REQUIRE(doc.read(*l.ds).good());
    CHECK(doc.isValid());
    CHECK(doc.getDocumentType() == type);
    CHECK(doc.getTree().countNodes() > 1);
  }
  // The key object's evidence names the CT images it selects.
  Loaded ko(classes.at(UID_KeyObjectSelectionDocumentStorage).front().second->path);
  DSRDocument doc;
  REQUIRE(doc.read(*ko.ds).good());
  CHECK(doc.getCurrentRequestedProcedureEvidence().getNumberOfInstances() == 2);
}

TEST_CASE("the PDF is a PDF - the RT objects refer to each other", "[generator]") {
  TempDir tmp("p2x-gen-iods");
  const auto studies = generate({ct_with_dose_objects("PDF1", "PDFP1", "20240301"),
                                 rt_planning_study("RT1", "RTP1", "20240302")},
                                tmp.file("data"));
  const auto classes = by_class(studies);
  {
    Loaded l(classes.at(UID_EncapsulatedPDFStorage).front().second->path);
    CHECK(str_of(l.ds, DCM_MIMETypeOfEncapsulatedDocument) == "application/pdf");
    const Uint8* bytes = nullptr;
    unsigned long n = 0;
    REQUIRE(l.ds->findAndGetUint8Array(DCM_EncapsulatedDocument, bytes, &n).good());
    const std::string pdf(reinterpret_cast<const char*>(bytes), n);
    CHECK(pdf.rfind("%PDF-1.4\n", 0) == 0);
    CHECK(pdf.find("%%EOF") != std::string::npos);
    Uint32 length = 0;
    REQUIRE(l.ds->findAndGetUint32(DCM_EncapsulatedDocumentLength, length).good());
    CHECK(length <= n);
    CHECK(n % 2 == 0);
  }
  const auto sop_of = [&](const char* cls) { return classes.at(cls).front().second->sop_uid; };
  Loaded plan(classes.at(UID_RTPlanStorage).front().second->path);
  Loaded dose(classes.at(UID_RTDoseStorage).front().second->path);
  Loaded ss(classes.at(UID_RTStructureSetStorage).front().second->path);
  DcmItem* ref = nullptr;
  REQUIRE(plan.ds->findAndGetSequenceItem(DCM_ReferencedStructureSetSequence, ref, 0).good());
  CHECK(str_of(ref, DCM_ReferencedSOPInstanceUID) == sop_of(UID_RTStructureSetStorage));
  REQUIRE(dose.ds->findAndGetSequenceItem(DCM_ReferencedRTPlanSequence, ref, 0).good());
  CHECK(str_of(ref, DCM_ReferencedSOPInstanceUID) == sop_of(UID_RTPlanStorage));
  CHECK(str_of(ss.ds, DCM_FrameOfReferenceUID).empty());
  CHECK(str_of(plan.ds, DCM_FrameOfReferenceUID) == str_of(dose.ds, DCM_FrameOfReferenceUID));
}

TEST_CASE("extras: given twice or without images refused - UIDs deterministic", "[generator]") {
  TempDir tmp("p2x-gen-iods");
  StudySpec twice = rt_planning_study("T1", "TP1", "20240301");
  twice.extras.push_back(Extra::RtPlan);
  CHECK_THROWS_AS(generate({twice}, tmp.file("a")), std::invalid_argument);
  StudySpec us = enhanced_mr_with_csa("T2", "TP2", "20240301");
  us.modality = "US";
  CHECK_THROWS_AS(generate({us}, tmp.file("b")), std::invalid_argument);
  const auto one = generate(sop_class_corpus("DET"), tmp.file("c"), 5);
  const auto two = generate(sop_class_corpus("DET"), tmp.file("d"), 5);
  REQUIRE(one.size() == two.size());
  for (std::size_t i = 0; i < one.size(); ++i) {
    REQUIRE(one[i].series.size() == two[i].series.size());
    for (std::size_t s = 0; s < one[i].series.size(); ++s) {
      CHECK(one[i].series[s].uid == two[i].series[s].uid);
      REQUIRE(one[i].series[s].files.size() == two[i].series[s].files.size());
      for (std::size_t f = 0; f < one[i].series[s].files.size(); ++f)
        CHECK(one[i].series[s].files[f].sop_uid == two[i].series[s].files[f].sop_uid);
    }
  }
}
