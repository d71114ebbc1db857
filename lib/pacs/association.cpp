// Requested associations, error classification and small DIMSE helpers (see association.hpp).
#include "pacs/association.hpp"
#include "pacs/connect.hpp"
#include "pacs/prompt_ack.hpp"
#include "text/text.hpp"

#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/dul.h>
#include <dcmtk/ofstd/ofstd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <utility>

#include <unistd.h>

namespace p2x::pacs::detail {

const std::vector<std::string>& uncompressed_syntaxes() {
  static const std::vector<std::string> v = {UID_LittleEndianExplicitTransferSyntax,
                                             UID_LittleEndianImplicitTransferSyntax};
  return v;
}

const std::vector<std::vector<std::string>>& get_syntax_groups() {
  // One presentation context per group and SOP class; the PACS picks the context whose
  // transfer syntax matches what it stores, so nothing needs transcoding.
  static const std::vector<std::vector<std::string>> v = {
      {UID_LittleEndianExplicitTransferSyntax, UID_LittleEndianImplicitTransferSyntax,
       UID_BigEndianExplicitTransferSyntax},
      {UID_JPEGProcess14SV1TransferSyntax, UID_JPEGProcess14TransferSyntax},
      {UID_JPEGProcess1TransferSyntax, UID_JPEGProcess2_4TransferSyntax},
      {UID_JPEG2000LosslessOnlyTransferSyntax, UID_JPEG2000TransferSyntax},
      {UID_JPEGLSLosslessTransferSyntax, UID_JPEGLSLossyTransferSyntax},
      {UID_RLELosslessTransferSyntax},
      // No deflated syntax: a deflated data set is refused on receipt (received_check.hpp),
      // so a PACS holding one must send it inflated.
  };
  return v;
}

const std::vector<std::string>& default_get_sop_classes() {
  static const std::vector<std::string> v = {
      // images (also proposed compressed, room permitting: may_be_compressed)
      UID_MRImageStorage,
      UID_CTImageStorage,
      UID_EnhancedMRImageStorage,
      UID_EnhancedCTImageStorage,
      UID_UltrasoundImageStorage,
      UID_UltrasoundMultiframeImageStorage,
      UID_SecondaryCaptureImageStorage,
      UID_PositronEmissionTomographyImageStorage,
      UID_ComputedRadiographyImageStorage,
      UID_DigitalXRayImageStorageForPresentation,
      UID_DigitalMammographyXRayImageStorageForPresentation,
      UID_XRayAngiographicImageStorage,
      UID_NuclearMedicineImageStorage,
      UID_EnhancedMRColorImageStorage,
      UID_EnhancedPETImageStorage,
      UID_MultiframeGrayscaleByteSecondaryCaptureImageStorage,
      UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage,
      UID_MultiframeTrueColorSecondaryCaptureImageStorage,
      UID_RTImageStorage,
      UID_RTDoseStorage,
      UID_SegmentationStorage,
      // Siemens CSA Non-Image (private), common next to MR studies.
      "1.3.12.2.1107.5.9.1",
      // reports, key objects, presentation states, documents, RT objects (uncompressed)
      UID_XRayRadiationDoseSRStorage,
      UID_ComprehensiveSRStorage,
      UID_EnhancedSRStorage,
      UID_BasicTextSRStorage,
      UID_Comprehensive3DSRStorage,
      UID_KeyObjectSelectionDocumentStorage,
      UID_GrayscaleSoftcopyPresentationStateStorage,
      UID_ColorSoftcopyPresentationStateStorage,
      UID_EncapsulatedPDFStorage,
      UID_RTStructureSetStorage,
      UID_RTPlanStorage,
      UID_RTIonPlanStorage,
      UID_RTBeamsTreatmentRecordStorage,
      UID_SpatialRegistrationStorage,
      UID_RawDataStorage,
      UID_MRSpectroscopyStorage,
  };
  return v;
}

bool may_be_compressed(const std::string& sop_class) {
  if (dcmIsImageStorageSOPClassUID(sop_class.c_str())) return true;
  // Pixel data DCMTK does not count as an image class.
  if (sop_class == UID_RTDoseStorage || sop_class == UID_SegmentationStorage) return true;
  return dcmFindNameOfUID(sop_class.c_str()) == nullptr;  // unknown to DCMTK: may be anything
}

std::string sop_class_name(const std::string& sop_class) {
  const char* name = dcmFindNameOfUID(sop_class.c_str());
  if (name == nullptr) return sop_class;
  return std::string(name) + " (" + sop_class + ")";
}

std::string sop_class_names(const std::vector<std::string>& sop_classes) {
  std::string out;
  for (const auto& c : sop_classes) out += (out.empty() ? "" : ", ") + sop_class_name(c);
  return out;
}

namespace {

// Why ASC_requestAssociation failed: the peer's rejection, or the network error.
PacsError request_failure(const OFCondition& cond, T_ASC_Parameters* params,
                          const std::string& where) {
  if (cond != DUL_ASSOCIATIONREJECTED) return network_error(cond, where);
  T_ASC_RejectParameters rej;
  ASC_getRejectParameters(params, &rej);
  OFString text;
  ASC_printRejectParameters(text, &rej);
  std::string msg = where + ": association rejected: " + text::trim(text.c_str());
  for (auto& ch : msg)
    if (ch == '\n') ch = ';';
  return PacsError(ErrorKind::Rejected, msg, rej.result == ASC_RESULT_REJECTEDTRANSIENT);
}

}  // namespace

Association::Association(const Peer& peer, const std::vector<ContextRequest>& contexts,
                         const std::string& what)
    : peer_(peer), what_(what) {
  OFCondition cond = ASC_initializeNetwork(NET_REQUESTOR, 0, peer_.timeouts.acse_s, &net_);
  if (cond.bad()) throw PacsError(ErrorKind::Protocol, where() + ": " + cond.text(), true);
  // The PACS sends C-STOREs on C-GET associations: acknowledge them at once (prompt_ack.hpp).
  use_prompt_ack(net_);

  T_ASC_Parameters* params = nullptr;
  cond = ASC_createAssociationParameters(&params, ASC_DEFAULTMAXPDU);
  if (cond.bad()) {
    ASC_dropNetwork(&net_);
    throw PacsError(ErrorKind::Protocol, where() + ": " + cond.text(), false);
  }
  ASC_setAPTitles(params, peer_.our_ae.c_str(), peer_.ae_title.c_str(), nullptr);

  T_ASC_PresentationContextID id = 1;
  for (const auto& ctx : contexts) {
    std::vector<const char*> ts;
    for (const auto& t : ctx.transfer_syntaxes) ts.push_back(t.c_str());
    cond = ASC_addPresentationContext(params, id, ctx.abstract_syntax.c_str(), ts.data(),
                                      static_cast<int>(ts.size()), ctx.role);
    if (cond.bad()) break;
    id = static_cast<T_ASC_PresentationContextID>(id + 2);
  }
  if (cond.bad()) {
    ASC_destroyAssociationParameters(&params);
    ASC_dropNetwork(&net_);
    throw PacsError(ErrorKind::Protocol, where() + ": " + cond.text(), false);
  }

  // The TCP connect is ours, with this peer's timeout; DUL gets the socket (connect.hpp).
  int fd = -1;
  std::string called;
  try {
    fd = connect_within(peer_.host, peer_.port, peer_.timeouts.connect_s, where());
    called = SocketHandOver::address();
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ASC_destroyAssociationParameters(&params);
    ASC_dropNetwork(&net_);
    throw;
  }
  ASC_setPresentationAddresses(params, OFStandard::getHostName().c_str(), called.c_str());
  {
    const SocketHandOver hand_over(fd);
    cond = ASC_requestAssociation(net_, params, &assoc_);
  }
  if (cond.bad()) {
    const PacsError error = request_failure(cond, params, where());
    if (assoc_ != nullptr) {
      ASC_destroyAssociation(&assoc_);  // also frees params
    } else {
      ASC_destroyAssociationParameters(&params);
    }
    ASC_dropNetwork(&net_);
    throw error;
  }
  if (ASC_countAcceptedPresentationContexts(assoc_->params) == 0) {
    abort();
    throw PacsError(ErrorKind::Rejected,
                    where() + ": peer accepted none of the proposed presentation contexts", false);
  }
}

Association::~Association() {
  try {
    release();
  } catch (...) {
  }
}

T_ASC_PresentationContextID Association::context_for(const std::string& abstract_syntax) const {
  if (assoc_ == nullptr) return 0;
  return ASC_findAcceptedPresentationContextID(assoc_, abstract_syntax.c_str());
}

T_ASC_PresentationContextID Association::require_context(const std::string& abstract_syntax) const {
  const auto id = context_for(abstract_syntax);
  if (id == 0) {
    const char* name = dcmFindNameOfUID(abstract_syntax.c_str(), abstract_syntax.c_str());
    throw PacsError(ErrorKind::Rejected, where() + ": peer did not accept " + std::string(name),
                    false);
  }
  return id;
}

std::vector<AcceptedContext> Association::accepted_contexts() const {
  std::vector<AcceptedContext> out;
  if (assoc_ == nullptr) return out;
  const int n = ASC_countPresentationContexts(assoc_->params);
  for (int i = 0; i < n; ++i) {
    T_ASC_PresentationContext pc;
    if (ASC_getPresentationContext(assoc_->params, i, &pc).bad()) continue;
    if (pc.resultReason != ASC_P_ACCEPTANCE) continue;
    out.push_back({pc.presentationContextID, pc.abstractSyntax, pc.acceptedTransferSyntax});
  }
  return out;
}

void Association::release() {
  if (assoc_ != nullptr) {
    ASC_releaseAssociation(assoc_);  // on failure destroy just closes the connection
    ASC_destroyAssociation(&assoc_);
  }
  if (net_ != nullptr) ASC_dropNetwork(&net_);
}

void Association::abort() {
  // DCMTK's ASC_abortAssociation() sends A-ABORT and then waits up to the ACSE timeout for
  // the peer to close; a stuck peer would hold us 30 s. Closing the connection is an abort
  // to the peer as well, and immediate.
  drop();
}

void Association::drop() {
  if (assoc_ != nullptr) {
    ASC_dropAssociation(assoc_);
    ASC_destroyAssociation(&assoc_);
  }
  if (net_ != nullptr) ASC_dropNetwork(&net_);
}

std::string Association::where() const {
  return where_of(peer_, what_);
}

std::string where_of(const Peer& peer, const std::string& what) {
  return what + " " + peer.ae_title + "@" + peer.host + ":" + std::to_string(peer.port);
}

Uint16 next_message_id() {
  static std::atomic<unsigned> counter{static_cast<unsigned>(::getpid()) * 7919u};
  for (;;) {
    const auto v = static_cast<Uint16>(counter.fetch_add(1) & 0xFFFFu);
    if (v != 0) return v;
  }
}

bool is_timeout(const OFCondition& cond) {
  return cond == DIMSE_NODATAAVAILABLE || cond == DUL_READTIMEOUT;
}

PacsError network_error(const OFCondition& cond, const std::string& where) {
  const std::string text = where + ": " + cond.text();
  if (is_timeout(cond)) return PacsError(ErrorKind::Timeout, text + " (timeout)", true);
  if (cond.module() == OFM_dcmnet &&
      (cond.code() == DULC_TCPINITERROR || cond.code() == DULC_UNKNOWNHOST))
    return PacsError(ErrorKind::Connect, text, true);
  if (cond == DUL_REQUESTASSOCIATIONFAILED) return PacsError(ErrorKind::Connect, text, true);
  if (cond == DUL_PEERABORTEDASSOCIATION || cond == DUL_PEERREQUESTEDRELEASE ||
      cond == DUL_NETWORKCLOSED || cond == DIMSE_READPDVFAILED || cond == DUL_READTIMEOUT ||
      cond == DUL_ILLEGALPDU)
    return PacsError(ErrorKind::Protocol, text, true);
  return PacsError(ErrorKind::Protocol, text, false);
}

std::string get_string(DcmItem& item, const DcmTagKey& key) {
  OFString v;
  if (item.findAndGetOFStringArray(key, v).bad()) return {};
  return text::trim(v.c_str());
}

std::vector<std::string> get_strings(DcmItem& item, const DcmTagKey& key) {
  std::vector<std::string> out;
  const std::string all = get_string(item, key);
  std::size_t start = 0;
  while (start <= all.size() && !all.empty()) {
    const auto pos = all.find('\\', start);
    auto part =
        text::trim(all.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (!part.empty()) out.push_back(part);
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string error_comment(DcmDataset* status_detail) {
  if (status_detail == nullptr) return {};
  return get_string(*status_detail, DCM_ErrorComment);
}

namespace {
std::mutex g_moves_mutex;
std::map<std::pair<std::string, Uint16>, std::string> g_moves;
}  // namespace

void register_move(const std::string& our_ae, Uint16 message_id, const std::string& study_uid) {
  std::lock_guard<std::mutex> lock(g_moves_mutex);
  g_moves[{our_ae, message_id}] = study_uid;
}

void unregister_move(const std::string& our_ae, Uint16 message_id) {
  std::lock_guard<std::mutex> lock(g_moves_mutex);
  g_moves.erase({our_ae, message_id});
}

std::string lookup_move(const std::string& originator_ae, Uint16 message_id) {
  std::lock_guard<std::mutex> lock(g_moves_mutex);
  const auto it = g_moves.find({text::trim(originator_ae), message_id});
  return it == g_moves.end() ? std::string() : it->second;
}

}  // namespace p2x::pacs::detail
