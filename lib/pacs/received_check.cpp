// Checks a received Part 10 file's identity before it is routed (see received_check.hpp).
#include "pacs/received_check.hpp"

#include "text/text.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <string_view>
#include <utility>

namespace p2x::pacs {

namespace {

// Values longer than this stay on disk, unread (pixel data, large private blobs).
constexpr Uint32 kMaxLoadedValue = 1024;

// All values of the element, backslash-separated, trimmed; "" when absent.
std::string uid_value(DcmItem& item, const DcmTagKey& key) {
  OFString value;
  if (item.findAndGetOFStringArray(key, value).bad()) return {};
  return text::trim(std::string_view(value.c_str(), value.length()));
}

// Whether the meta header says the data set is stream-compressed (deflated); false when it
// cannot be read (the full read then fails on its own).
bool is_deflated(const std::string& path) {
  DcmFileFormat meta;
  if (meta.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, kMaxLoadedValue, ERM_metaOnly).bad())
    return false;
  OFString syntax;
  if (meta.getMetaInfo()->findAndGetOFString(DCM_TransferSyntaxUID, syntax).bad()) return false;
  return DcmXfer(syntax.c_str()).getStreamCompression() != ESC_none;
}

ReceivedCheck refuse(ReceivedCheck check, ReceivedFault fault, std::string error) {
  check.fault = fault;
  check.error = std::move(error);
  return check;
}

// "" when `uid` is acceptable, else why not ("invalid Study Instance UID: over 64 chars").
// Short enough for a C-STORE ErrorComment (64 characters).
std::string uid_problem(const std::string& name, const std::string& uid) {
  switch (text::uid_fault(uid)) {
    case text::UidFault::None:
      return {};
    case text::UidFault::Empty:
      return "no " + name;
    case text::UidFault::BadCharacter:
      return "invalid " + name + ": not digits/dots";
    case text::UidFault::TooLong:
      return "invalid " + name + ": over 64 chars";
    case text::UidFault::EmptyComponent:
      return "invalid " + name + ": empty part";
  }
  return "invalid " + name;
}

}  // namespace

ReceivedCheck check_received_file(const std::string& path, const std::string& announced_sop_uid) {
  ReceivedCheck check;
  if (is_deflated(path)) {
    return refuse(std::move(check), ReceivedFault::Deflated, "deflated data set not accepted");
  }
  DcmFileFormat file;
  const OFCondition cond =
      file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, kMaxLoadedValue, ERM_fileOnly);
  DcmDataset* ds = file.getDataset();
  if (cond.bad() || ds == nullptr) {
    return refuse(std::move(check), ReceivedFault::Unreadable, "data set not readable");
  }
  check.study_uid = uid_value(*ds, DCM_StudyInstanceUID);
  check.series_uid = uid_value(*ds, DCM_SeriesInstanceUID);
  check.sop_uid = uid_value(*ds, DCM_SOPInstanceUID);
  if (check.sop_uid != announced_sop_uid) {
    return refuse(std::move(check), ReceivedFault::SopMismatch,
                  "SOP Instance UID differs from Affected SOP Instance UID");
  }
  std::string problem = uid_problem("SOP Instance UID", check.sop_uid);
  if (problem.empty()) problem = uid_problem("Study Instance UID", check.study_uid);
  if (problem.empty()) problem = uid_problem("Series Instance UID", check.series_uid);
  if (!problem.empty()) {
    return refuse(std::move(check), ReceivedFault::BadUid, std::move(problem));
  }
  return check;
}

}  // namespace p2x::pacs
