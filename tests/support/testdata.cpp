// Synthetic DICOM generator (see testdata.hpp).
#include "testdata.hpp"
#include "testdata_detail.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/oflog/oflog.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace fs = std::filesystem;

namespace p2x::test {

int GeneratedStudy::instance_count() const {
  int n = 0;
  for (const auto& s : series) n += static_cast<int>(s.files.size());
  return n;
}

std::vector<std::string> GeneratedStudy::files() const {
  std::vector<std::string> out;
  for (const auto& s : series)
    for (const auto& f : s.files) out.push_back(f.path);
  return out;
}

namespace detail {

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// "2.25.<integer below 2^128>" derived from key and seed: deterministic and collision-free in
// practice; no leading zeros.
std::string make_uid(const std::string& key, unsigned seed) {
  const std::uint64_t h1 = splitmix(fnv1a(key) ^ splitmix(seed)) | (1ULL << 63);
  const std::uint64_t h2 = splitmix(h1 ^ 0x5bd1e995ULL) % 10000000000000000000ULL;
  char low[24];
  std::snprintf(low, sizeof low, "%019llu", static_cast<unsigned long long>(h2));
  return "2.25." + std::to_string(h1) + low;
}

void check(OFCondition cond, const std::string& what) {
  if (cond.bad()) throw std::runtime_error("testdata: " + what + ": " + cond.text());
}

void put(DcmItem* item, const DcmTagKey& tag, const std::string& value) {
  check(item->putAndInsertString(tag, value.c_str()), "put " + DcmTag(tag).toString());
}

void save(DcmFileFormat& ff, const std::string& path, E_TransferSyntax xfer) {
  check(ff.saveFile(path.c_str(), xfer), "write " + path);
}

void put_common(DcmItem* ds, const StudyCtx& st) {
  const StudySpec& sp = st.spec;
  put(ds, DCM_SpecificCharacterSet, "ISO_IR 100");
  put(ds, DCM_PatientName, sp.patient_name);
  put(ds, DCM_PatientID, sp.patient_id);
  put(ds, DCM_PatientBirthDate, "19700101");
  put(ds, DCM_PatientSex, "O");
  put(ds, DCM_StudyInstanceUID, st.study_uid);
  put(ds, DCM_StudyDate, sp.study_date);
  put(ds, DCM_StudyTime, st.study_time);
  put(ds, DCM_AccessionNumber, sp.accession);
  put(ds, DCM_ReferringPhysicianName, "");
  put(ds, DCM_StudyID, "1");
  put(ds, DCM_StudyDescription, st.description);
  put(ds, DCM_Manufacturer, "P2X Synthetic");
  put(ds, DCM_InstitutionName, "P2X Test Hospital");
}

void put_series(DcmItem* ds, const StudyCtx& st, const std::string& series_uid, int number,
                const std::string& modality, const std::string& description) {
  put(ds, DCM_Modality, modality);
  put(ds, DCM_SeriesInstanceUID, series_uid);
  if (number > 0) put(ds, DCM_SeriesNumber, std::to_string(number));
  put(ds, DCM_SeriesDescription, description);
  put(ds, DCM_SeriesDate, st.spec.study_date);
  put(ds, DCM_SeriesTime, st.study_time);
}

}  // namespace detail

namespace {

using namespace detail;

struct Rng {
  std::uint64_t s;
  std::uint32_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<std::uint32_t>(s);
  }
};

std::string time_for_index(std::size_t index) {
  const std::size_t secs = (8 * 3600 + index * 60) % (24 * 3600);
  char buf[8];
  std::snprintf(buf, sizeof buf, "%02zu%02zu%02zu", secs / 3600, (secs / 60) % 60, secs % 60);
  return buf;
}

const char* image_sop_class(const std::string& modality, bool multiframe) {
  if (modality == "MR") return multiframe ? UID_EnhancedMRImageStorage : UID_MRImageStorage;
  if (modality == "CT") return multiframe ? UID_EnhancedCTImageStorage : UID_CTImageStorage;
  if (modality == "US")
    return multiframe ? UID_UltrasoundMultiframeImageStorage : UID_UltrasoundImageStorage;
  return UID_SecondaryCaptureImageStorage;
}

bool is_enhanced(const char* sop_class) {
  return std::string(sop_class) == UID_EnhancedMRImageStorage ||
         std::string(sop_class) == UID_EnhancedCTImageStorage;
}

void ensure_ready() {
  static std::once_flag once;
  std::call_once(once, [] {
    DcmRLEEncoderRegistration::registerCodecs();
    // dcmsr warns about every template identification it cannot check yet: noise here.
    OFLog::getLogger("dcmtk.dcmsr").setLogLevel(OFLogger::ERROR_LOG_LEVEL);
  });
  if (!dcmDataDict.isDictionaryLoaded())
    throw std::runtime_error(
        "testdata: DICOM data dictionary not loaded (set DCMDICTPATH, e.g. "
        "/usr/share/libdcmtk17/dicom.dic)");
}

struct ImageArgs {
  const char* sop_class;
  std::string series_uid, sop_uid, series_description;
  int series_number, instance_number, frames;
  bool compressed, private_tags;
  std::uint64_t pixel_seed;
};

DcmItem* sequence_item(DcmItem* parent, const DcmTagKey& seq, int index) {
  DcmItem* item = nullptr;
  check(parent->findOrCreateSequenceItem(seq, item, index), "item of " + DcmTag(seq).toString());
  return item;
}

// Enhanced MR / Enhanced CT image and frame type values, top level and per frame group.
void put_frame_type(DcmItem* item, const std::string& modality, bool top) {
  put(item, top ? DCM_ImageType : DCM_FrameType,
      modality == "MR" ? "ORIGINAL\\PRIMARY\\M\\NONE" : "ORIGINAL\\PRIMARY\\AXIAL\\NONE");
  put(item, DCM_PixelPresentation, "MONOCHROME");
  put(item, DCM_VolumetricProperties, "VOLUME");
  put(item, DCM_VolumeBasedCalculationTechnique, "NONE");
  if (modality == "MR") {
    put(item, DCM_ComplexImageComponent, "MAGNITUDE");
    put(item, DCM_AcquisitionContrast, "T1");
  }
}

// Multi-frame functional groups and dimensions of an Enhanced MR / CT instance.
void put_enhanced_groups(DcmItem* ds, const StudyCtx& st, const ImageArgs& a) {
  const std::string& modality = st.spec.modality;
  put_frame_type(ds, modality, true);
  put(ds, DCM_AcquisitionDateTime, st.spec.study_date + st.study_time);
  put(ds, DCM_ContentQualification, "PRODUCT");
  put(ds, DCM_ManufacturerModelName, "P2X Scanner");
  put(ds, DCM_DeviceSerialNumber, "0001");
  put(ds, DCM_SoftwareVersions, "1.0");
  const std::string dims = make_uid(a.series_uid + "|dimensions", st.seed);
  put(sequence_item(ds, DCM_DimensionOrganizationSequence, 0), DCM_DimensionOrganizationUID, dims);
  DcmItem* index = sequence_item(ds, DCM_DimensionIndexSequence, 0);
  put(index, DCM_DimensionOrganizationUID, dims);
  check(index->putAndInsertTagKey(DCM_DimensionIndexPointer, DCM_InStackPositionNumber), "dim ptr");
  check(index->putAndInsertTagKey(DCM_FunctionalGroupPointer, DCM_FrameContentSequence), "fg ptr");
  DcmItem* shared = sequence_item(ds, DCM_SharedFunctionalGroupsSequence, 0);
  DcmItem* measures = sequence_item(shared, DCM_PixelMeasuresSequence, 0);
  put(measures, DCM_PixelSpacing, "1\\1");
  put(measures, DCM_SliceThickness, "2");
  put(sequence_item(shared, DCM_PlaneOrientationSequence, 0), DCM_ImageOrientationPatient,
      "1\\0\\0\\0\\1\\0");
  put_frame_type(
      sequence_item(shared,
                    modality == "MR" ? DCM_MRImageFrameTypeSequence : DCM_CTImageFrameTypeSequence,
                    0),
      modality, false);
  DcmItem* anatomy = sequence_item(shared, DCM_FrameAnatomySequence, 0);
  put(anatomy, DCM_FrameLaterality, "U");
  DcmItem* region = sequence_item(anatomy, DCM_AnatomicRegionSequence, 0);
  put(region, DCM_CodeValue, "T-A0100");
  put(region, DCM_CodingSchemeDesignator, "SRT");
  put(region, DCM_CodeMeaning, "Brain");
  for (int f = 0; f < a.frames; ++f) {
    DcmItem* frame = sequence_item(ds, DCM_PerFrameFunctionalGroupsSequence, -2);
    put(sequence_item(frame, DCM_PlanePositionSequence, 0), DCM_ImagePositionPatient,
        "0\\0\\" + std::to_string(2 * f));
    DcmItem* content = sequence_item(frame, DCM_FrameContentSequence, 0);
    put(content, DCM_FrameAcquisitionDateTime, st.spec.study_date + st.study_time);
    put(content, DCM_StackID, "1");
    check(content->putAndInsertUint32(DCM_InStackPositionNumber, Uint32(f + 1)), "stack pos");
    check(content->putAndInsertUint32(DCM_DimensionIndexValues, Uint32(f + 1)), "dim index");
  }
}

// Single-frame image plane and the modality's acquisition attributes.
void put_plane_and_modality(DcmItem* ds, const StudySpec& sp, const ImageArgs& a, bool enhanced) {
  if (!enhanced) {
    put(ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL");
    put(ds, DCM_PixelSpacing, "1\\1");
    put(ds, DCM_SliceThickness, "2");
    put(ds, DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
    const std::string z = std::to_string(2 * a.instance_number);
    put(ds, DCM_ImagePositionPatient, "0\\0\\" + z);
    put(ds, DCM_SliceLocation, z);
  }
  if (sp.modality == "CT") {
    put(ds, DCM_RescaleIntercept, "-1024");
    put(ds, DCM_RescaleSlope, "1");
    put(ds, DCM_KVP, "120");
  } else if (sp.modality == "MR") {
    put(ds, DCM_ScanningSequence, "SE");
    put(ds, DCM_SequenceVariant, "NONE");
    put(ds, DCM_MRAcquisitionType, "2D");
    put(ds, DCM_MagneticFieldStrength, "1.5");
  }
  if (a.frames > 1) {
    put(ds, DCM_NumberOfFrames, std::to_string(a.frames));
    if (!enhanced) {
      put(ds, DCM_FrameTime, "33.3");
      check(ds->putAndInsertTagKey(DCM_FrameIncrementPointer, DCM_FrameTime), "frame ptr");
    }
  }
}

void put_private_block(DcmItem* ds, int instance_number) {
  check(ds->putAndInsertString(DcmTag(0x0029, 0x0010, EVR_LO), "P2X TEST"), "private creator");
  check(ds->putAndInsertString(DcmTag(0x0029, 0x1010, EVR_LO), "synthetic private value"),
        "private LO");
  const Uint8 blob[8] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4};
  check(ds->putAndInsertUint8Array(DcmTag(0x0029, 0x1011, EVR_OB), blob, sizeof blob),
        "private OB");
  check(ds->putAndInsertUint32(DcmTag(0x0029, 0x1012, EVR_UL), Uint32(instance_number)),
        "private UL");
}

// Image pixel module: 16 bits allocated, 12 stored, monochrome; a disc over a gradient + noise.
void put_pixels(DcmItem* ds, const StudySpec& sp, const ImageArgs& a) {
  check(ds->putAndInsertUint16(DCM_SamplesPerPixel, 1), "spp");
  put(ds, DCM_PhotometricInterpretation, "MONOCHROME2");
  check(ds->putAndInsertUint16(DCM_Rows, Uint16(sp.rows)), "rows");
  check(ds->putAndInsertUint16(DCM_Columns, Uint16(sp.cols)), "cols");
  check(ds->putAndInsertUint16(DCM_BitsAllocated, 16), "bits allocated");
  check(ds->putAndInsertUint16(DCM_BitsStored, 12), "bits stored");
  check(ds->putAndInsertUint16(DCM_HighBit, 11), "high bit");
  check(ds->putAndInsertUint16(DCM_PixelRepresentation, 0), "pixel repr");
  put(ds, DCM_WindowCenter, "2048");
  put(ds, DCM_WindowWidth, "4096");

  const std::size_t per_frame = std::size_t(sp.rows) * std::size_t(sp.cols);
  const std::size_t count = per_frame * std::size_t(a.frames);
  auto* px = new DcmPixelData(DCM_PixelData);
  px->setVR(EVR_OW);
  Uint16* words = nullptr;
  OFCondition c = px->createUint16Array(Uint32(count), words);
  if (c.bad()) {
    delete px;
    check(c, "pixel data");
  }
  check(ds->insert(px, true), "insert pixel data");
  Rng rng{a.pixel_seed | 1};
  const int cx = sp.cols / 2, cy = sp.rows / 2, r2 = (sp.rows / 4) * (sp.rows / 4);
  for (int f = 0; f < a.frames; ++f) {
    Uint16* p = words + per_frame * std::size_t(f);
    for (int y = 0; y < sp.rows; ++y) {
      for (int x = 0; x < sp.cols; ++x) {
        const int dx = x - cx, dy = y - cy;
        unsigned v = unsigned(x + y + a.instance_number * 7 + f * 13) & 0x7ffu;
        if (dx * dx + dy * dy < r2) v += 1000;
        v += rng.next() & 0xffu;
        *p++ = Uint16(v);
      }
    }
  }
}

GeneratedFile write_image(const StudyCtx& st, const ImageArgs& a, const std::string& path) {
  const StudySpec& sp = st.spec;
  DcmFileFormat ff;
  DcmDataset* ds = ff.getDataset();
  const bool enhanced = is_enhanced(a.sop_class);

  put(ds, DCM_SOPClassUID, a.sop_class);
  put(ds, DCM_SOPInstanceUID, a.sop_uid);
  put_common(ds, st);
  put_series(ds, st, a.series_uid, a.series_number, sp.modality, a.series_description);
  put(ds, DCM_InstanceNumber, std::to_string(a.instance_number));
  put(ds, DCM_ContentDate, sp.study_date);
  put(ds, DCM_ContentTime, st.study_time);
  put(ds, DCM_FrameOfReferenceUID, st.frame_of_ref);
  put(ds, DCM_PositionReferenceIndicator, "");
  put(ds, DCM_BodyPartExamined, "HEAD");
  if (enhanced) put_enhanced_groups(ds, st, a);
  put_plane_and_modality(ds, sp, a, enhanced);
  if (a.private_tags) put_private_block(ds, a.instance_number);
  put_pixels(ds, sp, a);

  E_TransferSyntax xfer = EXS_LittleEndianExplicit;
  if (a.compressed) {
    xfer = EXS_RLELossless;
    check(ds->chooseRepresentation(xfer, nullptr), "RLE encode");
    if (!ds->canWriteXfer(xfer)) throw std::runtime_error("testdata: RLE encoding unavailable");
  }
  save(ff, path, xfer);
  return GeneratedFile{path, a.sop_uid, a.sop_class, DcmXfer(xfer).getXferID(), a.series_uid};
}

const char* const kSeriesNames[] = {"T1 AX", "T2 COR", "FLAIR SAG", "DWI", "SCOUT", "POST"};

std::string pad(int n, int width) {
  std::string s = std::to_string(n);
  return std::string(s.size() < std::size_t(width) ? width - s.size() : 0, '0') + s;
}

void check_spec(const StudySpec& sp) {
  if (sp.series < 1 || sp.instances < 1 || sp.rows < 1 || sp.cols < 1 || sp.frames < 1)
    throw std::invalid_argument("testdata: series, instances, rows, cols, frames must be >= 1");
  if (sp.enhanced && sp.modality != "MR" && sp.modality != "CT")
    throw std::invalid_argument("testdata: enhanced images exist for MR and CT only");
  for (std::size_t i = 0; i < sp.extras.size(); ++i)
    for (std::size_t j = i + 1; j < sp.extras.size(); ++j)
      if (sp.extras[i] == sp.extras[j])
        throw std::invalid_argument(std::string("testdata: extra object '") +
                                    to_string(sp.extras[i]) + "' given twice");
}

// The SeriesNumber written into image series s (1-based).
int series_number_of(const StudySpec& sp, int s) {
  return s <= static_cast<int>(sp.series_numbers.size())
             ? sp.series_numbers[static_cast<std::size_t>(s - 1)]
             : s;
}

GeneratedSeries write_image_series(const StudyCtx& st, const fs::path& study_dir, int s) {
  const StudySpec& sp = st.spec;
  GeneratedSeries ser;
  ser.number = s;
  ser.modality = sp.modality;
  ser.uid = make_uid(st.study_uid + "|series|" + std::to_string(s), st.seed);
  ser.description =
      std::string(kSeriesNames[(s - 1) % 6]) + (s > 6 ? " " + std::to_string(s) : std::string());
  const fs::path dir = study_dir / pad(s, 3);
  fs::create_directories(dir);
  for (int k = 1; k <= sp.instances; ++k) {
    const bool mf = sp.enhanced || (sp.multiframe && s == 1 && k == 1);
    ImageArgs a{image_sop_class(sp.modality, mf),
                ser.uid,
                make_uid(ser.uid + "|inst|" + std::to_string(k), st.seed),
                ser.description,
                series_number_of(sp, s),
                k,
                mf ? sp.frames : 1,
                sp.compressed && s == 1 && k == sp.instances,
                sp.private_tags && s == sp.series,
                splitmix(fnv1a(ser.uid) + std::uint64_t(k))};
    ser.files.push_back(write_image(st, a, (dir / (pad(k, 4) + ".dcm")).string()));
  }
  return ser;
}

// The extras of the study after its image series: each in a series of its own, numbered on,
// except a secondary capture inside image series 1.
void write_extras(const StudyCtx& st, const fs::path& study_dir, GeneratedStudy& gs) {
  const StudySpec& sp = st.spec;
  std::vector<Extra> extras = sp.extras;
  if (sp.presentation_state &&
      std::find(extras.begin(), extras.end(), Extra::PresentationState) == extras.end())
    extras.push_back(Extra::PresentationState);
  const GeneratedSeries images = gs.series.front();  // what the extras refer to
  int number = sp.series;
  for (Extra e : extras) {
    const ExtraKind kind = kind_of(e);
    const bool in_images = e == Extra::ScInImageSeries;
    ExtraArgs a{st,
                images,
                in_images ? images.uid : extra_series_uid(st, e),
                *kind.modality ? kind.modality : sp.modality,
                in_images ? images.description : kind.description,
                extra_sop_uid(st, e),
                "",
                in_images ? series_number_of(sp, 1) : number + 1,
                in_images ? sp.instances + 1 : 1};
    const fs::path dir = study_dir / pad(in_images ? 1 : number + 1, 3);
    fs::create_directories(dir);
    a.path = (dir / (pad(a.instance_number, 4) + ".dcm")).string();
    GeneratedFile file = write_extra(e, a);
    if (in_images) {
      gs.series.front().files.push_back(std::move(file));
      continue;
    }
    GeneratedSeries ser;
    ser.number = ++number;
    ser.uid = a.series_uid;
    ser.modality = a.modality;
    ser.description = a.description;
    ser.files.push_back(std::move(file));
    gs.series.push_back(std::move(ser));
  }
}

}  // namespace

std::vector<GeneratedStudy> generate(const std::vector<StudySpec>& specs,
                                     const std::string& out_dir, unsigned seed) {
  ensure_ready();
  std::vector<GeneratedStudy> out;
  out.reserve(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const StudySpec& sp = specs[i];
    check_spec(sp);
    const std::string key = "study|" + std::to_string(i) + "|" + sp.accession + "|" +
                            sp.patient_id + "|" + sp.study_date + "|" + sp.modality;
    StudyCtx st{
        sp,
        make_uid(key, seed),
        make_uid(key + "|for", seed),
        sp.study_time.empty() ? time_for_index(i) : sp.study_time,
        sp.study_description.empty() ? "Synthetic " + sp.modality + " study" : sp.study_description,
        seed};
    GeneratedStudy gs;
    gs.spec = sp;
    gs.spec.study_time = st.study_time;
    gs.spec.study_description = st.description;
    gs.study_uid = st.study_uid;
    const fs::path study_dir = fs::absolute(fs::path(out_dir) / st.study_uid);
    for (int s = 1; s <= sp.series; ++s) gs.series.push_back(write_image_series(st, study_dir, s));
    write_extras(st, study_dir, gs);
    out.push_back(std::move(gs));
  }
  return out;
}

void write_manifest(const std::vector<GeneratedStudy>& studies, const std::string& path) {
  nlohmann::json j;
  j["studies"] = nlohmann::json::array();
  for (const auto& st : studies) {
    nlohmann::json js{
        {"accession", st.spec.accession},       {"patient_id", st.spec.patient_id},
        {"patient_name", st.spec.patient_name}, {"study_date", st.spec.study_date},
        {"study_time", st.spec.study_time},     {"study_uid", st.study_uid},
        {"modality", st.spec.modality},         {"study_description", st.spec.study_description},
        {"instance_count", st.instance_count()}};
    js["series"] = nlohmann::json::array();
    for (const auto& se : st.series) {
      nlohmann::json jse{{"uid", se.uid},
                         {"modality", se.modality},
                         {"description", se.description},
                         {"number", se.number},
                         {"instance_count", se.files.size()}};
      jse["files"] = nlohmann::json::array();
      for (const auto& f : se.files)
        jse["files"].push_back({{"path", f.path},
                                {"sop_uid", f.sop_uid},
                                {"sop_class", f.sop_class},
                                {"transfer_syntax", f.transfer_syntax}});
      js["series"].push_back(std::move(jse));
    }
    j["studies"].push_back(std::move(js));
  }
  const fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  std::ofstream os(path, std::ios::trunc);
  os << j.dump(2) << "\n";
  if (!os) throw std::runtime_error("testdata: cannot write manifest " + path);
}

std::vector<GeneratedStudy> read_manifest(const std::string& path) {
  std::ifstream is(path);
  if (!is) throw std::runtime_error("testdata: cannot read manifest " + path);
  const nlohmann::json j = nlohmann::json::parse(is);
  std::vector<GeneratedStudy> out;
  for (const auto& js : j.at("studies")) {
    GeneratedStudy st;
    st.spec.accession = js.at("accession").get<std::string>();
    st.spec.patient_id = js.at("patient_id").get<std::string>();
    st.spec.patient_name = js.at("patient_name").get<std::string>();
    st.spec.study_date = js.at("study_date").get<std::string>();
    st.spec.study_time = js.value("study_time", "");
    st.spec.modality = js.at("modality").get<std::string>();
    st.spec.study_description = js.value("study_description", "");
    st.study_uid = js.at("study_uid").get<std::string>();
    for (const auto& jse : js.at("series")) {
      GeneratedSeries se;
      se.uid = jse.at("uid").get<std::string>();
      se.modality = jse.at("modality").get<std::string>();
      se.description = jse.at("description").get<std::string>();
      se.number = jse.at("number").get<int>();
      for (const auto& jf : jse.at("files"))
        se.files.push_back(GeneratedFile{jf.at("path").get<std::string>(),
                                         jf.at("sop_uid").get<std::string>(),
                                         jf.at("sop_class").get<std::string>(),
                                         jf.at("transfer_syntax").get<std::string>(), se.uid});
      st.series.push_back(std::move(se));
    }
    st.spec.series = static_cast<int>(st.series.size());
    out.push_back(std::move(st));
  }
  return out;
}

std::vector<StudySpec> standard_corpus(bool with_compressed) {
  std::vector<StudySpec> v;
  auto add = [&v](std::string acc, std::string pid, std::string name, std::string date,
                  std::string modality, int series, int instances) -> StudySpec& {
    StudySpec s;
    s.accession = std::move(acc);
    s.patient_id = std::move(pid);
    s.patient_name = std::move(name);
    s.study_date = std::move(date);
    s.modality = std::move(modality);
    s.series = series;
    s.instances = instances;
    v.push_back(s);
    return v.back();
  };
  {  // multi-frame Enhanced MR + one RLE instance
    StudySpec& s = add("STD001", "PSTD01", "Alpha^Anna", "20240110", "MR", 2, 3);
    s.multiframe = true;
    s.compressed = with_compressed;
  }
  add("STD002", "PSTD02", "Bravo^Ben", "20240111", "CT", 2, 4).private_tags = true;
  add("STD003", "PSTD03", "Charlie^Cara", "20240112", "US", 1, 3).multiframe = true;
  add("", "PSTD04", "Delta^Dan", "20240113", "MR", 2, 2);       // no accession
  add("STD005", "PSTD05", "Echo^Eva", "20240114", "MR", 1, 3);  // same patient,
  add("STD006", "PSTD05", "Echo^Eva", "20240114", "CT", 2, 2);  // same date
  add("STD007", "PSTD06", "Foxtrot^Finn", "20240115", "MR", 2, 3).presentation_state = true;
  return v;
}

namespace {

StudySpec small_study(const std::string& accession, const std::string& patient_id,
                      const std::string& study_date, const std::string& modality, int instances) {
  StudySpec s;
  s.accession = accession;
  s.patient_id = patient_id;
  s.patient_name = "Sop^" + patient_id;
  s.study_date = study_date;
  s.modality = modality;
  s.series = 1;
  s.instances = instances;
  s.rows = s.cols = 64;
  return s;
}

}  // namespace

StudySpec ct_with_dose_objects(const std::string& accession, const std::string& patient_id,
                               const std::string& study_date, int ct_instances) {
  StudySpec s = small_study(accession, patient_id, study_date, "CT", ct_instances);
  s.study_description = "CT head with dose report";
  s.extras = {Extra::ScInImageSeries,  Extra::DoseSR,
              Extra::SecondaryCapture, Extra::Pdf,
              Extra::KeyObject,        Extra::PresentationState,
              Extra::ComprehensiveSR};
  return s;
}

StudySpec rt_planning_study(const std::string& accession, const std::string& patient_id,
                            const std::string& study_date, int ct_instances) {
  StudySpec s = small_study(accession, patient_id, study_date, "CT", ct_instances);
  s.study_description = "RT planning CT";
  s.extras = {Extra::RtStruct, Extra::RtPlan, Extra::RtDose};
  return s;
}

StudySpec enhanced_mr_with_csa(const std::string& accession, const std::string& patient_id,
                               const std::string& study_date, int mr_instances) {
  StudySpec s = small_study(accession, patient_id, study_date, "MR", mr_instances);
  s.study_description = "Enhanced MR with CSA object";
  s.enhanced = true;
  s.frames = 3;
  s.extras = {Extra::CsaNonImage};
  return s;
}

std::vector<StudySpec> sop_class_corpus(const std::string& prefix) {
  return {ct_with_dose_objects(prefix + "1", prefix + "P1", "20240301"),
          rt_planning_study(prefix + "2", prefix + "P2", "20240302"),
          enhanced_mr_with_csa(prefix + "3", prefix + "P3", "20240303")};
}

std::vector<StudySpec> uniform_corpus(int studies, int series, int instances,
                                      const std::string& modality,
                                      const std::string& accession_prefix) {
  std::vector<StudySpec> v;
  for (int i = 1; i <= studies; ++i) {
    StudySpec s;
    s.accession = accession_prefix + pad(i, 4);
    s.patient_id = "P" + pad(i, 4);
    s.patient_name = "Test^Patient" + pad(i, 4);
    // 20240101 + (i-1) days, month lengths ignored beyond day 28 for simplicity.
    const int d = (i - 1) % 28, m = ((i - 1) / 28) % 12, y = 2024 + (i - 1) / (28 * 12);
    s.study_date = std::to_string(y) + pad(m + 1, 2) + pad(d + 1, 2);
    s.modality = modality;
    s.series = series;
    s.instances = instances;
    v.push_back(s);
  }
  return v;
}

}  // namespace p2x::test
