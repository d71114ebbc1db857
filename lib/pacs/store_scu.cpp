// Client::send_study: C-STORE of a directory of Part 10 files over one association (see
// pacs.hpp). Built on detail::Association and DIMSE_storeUser rather than DcmStorageSCU: that
// hides the A-ASSOCIATE-RJ parameters (needed to tell a permanent from a transient rejection)
// and drops the C-STORE response's status detail (the receiver's Error Comment).
//
// Presentation contexts are proposed per SOP class and transfer syntax found in the files (one
// transfer syntax per context, so the receiver cannot pick another), plus one uncompressed
// context per SOP class as a fallback. A file whose own syntax was not accepted is converted only
// when that is lossless (uncompressed <-> uncompressed, deflated, or a lossless compression DCMTK
// can decode: RLE, JPEG lossless, JPEG-LS lossless); otherwise it is reported as failed.
#include "dicomfile/dicomfile.hpp"
#include "pacs/association.hpp"
#include "pacs/pacs.hpp"

#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmnet/diutil.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

namespace p2x::pacs {

namespace {

namespace fs = std::filesystem;
using detail::Association;
using detail::ContextRequest;
using detail::kMaxContexts;

// Decoders for the lossless fallback conversions (process-wide, once).
void register_decoders() {
  static std::once_flag once;
  std::call_once(once, [] {
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
  });
}

const char* xfer_name(E_TransferSyntax x) {
  return DcmXfer(x).getXferName();
}

std::string sop_class_name(const std::string& uid) {
  return dcmFindNameOfUID(uid.c_str(), uid.c_str());
}

struct FileEntry {
  std::string path, sop_class, sop_instance;
  E_TransferSyntax xfer = EXS_Unknown;
  std::optional<SendFile> validated;  // send_files: the size and CRC the file must have
};

bool is_hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name.front() == '.';
}

bool has_dcm_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".dcm";
}

