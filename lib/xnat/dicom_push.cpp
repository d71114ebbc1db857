// xnat/dicom_push: C-STORE of one study to XNAT's DICOM receiver over one association (see
// dicom_push.hpp). Built on DCMTK's ASC/DIMSE layer rather than DcmSCU: DcmSCU hides the
// A-ASSOCIATE-RJ parameters (needed to tell a permanent from a transient rejection) and drops the
// C-STORE response's status detail (the receiver's Error Comment).
#include "xnat/dicom_push.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>
#include <dcmtk/dcmnet/diutil.h>
#include <dcmtk/ofstd/ofstd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <utility>

namespace p2x::xnat {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxContexts = 128;  // DICOM limit per association (odd IDs 1..255)

// Once per process: DCMTK 3.6.7 leaves Nagle's algorithm on unless the environment variable
// TCP_NODELAY is set when a connection is made; without it every C-STORE stalls ~40 ms on the
// delayed ACK (600 instances: ~30 s instead of <1 s). The daemon sets it early in main as well
// (pacs::init_network); doing it here keeps lib/xnat independent of lib/pacs. Also registers the
// decoders used for lossless fallback conversions (process-wide, idempotent in DCMTK).
void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    ::setenv("TCP_NODELAY", "1", 1);
    DcmRLEDecoderRegistration::registerCodecs();
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
  });
}

Uint16 next_message_id() {
  static std::atomic<unsigned> counter{1};
  for (;;) {
    const auto v = static_cast<Uint16>(counter.fetch_add(1) & 0xFFFFu);
    if (v != 0) return v;
  }
}

bool valid_label(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ';';
  return trim(s);
}

std::string get_string(DcmItem& item, const DcmTagKey& key) {
  OFString v;
  if (item.findAndGetOFString(key, v).bad()) return {};
  return trim(v.c_str());
}

const char* xfer_name(E_TransferSyntax x) { return DcmXfer(x).getXferName(); }

std::string sop_class_name(const std::string& uid) {
  return dcmFindNameOfUID(uid.c_str(), uid.c_str());
}

struct FileEntry {
  std::string path, sop_class, sop_instance;
  E_TransferSyntax xfer = EXS_Unknown;
};

