#include "validate/validate.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "dicomfile/dicomfile.hpp"

namespace p2x::validate {

namespace fs = std::filesystem;

namespace {

struct FileFacts {
  bool ok = false;
  std::string error, study_uid, series_uid, sop_uid, sop_class;
  std::uint64_t size = 0;
  std::uint32_t crc = 0;
};

std::string string_of(DcmItem& item, const DcmTagKey& tag) {
  OFString v;
  return item.findAndGetOFString(tag, v).good() ? std::string(v.c_str()) : std::string();
}

// Parses the whole file (so a truncated or corrupt one is caught) but leaves values larger than
// 4 KiB, such as pixel data, on disk: memory does not grow with image size. With `crc` the same
// pass reads every byte for the file's size and CRC-32 (dicomfile), which the push checks the
// bytes it sends against; without, values left on disk are skipped unread (a quick count).
FileFacts read_facts(const std::string& path, bool crc = true) {
  FileFacts f;
  DcmFileFormat file;
  if (crc) {
    const dicomfile::CrcRead read = dicomfile::load_with_crc(path, file, 4096);
    if (!read.ok) {
      f.error = read.error;
      return f;
    }
    f.size = read.size;
    f.crc = read.crc;
  } else {
    const OFCondition cond = file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 4096);
    if (cond.bad()) {
      f.error = cond.text();
      return f;
    }
  }
  DcmDataset* ds = file.getDataset();
  f.study_uid = string_of(*ds, DCM_StudyInstanceUID);
  f.series_uid = string_of(*ds, DCM_SeriesInstanceUID);
  f.sop_uid = string_of(*ds, DCM_SOPInstanceUID);
  f.sop_class = string_of(*ds, DCM_SOPClassUID);
  if (f.sop_class.empty())
    f.sop_class = string_of(*file.getMetaInfo(), DCM_MediaStorageSOPClassUID);
  if (f.sop_uid.empty()) {
    f.error = "no SOPInstanceUID";
  } else if (f.series_uid.empty()) {
    f.error = "no SeriesInstanceUID";
  } else if (f.sop_class.empty()) {
    f.error = "no SOPClassUID";
  } else {
    f.ok = true;
  }
  return f;
}

bool is_dicom_name(const fs::path& p) {
  const std::string name = p.filename().string();
  return p.extension() == ".dcm" && !name.empty() && name[0] != '.';
}

}  // namespace

std::string Report::summary() const {
  std::ostringstream o;
  if (complete) {
    o << "complete: " << series.size() << " series, " << files << " instances";
    return o.str();
  }
  bool first = true;
  for (const auto& m : missing) {
    o << (first ? "" : "; ") << "series " << m.series_uid;
    if (!m.description.empty()) o << " (" << m.description << ")";
    o << ": " << m.received << " of " << m.expected << " instances";
    first = false;
  }
  for (const auto& p : problems) {
    o << (first ? "" : "; ") << p;
    first = false;
  }
  return o.str();
}

namespace {

// Files of the study that the PACS described (or why a file is not one of them).
void examine(Report& r, const fs::directory_entry& entry, const std::string& study_uid,
             const std::set<std::string>& series) {
  const std::string path = entry.path().string();
  const std::string name = entry.path().filename().string();
  FileFacts f = read_facts(path);
  if (!f.ok) {
    r.problems.push_back(name + " does not parse as DICOM: " + f.error);
    r.bad_files.push_back(path);
    return;
  }
  if (f.study_uid != study_uid) {
    r.foreign.push_back({path, "of study " + f.study_uid + ", not the study retrieved"});
    return;
  }
  if (!series.empty() && series.count(f.series_uid) == 0) {
    ++r.received_by_series[f.series_uid];
    r.foreign.push_back(
        {path, "series " + f.series_uid + " was not reported by the PACS (C-FIND)"});
    return;
  }
  if (!r.sop_uids.insert(f.sop_uid).second) {
    r.problems.push_back("SOP instance " + f.sop_uid + " is present twice");
    r.bad_files.push_back(path);
    return;
  }
  ++r.received_by_series[f.series_uid];
  ++r.files;
  r.bytes += static_cast<std::int64_t>(f.size);
  r.valid.push_back({name, f.size, f.crc, f.series_uid, f.sop_uid, f.sop_class});
}

}  // namespace

Report check_study(const std::string& dir, const std::string& study_uid,
                   const std::vector<ExpectedSeries>& expected) {
  Report r;
  std::set<std::string> series;
  for (const auto& e : expected) series.insert(e.series_uid);
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.is_regular_file() && is_dicom_name(entry.path()))
        examine(r, entry, study_uid, series);
    }
  }
  std::sort(r.valid.begin(), r.valid.end(),
            [](const ValidFile& a, const ValidFile& b) { return a.name < b.name; });
  for (const auto& e : expected) {
    SeriesCount c{e.series_uid, e.description, e.expected, 0};
    auto it = r.received_by_series.find(e.series_uid);
    if (it != r.received_by_series.end()) c.received = it->second;
    r.series.push_back(c);
    if (c.received < c.expected) r.missing.push_back(c);
    if (c.received > c.expected) {
      r.problems.push_back("series " + e.series_uid + " has " + std::to_string(c.received) +
                           " instances, more than the " + std::to_string(c.expected) +
                           " the PACS reported");
    }
  }
  if (expected.empty()) r.problems.push_back("the PACS reported no series for this study");
  r.complete = r.missing.empty() && r.problems.empty();
  return r;
}

std::map<std::string, std::int64_t> count_by_series(const std::string& dir) {
  std::map<std::string, std::int64_t> out;
  for (const auto& i : list_instances(dir)) ++out[i.series_uid];
  return out;
}

std::vector<Instance> list_instances(const std::string& dir) {
  std::vector<Instance> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::error_code fec;
    if (!entry.is_regular_file(fec) || !is_dicom_name(entry.path())) continue;
    FileFacts f = read_facts(entry.path().string(), false);
    if (f.ok) out.push_back({entry.path().string(), f.series_uid, f.sop_uid});
  }
  return out;
}

}  // namespace p2x::validate