// Regular *.dcm files under dir (recursive, hidden names skipped), sorted by path.
std::vector<std::string> list_files(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error("C-STORE: study directory " + dir + " does not exist");
  const auto cannot_read = [&] {
    return std::runtime_error("C-STORE: cannot read " + dir + ": " + ec.message());
  };
  std::vector<std::string> out;
  fs::recursive_directory_iterator it(dir, ec), end;
  if (ec) throw cannot_read();
  for (; it != end; it.increment(ec)) {
    if (ec) throw cannot_read();
    if (is_hidden(it->path())) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && has_dcm_extension(it->path()))
      out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// SOP class/instance and transfer syntax (values over 1 KiB, i.e. pixel data, are skipped, not
// loaded). Returns "" on success, else the reason.
std::string read_header(FileEntry& e) {
  DcmFileFormat ff;
  // (loadFileUntilTag(DCM_PixelData) would warn about every file at WARN level.)
  const OFCondition cond = ff.loadFile(e.path.c_str(), EXS_Unknown, EGL_noChange, 1024);
  if (cond.bad()) return std::string("not readable as DICOM: ") + cond.text();
  DcmDataset& ds = *ff.getDataset();
  DcmMetaInfo& meta = *ff.getMetaInfo();
  e.sop_class = detail::get_string(ds, DCM_SOPClassUID);
  e.sop_instance = detail::get_string(ds, DCM_SOPInstanceUID);
  if (e.sop_class.empty()) e.sop_class = detail::get_string(meta, DCM_MediaStorageSOPClassUID);
  if (e.sop_instance.empty())
    e.sop_instance = detail::get_string(meta, DCM_MediaStorageSOPInstanceUID);
  e.xfer = ds.getOriginalXfer();
  if (e.sop_class.empty() || e.sop_instance.empty()) return "no SOP Class/Instance UID";
  if (e.xfer == EXS_Unknown) return "unknown transfer syntax";
  return {};
}

// Whether a data set read in `from` may be sent in `to` without losing information.
bool lossless_conversion(E_TransferSyntax from, E_TransferSyntax to) {
  if (from == to) return true;
  const DcmXfer f(from), t(to);
  if (!t.isNotEncapsulated()) return false;  // never (re-)compress
  if (f.isNotEncapsulated()) return true;    // native/deflated -> native/deflated
  return f.isLossless();                     // lossless compression, if DCMTK can decode it
}

// Preference among fallback targets (lower first).
int target_rank(E_TransferSyntax x) {
  switch (x) {
    case EXS_LittleEndianExplicit:
      return 0;
    case EXS_LittleEndianImplicit:
      return 1;
    case EXS_BigEndianExplicit:
      return 2;
    default:
      return 3;
  }
}

// One context per (SOP class, transfer syntax) found, most files first; then per SOP class one
// uncompressed fallback context (unless all its files are explicit little endian already).
// At most kMaxContexts; files whose class gets no context at all then fail individually.
std::vector<ContextRequest> build_contexts(const std::vector<FileEntry>& entries) {
  std::map<std::pair<std::string, E_TransferSyntax>, int> counts;
  std::map<std::string, bool> needs_fallback;
  for (const auto& e : entries) {
    ++counts[{e.sop_class, e.xfer}];
    auto& nf = needs_fallback[e.sop_class];
    nf = nf || e.xfer != EXS_LittleEndianExplicit;
  }
  std::vector<std::pair<int, ContextRequest>> originals;
  for (const auto& [key, n] : counts)
    originals.push_back({n, ContextRequest{key.first, {DcmXfer(key.second).getXferID()}}});
  std::stable_sort(originals.begin(), originals.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<ContextRequest> out;
  for (auto& o : originals) out.push_back(std::move(o.second));
  for (const auto& [sop_class, needed] : needs_fallback)
    if (needed) out.push_back(ContextRequest{sop_class, detail::uncompressed_syntaxes()});
  if (out.size() > kMaxContexts) {
    spdlog::warn("pacs: C-STORE needs {} presentation contexts, proposing the first {}", out.size(),
                 kMaxContexts);
    out.resize(kMaxContexts);
  }
  return out;
}

// The contexts the receiver accepted, by SOP class, and the choice of one for a file.
class StoreContexts {
 public:
  StoreContexts(const std::vector<ContextRequest>& proposed, const Association& assoc) {
    for (const auto& p : proposed) proposed_.insert(p.abstract_syntax);
    for (const auto& c : assoc.accepted_contexts()) {
      const E_TransferSyntax x = DcmXfer(c.transfer_syntax.c_str()).getXfer();
      if (x != EXS_Unknown) accepted_[c.abstract_syntax].push_back({x, c.id});
    }
  }

  // Context to send a data set of sop_class read in `from`: exact syntax first, else the best
  // lossless target (its syntax in `net`). 0 and a reason when there is none.
  T_ASC_PresentationContextID choose(const std::string& sop_class, E_TransferSyntax from,
                                     E_TransferSyntax& net, std::string& why) const {
    const auto it = accepted_.find(sop_class);
    if (it == accepted_.end()) {
      why = proposed_.count(sop_class) != 0
                ? "receiver did not accept " + sop_class_name(sop_class)
                : "no presentation context left for " + sop_class_name(sop_class) +
                      " (the study needs more than " + std::to_string(kMaxContexts) + ")";
      return 0;
    }
    T_ASC_PresentationContextID best = 0;
    int best_rank = 1000;
    std::string offered;
    for (const auto& [x, pid] : it->second) {
      if (x == from) {
        net = x;
        return pid;
      }
      if (!offered.empty()) offered += ", ";
      offered += xfer_name(x);
      if (lossless_conversion(from, x) && target_rank(x) < best_rank) {
        best = pid;
        best_rank = target_rank(x);
        net = x;
      }
    }
    if (best == 0)
      why = "receiver accepted " + sop_class_name(sop_class) + " only as " + offered +
            "; converting from " + xfer_name(from) + " would not be lossless";
    return best;
  }

 private:
  std::set<std::string> proposed_;  // SOP classes with at least one proposed context
  std::map<std::string, std::vector<std::pair<E_TransferSyntax, T_ASC_PresentationContextID>>>
      accepted_;
};

// Loads a validated file whole (nothing is left on disk to be read later) and checks that its
// bytes are the validated ones; throws FileChanged otherwise.
void load_validated(DcmFileFormat& ff, const FileEntry& e) {
  const SendFile& v = *e.validated;
  const dicomfile::CrcRead read = dicomfile::load_with_crc(e.path, ff, 0xFFFFFFFFu);
  if (!read.crc_known || read.size != v.size || read.crc != v.crc)
    throw FileChanged(e.path, "C-STORE: " + e.path + " is not the file that was validated (" +
                                  (read.crc_known ? "its size or CRC-32 differs"
                                                  : "it cannot be read: " + read.error) +
                                  "); it was not sent");
  if (!read.ok) throw FileChanged(e.path, "C-STORE: " + e.path + ": " + read.error);
}

// Loads e into ff (large values stay on disk until written to the network), makes it writable
// in `net` and sets Patient Comments when given. Returns "" on success, else the reason.
std::string prepare(DcmFileFormat& ff, const FileEntry& e, E_TransferSyntax net,
                    const std::string& patient_comments) {
  OFCondition cond;
  if (e.validated) {
    load_validated(ff, e);
  } else {
    cond = ff.loadFile(e.path.c_str());
    if (cond.bad()) return std::string("not readable as DICOM: ") + cond.text();
  }
  DcmDataset* ds = ff.getDataset();
  const E_TransferSyntax from = ds->getOriginalXfer();
  if (from != e.xfer) return "file changed during the transfer";  // since it was listed
  if (net != from && DcmXfer(from).isEncapsulated()) {
    cond = ds->chooseRepresentation(net, nullptr);
    if (cond.bad() || !ds->canWriteXfer(net, from))
      return std::string("cannot decode ") + xfer_name(from) + " for " + xfer_name(net) +
             " (the only syntax the receiver accepted)";
  } else if (!ds->canWriteXfer(net, from)) {
    return std::string("cannot be written as ") + xfer_name(net);
  }
  if (patient_comments.empty()) return {};
  cond = ds->putAndInsertString(DCM_PatientComments, patient_comments.c_str());
  if (cond.bad()) return std::string("cannot set Patient Comments: ") + cond.text();
  return {};
}

std::string status_text(Uint16 status, DcmDataset* detail) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%04X", static_cast<unsigned>(status));
  std::string s =
      std::string("receiver answered status ") + hex + " (" + DU_cstoreStatusString(status) + ")";
  const std::string comment = detail::error_comment(detail);
  if (!comment.empty()) s += ": " + comment;
  return s;
}

// What the receiver answered to one C-STORE.
struct StoreAnswer {
  Uint16 status = 0;
  std::unique_ptr<DcmDataset> detail;
};

// One C-STORE-RQ with its data set and the response; the network condition in `cond`.
StoreAnswer store_one(Association& assoc, T_ASC_PresentationContextID pid, const FileEntry& e,
                      DcmDataset& ds, OFCondition& cond) {
  T_DIMSE_C_StoreRQ req;
  std::memset(&req, 0, sizeof req);
  req.MessageID = detail::next_message_id();
  OFStandard::strlcpy(req.AffectedSOPClassUID, e.sop_class.c_str(), sizeof req.AffectedSOPClassUID);
  OFStandard::strlcpy(req.AffectedSOPInstanceUID, e.sop_instance.c_str(),
                      sizeof req.AffectedSOPInstanceUID);
  req.DataSetType = DIMSE_DATASET_PRESENT;
  req.Priority = DIMSE_PRIORITY_MEDIUM;
  T_DIMSE_C_StoreRSP rsp;
  std::memset(&rsp, 0, sizeof rsp);
  DcmDataset* detail_raw = nullptr;
  cond = DIMSE_storeUser(assoc.get(), pid, &req, nullptr, &ds, nullptr, nullptr, DIMSE_NONBLOCKING,
                         assoc.peer().timeouts.dimse_s, &rsp, &detail_raw, nullptr, 0);
  StoreAnswer answer;
  answer.detail.reset(detail_raw);
  answer.status = rsp.DimseStatus;
  return answer;
}

// The files of study_dir with their headers read; unreadable ones go to `result` as failed.
std::vector<FileEntry> read_entries(const std::string& study_dir, SendResult& result) {
  std::vector<FileEntry> entries;
  for (auto& path : list_files(study_dir)) {
    FileEntry e;
    e.path = std::move(path);
    const std::string why = read_header(e);
    if (why.empty()) {
      entries.push_back(std::move(e));
    } else {
      ++result.failed;
      result.failures.push_back(e.path + ": " + why);
    }
  }
  return entries;
}

// Sends the files over an open association: per-file problems go to `result`, a broken
// association throws (transient: the caller sends the whole study again). Returns bytes sent.
std::uint64_t send_entries(Association& assoc, const StoreContexts& contexts,
                           const std::vector<FileEntry>& entries, const SendOptions& opt,
                           SendResult& result) {
  const auto fail_file = [&result](const std::string& path, const std::string& why) {
    ++result.failed;
    result.failures.push_back(path + ": " + why);
  };
  std::uint64_t bytes = 0;
  for (const auto& e : entries) {
    E_TransferSyntax net = EXS_Unknown;
    std::string why;
    const T_ASC_PresentationContextID pid = contexts.choose(e.sop_class, e.xfer, net, why);
    DcmFileFormat ff;
    if (pid != 0) {
      try {
        why = prepare(ff, e, net, opt.patient_comments);
      } catch (const FileChanged&) {
        assoc.abort();
        throw;
      }
    }
    if (!why.empty()) {
      fail_file(e.path, why);
      continue;
    }
    OFCondition cond;
    const StoreAnswer answer = store_one(assoc, pid, e, *ff.getDataset(), cond);
    if (cond.bad()) {
      const PacsError error = detail::network_error(
          cond, assoc.where() + ": " + e.path + " failed after " + std::to_string(result.sent) +
                    " of " + std::to_string(entries.size()) + " files");
      assoc.abort();
      throw PacsError(error.kind(), error.what(), true);
    }
    if (answer.status != STATUS_Success && !DICOM_WARNING_STATUS(answer.status)) {
      fail_file(e.path, status_text(answer.status, answer.detail.get()));
      continue;
    }
    ++result.sent;
    std::error_code ec;
    const auto size = fs::file_size(e.path, ec);
    if (!ec) bytes += size;
    if (answer.status != STATUS_Success)
      spdlog::warn("pacs: C-STORE {}: {}", e.path, status_text(answer.status, answer.detail.get()));
  }
  return bytes;
}

}  // namespace