// Regular *.dcm files under dir (recursive, hidden names skipped), sorted by path.
std::vector<std::string> list_files(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::runtime_error("DICOM push: study directory " + dir + " does not exist");
  std::vector<std::string> out;
  fs::recursive_directory_iterator it(dir, ec), end;
  if (ec) throw std::runtime_error("DICOM push: cannot read " + dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw std::runtime_error("DICOM push: cannot read " + dir + ": " + ec.message());
    const std::string name = it->path().filename().string();
    if (!name.empty() && name.front() == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (ext == ".dcm") out.push_back(it->path().string());
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
  e.sop_class = get_string(ds, DCM_SOPClassUID);
  e.sop_instance = get_string(ds, DCM_SOPInstanceUID);
  if (e.sop_class.empty()) e.sop_class = get_string(*ff.getMetaInfo(), DCM_MediaStorageSOPClassUID);
  if (e.sop_instance.empty())
    e.sop_instance = get_string(*ff.getMetaInfo(), DCM_MediaStorageSOPInstanceUID);
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
    case EXS_LittleEndianExplicit: return 0;
    case EXS_LittleEndianImplicit: return 1;
    case EXS_BigEndianExplicit: return 2;
    default: return 3;
  }
}

struct Proposal {
  std::string sop_class;
  std::vector<std::string> syntaxes;
};

// One context per (SOP class, transfer syntax) found, most files first; then per SOP class one
// uncompressed fallback context (unless all its files are explicit little endian already).
// At most kMaxContexts; files whose class gets no context at all then fail individually.
std::vector<Proposal> build_proposals(const std::vector<FileEntry>& entries) {
  std::map<std::pair<std::string, E_TransferSyntax>, int> counts;
  std::map<std::string, bool> needs_fallback;
  for (const auto& e : entries) {
    if (e.sop_class.empty()) continue;
    ++counts[{e.sop_class, e.xfer}];
    auto& nf = needs_fallback[e.sop_class];
    nf = nf || e.xfer != EXS_LittleEndianExplicit;
  }
  std::vector<std::pair<int, Proposal>> originals;
  for (const auto& [key, n] : counts)
    originals.push_back({n, Proposal{key.first, {DcmXfer(key.second).getXferID()}}});
  std::stable_sort(originals.begin(), originals.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<Proposal> out;
  for (auto& o : originals) out.push_back(std::move(o.second));
  for (const auto& [sop_class, needed] : needs_fallback) {
    if (!needed) continue;
    out.push_back(Proposal{sop_class, {UID_LittleEndianExplicitTransferSyntax,
                                       UID_LittleEndianImplicitTransferSyntax}});
  }
  if (out.size() > kMaxContexts) {
    spdlog::warn("xnat: DICOM push needs {} presentation contexts, proposing the first {}",
                 out.size(), kMaxContexts);
    out.resize(kMaxContexts);
  }
  return out;
}

// One requested association (RAII: dropped unless released).
class StoreAssociation {
 public:
  StoreAssociation(const DicomPushTarget& t, const std::vector<Proposal>& proposals)
      : where_(t.ae_title + "@" + t.host + ":" + std::to_string(t.port)) {
    OFCondition cond = ASC_initializeNetwork(NET_REQUESTOR, 0, t.acse_s, &net_);
    if (cond.bad()) fail(ErrorKind::Transient, std::string("network set-up: ") + cond.text());
    T_ASC_Parameters* params = nullptr;
    cond = ASC_createAssociationParameters(&params, ASC_DEFAULTMAXPDU);
    if (cond.bad()) fail(ErrorKind::Protocol, cond.text());
    ASC_setAPTitles(params, t.our_ae.c_str(), t.ae_title.c_str(), nullptr);
    const std::string called = t.host + ":" + std::to_string(t.port);
    ASC_setPresentationAddresses(params, OFStandard::getHostName().c_str(), called.c_str());

    unsigned next_id = 1;  // odd IDs 1..255 (at most kMaxContexts proposals)
    for (const auto& p : proposals) {
      proposed_.insert(p.sop_class);
      std::vector<const char*> ts;
      for (const auto& s : p.syntaxes) ts.push_back(s.c_str());
      cond = ASC_addPresentationContext(params, static_cast<T_ASC_PresentationContextID>(next_id),
                                        p.sop_class.c_str(), ts.data(),
                                        static_cast<int>(ts.size()));
      if (cond.bad()) {
        ASC_destroyAssociationParameters(&params);
        fail(ErrorKind::Protocol, std::string("presentation context: ") + cond.text());
      }
      next_id += 2;
    }

    // Process-wide in DCMTK (OFGlobal): set right before connecting.
    dcmConnectionTimeout.set(t.connect_s);
    cond = ASC_requestAssociation(net_, params, &assoc_);
    if (cond.bad()) {
      ErrorKind kind = ErrorKind::Transient;
      std::string msg;
      if (cond == DUL_ASSOCIATIONREJECTED) {
        T_ASC_RejectParameters rej;
        ASC_getRejectParameters(params, &rej);
        OFString text;
        ASC_printRejectParameters(text, &rej);
        if (rej.result != ASC_RESULT_REJECTEDTRANSIENT) kind = ErrorKind::BadRequest;
        msg = "association rejected: " + one_line(text.c_str());
      } else {
        msg = std::string("association failed: ") + cond.text();
      }
      if (assoc_ != nullptr) {
        ASC_dropAssociation(assoc_);
        ASC_destroyAssociation(&assoc_);  // frees params too
      } else {
        ASC_destroyAssociationParameters(&params);
      }
      fail(kind, msg);
    }

    T_ASC_PresentationContext pc;
    for (unsigned pid = 1; pid < next_id; pid += 2) {
      const auto ctx = static_cast<T_ASC_PresentationContextID>(pid);
      if (ASC_findAcceptedPresentationContext(assoc_->params, ctx, &pc).bad()) continue;
      if (pc.resultReason != ASC_P_ACCEPTANCE) continue;
      const E_TransferSyntax x = DcmXfer(pc.acceptedTransferSyntax).getXfer();
      if (x == EXS_Unknown) continue;
      accepted_[pc.abstractSyntax].push_back({x, ctx});
    }
    if (accepted_.empty())
      fail(ErrorKind::BadRequest, "receiver accepted none of the " +
                                      std::to_string(proposals.size()) +
                                      " proposed presentation contexts");
  }

  ~StoreAssociation() { drop(); }
  StoreAssociation(const StoreAssociation&) = delete;
  StoreAssociation& operator=(const StoreAssociation&) = delete;

  T_ASC_Association* get() const { return assoc_; }
  const std::string& where() const { return where_; }

  // Context to send a data set of sop_class read in `from`: exact syntax first, else the best
  // lossless target. 0 and a reason when there is none.
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

  // A-RELEASE; problems are only logged (everything was acknowledged already).
  void release() {
    if (assoc_ != nullptr) {
      const OFCondition cond = ASC_releaseAssociation(assoc_);
      if (cond.bad()) {
        spdlog::warn("xnat: DICOM push to {}: release failed: {}", where_, cond.text());
        ASC_dropAssociation(assoc_);
      }
      ASC_destroyAssociation(&assoc_);
    }
    if (net_ != nullptr) ASC_dropNetwork(&net_);
  }

  // Closes the connection at once (the peer sees an abort). Never throws.
  void drop() noexcept {
    if (assoc_ != nullptr) {
      ASC_dropAssociation(assoc_);
      ASC_destroyAssociation(&assoc_);
    }
    if (net_ != nullptr) ASC_dropNetwork(&net_);
  }

  [[noreturn]] void fail(ErrorKind kind, const std::string& msg) {
    drop();
    throw XnatError(kind, 0, "DICOM push to " + where_ + ": " + msg);
  }

 private:
  std::string where_;
  T_ASC_Network* net_ = nullptr;
  T_ASC_Association* assoc_ = nullptr;
  std::set<std::string> proposed_;  // SOP classes with at least one proposed context
  std::map<std::string, std::vector<std::pair<E_TransferSyntax, T_ASC_PresentationContextID>>>
      accepted_;
};

std::string status_text(Uint16 status, DcmDataset* detail) {
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%04X", static_cast<unsigned>(status));
  std::string s = std::string("receiver answered status ") + hex + " (" +
                  DU_cstoreStatusString(status) + ")";
  if (detail != nullptr) {
    const std::string comment = get_string(*detail, DCM_ErrorComment);
    if (!comment.empty()) s += ": " + comment;
  }
  return s;
}

}  // namespace

std::string routing_comment(const std::string& project, const std::string& subject,
                            const std::string& session) {
  return "Project: " + project + " Subject: " + subject + " Session: " + session;
}

DicomPushResult push_dicom(const DicomPushTarget& target, const std::string& study_dir,
                           const std::string& project, const std::string& subject,
                           const std::string& session) {
  for (const auto* label : {&project, &subject, &session}) {
    if (!valid_label(*label))
      throw XnatError(ErrorKind::BadRequest, 0,
                      "DICOM push: label '" + *label +
                          "' cannot be routed by XNAT's DICOM receiver (letters, digits, _ and "
                          "- only)");
  }
  init_once();
  if (!dcmDataDict.isDictionaryLoaded())
    throw std::runtime_error(
        "DICOM push: DICOM data dictionary not loaded (install DCMTK's dicom.dic or set "
        "DCMDICTPATH)");

  const auto t0 = std::chrono::steady_clock::now();
  DicomPushResult result;
  auto fail_file = [&result](const std::string& path, const std::string& why) {
    ++result.failed;
    result.failures.push_back(path + ": " + why);
  };

  std::vector<FileEntry> entries;
  for (auto& path : list_files(study_dir)) {
    FileEntry e;
    e.path = std::move(path);
    const std::string why = read_header(e);
    if (why.empty()) {
      entries.push_back(std::move(e));
    } else {
      fail_file(e.path, why);
    }
  }
  if (entries.empty()) return result;

  StoreAssociation assoc(target, build_proposals(entries));
  const std::string comment = routing_comment(project, subject, session);
  std::uint64_t bytes = 0;

  for (const auto& e : entries) {
    E_TransferSyntax net = EXS_Unknown;
    std::string why;
    const T_ASC_PresentationContextID pid = assoc.choose(e.sop_class, e.xfer, net, why);
    if (pid == 0) {
      fail_file(e.path, why);
      continue;
    }
    DcmFileFormat ff;  // large values stay on disk until written to the network
    OFCondition cond = ff.loadFile(e.path.c_str());
    if (cond.bad()) {
      fail_file(e.path, std::string("not readable as DICOM: ") + cond.text());
      continue;
    }
    DcmDataset* ds = ff.getDataset();
    const E_TransferSyntax from = ds->getOriginalXfer();
    if (from != e.xfer) {  // changed since it was listed
      fail_file(e.path, "file changed during the push");
      continue;
    }
    if (net != from && DcmXfer(from).isEncapsulated()) {
      cond = ds->chooseRepresentation(net, nullptr);
      if (cond.bad() || !ds->canWriteXfer(net, from)) {
        fail_file(e.path, std::string("cannot decode ") + xfer_name(from) + " for " +
                              xfer_name(net) + " (the only syntax the receiver accepted)");
        continue;
      }
    } else if (!ds->canWriteXfer(net, from)) {
      fail_file(e.path, std::string("cannot be written as ") + xfer_name(net));
      continue;
    }
    cond = ds->putAndInsertString(DCM_PatientComments, comment.c_str());
    if (cond.bad()) {
      fail_file(e.path, std::string("cannot set Patient Comments: ") + cond.text());
      continue;
    }

    T_DIMSE_C_StoreRQ req;
    std::memset(&req, 0, sizeof req);
    req.MessageID = next_message_id();
    OFStandard::strlcpy(req.AffectedSOPClassUID, e.sop_class.c_str(),
                        sizeof req.AffectedSOPClassUID);
    OFStandard::strlcpy(req.AffectedSOPInstanceUID, e.sop_instance.c_str(),
                        sizeof req.AffectedSOPInstanceUID);
    req.DataSetType = DIMSE_DATASET_PRESENT;
    req.Priority = DIMSE_PRIORITY_MEDIUM;
    T_DIMSE_C_StoreRSP rsp;
    std::memset(&rsp, 0, sizeof rsp);
    DcmDataset* detail_raw = nullptr;
    cond = DIMSE_storeUser(assoc.get(), pid, &req, nullptr, ds, nullptr, nullptr,
                           DIMSE_NONBLOCKING, target.dimse_s, &rsp, &detail_raw, nullptr, 0);
    std::unique_ptr<DcmDataset> detail(detail_raw);
    if (cond.bad()) {
      const bool timeout = cond == DIMSE_NODATAAVAILABLE || cond == DUL_READTIMEOUT;
      assoc.fail(ErrorKind::Transient,
                 "C-STORE of " + e.path + " failed after " + std::to_string(result.sent) +
                     " of " + std::to_string(entries.size()) + " files: " + cond.text() +
                     (timeout ? " (no answer within " + std::to_string(target.dimse_s) + " s)"
                              : std::string()));
    }
    const Uint16 status = rsp.DimseStatus;
    if (status == STATUS_Success || DICOM_WARNING_STATUS(status)) {
      ++result.sent;
      std::error_code ec;
      const auto size = fs::file_size(e.path, ec);
      if (!ec) bytes += size;
      if (status != STATUS_Success)
        spdlog::warn("xnat: DICOM push {}: {}", e.path, status_text(status, detail.get()));
    } else {
      fail_file(e.path, status_text(status, detail.get()));
    }
  }
  assoc.release();

  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("xnat: C-STORE {} files ({:.1f} MB, {} failed) to {} as {}/{}/{} in {:.1f} s",
               result.sent, static_cast<double>(bytes) / 1e6, result.failed, assoc.where(),
               project, subject, session, secs);
  return result;
}

}  // namespace p2x::xnat