namespace {

// Sends entries over one association and logs the outcome.
SendResult send_all(const Peer& peer, const std::vector<FileEntry>& entries, SendResult result,
                    const SendOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  if (entries.empty()) return result;
  const std::vector<ContextRequest> proposed = build_contexts(entries);
  Association assoc(peer, proposed, "C-STORE");
  const StoreContexts contexts(proposed, assoc);
  const std::uint64_t bytes = send_entries(assoc, contexts, entries, opt, result);
  assoc.release();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("pacs: {}: {} files sent ({:.1f} MB, {} failed) in {:.1f} s", assoc.where(),
               result.sent, static_cast<double>(bytes) / 1e6, result.failed, secs);
  return result;
}

}  // namespace

SendResult Client::send_study(const std::string& study_dir, const SendOptions& opt) {
  register_decoders();
  SendResult result;
  const std::vector<FileEntry> entries = read_entries(study_dir, result);
  return send_all(peer_, entries, std::move(result), opt);
}

SendResult Client::send_files(const std::vector<SendFile>& files, const SendOptions& opt) {
  register_decoders();
  SendResult result;
  std::vector<FileEntry> entries;
  for (const auto& f : files) {
    FileEntry e;
    e.path = f.path;
    e.validated = f;
    const std::string why = read_header(e);
    if (!why.empty())
      throw FileChanged(f.path,
                        "C-STORE: " + f.path + " is not the file that was validated (" + why + ")");
    entries.push_back(std::move(e));
  }
  return send_all(peer_, entries, std::move(result), opt);
}

}  // namespace p2x::pacs
