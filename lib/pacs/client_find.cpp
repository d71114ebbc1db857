// Client: C-ECHO and Study Root C-FIND at STUDY, SERIES and IMAGE level.
#include "pacs/association.hpp"
#include "pacs/pacs.hpp"

#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <set>

namespace p2x::pacs {

namespace {

using detail::Association;
using detail::ContextRequest;
using DatasetList = std::vector<std::unique_ptr<DcmDataset>>;

const char* const kFindModel = UID_FINDStudyRootQueryRetrieveInformationModel;

bool is_ascii(const std::string& s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

void find_callback(void* data, T_DIMSE_C_FindRQ* /*req*/, int /*count*/, T_DIMSE_C_FindRSP* /*rsp*/,
                   DcmDataset* ids) {
  if (ids == nullptr) return;
  auto* out = static_cast<DatasetList*>(data);
  auto copy = std::make_unique<DcmDataset>(*ids);
  // Answers come in the PACS's character set; we work in UTF-8.
  const std::string charset = detail::get_string(*copy, DCM_SpecificCharacterSet);
  if (!charset.empty() && charset != "ISO_IR 6" && charset != "ISO_IR 192") {
    const OFCondition cond = copy->convertToUTF8();
    if (cond.bad())
      spdlog::warn("pacs: cannot convert C-FIND answer from '{}' to UTF-8: {}", charset,
                   cond.text());
  }
  out->push_back(std::move(copy));
}

// One C-FIND on an open association; all pending answers, or PacsError.
DatasetList run_find(Association& assoc, DcmDataset& keys) {
  // Our keys are ASCII unless a caller passes non-ASCII values: then declare UTF-8.
  bool ascii = true;
  for (unsigned long i = 0; i < keys.card(); ++i) {
    OFString v;
    if (keys.getElement(i)->getOFStringArray(v).good() && !is_ascii(v.c_str())) ascii = false;
  }
  if (!ascii) keys.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");

  const T_ASC_PresentationContextID pres = assoc.require_context(kFindModel);
  T_DIMSE_C_FindRQ req;
  std::memset(&req, 0, sizeof(req));
  req.MessageID = detail::next_message_id();
  OFStandard::strlcpy(req.AffectedSOPClassUID, kFindModel, sizeof(req.AffectedSOPClassUID));
  req.DataSetType = DIMSE_DATASET_PRESENT;
  req.Priority = DIMSE_PRIORITY_MEDIUM;

  DatasetList answers;
  int count = 0;
  T_DIMSE_C_FindRSP rsp;
  std::memset(&rsp, 0, sizeof(rsp));
  DcmDataset* status_detail = nullptr;
  const OFCondition cond =
      DIMSE_findUser(assoc.get(), pres, &req, &keys, count, find_callback, &answers,
                     DIMSE_NONBLOCKING, assoc.peer().timeouts.dimse_s, &rsp, &status_detail);
  const std::string comment = detail::error_comment(status_detail);
  delete status_detail;
  if (cond.bad()) {
    const PacsError e = detail::network_error(cond, assoc.where());
    assoc.abort();
    throw e;
  }
  if (rsp.DimseStatus != STATUS_Success) {
    std::string text = assoc.where() + ": status 0x";
    char hex[8];
    std::snprintf(hex, sizeof(hex), "%04X", rsp.DimseStatus);
    text += std::string(hex) + " " + DU_cfindStatusString(rsp.DimseStatus);
    if (!comment.empty()) text += " (" + comment + ")";
    const bool transient = (rsp.DimseStatus & 0xFF00) == 0xA700;
    throw PacsError(ErrorKind::Failed, text, transient);
  }
  return answers;
}

// The FIND model and, for a C-GET, the GET model with the storage classes of `get`; else the
// MOVE model.
std::vector<ContextRequest> session_contexts(const detail::GetProposal* get) {
  std::vector<ContextRequest> out = {
      {kFindModel, detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}};
  if (get != nullptr) {
    out.insert(out.end(), get->contexts.begin(), get->contexts.end());
  } else {
    out.push_back({UID_MOVEStudyRootQueryRetrieveInformationModel, detail::uncompressed_syntaxes(),
                   ASC_SC_ROLE_DEFAULT});
  }
  return out;
}

int get_int(DcmItem& item, const DcmTagKey& key) {
  const std::string v = detail::get_string(item, key);
  if (v.empty()) return -1;
  try {
    return std::stoi(v);
  } catch (...) {
    return -1;
  }
}

std::vector<InstanceInfo> find_instances_on(Association& assoc, const std::string& study_uid,
                                            const std::string& series_uid) {
  DcmDataset keys;
  keys.putAndInsertString(DCM_QueryRetrieveLevel, "IMAGE");
  keys.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
  keys.putAndInsertString(DCM_SeriesInstanceUID, series_uid.c_str());
  keys.putAndInsertString(DCM_SOPInstanceUID, "");
  keys.putAndInsertString(DCM_SOPClassUID, "");
  std::vector<InstanceInfo> out;
  std::set<std::string> seen;
  for (auto& ds : run_find(assoc, keys)) {
    InstanceInfo info;
    info.sop_uid = detail::get_string(*ds, DCM_SOPInstanceUID);
    info.sop_class = detail::get_string(*ds, DCM_SOPClassUID);
    if (info.sop_uid.empty() || !seen.insert(info.sop_uid).second) continue;
    out.push_back(std::move(info));
  }
  return out;
}

// Modalities of a study's series (for PACSes that do not answer ModalitiesInStudy).
std::vector<std::string> series_modalities(Association& assoc, const std::string& study_uid) {
  DcmDataset keys;
  keys.putAndInsertString(DCM_QueryRetrieveLevel, "SERIES");
  keys.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
  keys.putAndInsertString(DCM_SeriesInstanceUID, "");
  keys.putAndInsertString(DCM_Modality, "");
  std::vector<std::string> out;
  for (auto& ds : run_find(assoc, keys)) {
    const std::string m = detail::get_string(*ds, DCM_Modality);
    if (!m.empty() && std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  }
  return out;
}

std::vector<StudyMatch> find_studies_on(Association& assoc, const Query& query) {
  DcmDataset keys;
  keys.putAndInsertString(DCM_QueryRetrieveLevel, "STUDY");
  keys.putAndInsertString(DCM_SpecificCharacterSet, "");
  keys.putAndInsertString(DCM_StudyInstanceUID, query.study_uid.c_str());
  keys.putAndInsertString(DCM_AccessionNumber, query.accession.c_str());
  keys.putAndInsertString(DCM_PatientID, query.patient_id.c_str());
  keys.putAndInsertString(DCM_PatientName, "");
  keys.putAndInsertString(DCM_StudyDate, query.study_date.c_str());
  keys.putAndInsertString(DCM_StudyDescription, "");
  keys.putAndInsertString(DCM_ModalitiesInStudy, query.modality.c_str());
  keys.putAndInsertString(DCM_SOPClassesInStudy, "");
  keys.putAndInsertString(DCM_NumberOfStudyRelatedInstances, "");

  DatasetList answers = run_find(assoc, keys);

  std::vector<StudyMatch> out;
  std::set<std::string> seen;
  for (auto& ds : answers) {
    StudyMatch m;
    m.study_uid = detail::get_string(*ds, DCM_StudyInstanceUID);
    if (m.study_uid.empty() || !seen.insert(m.study_uid).second) continue;
    m.patient_id = detail::get_string(*ds, DCM_PatientID);
    m.patient_name = detail::get_string(*ds, DCM_PatientName);
    m.study_date = detail::get_string(*ds, DCM_StudyDate);
    m.accession = detail::get_string(*ds, DCM_AccessionNumber);
    m.description = detail::get_string(*ds, DCM_StudyDescription);
    m.modalities = detail::get_strings(*ds, DCM_ModalitiesInStudy);
    m.sop_classes = detail::get_strings(*ds, DCM_SOPClassesInStudy);
    m.instances = get_int(*ds, DCM_NumberOfStudyRelatedInstances);
    if (!query.modality.empty() && m.modalities.empty())
      m.modalities = series_modalities(assoc, m.study_uid);  // PACS ignores the key
    // A PACS may ignore keys it does not support: check what it answered.
    if (!query.study_uid.empty() && m.study_uid != query.study_uid) continue;
    if (!query.accession.empty() && !m.accession.empty() && m.accession != query.accession)
      continue;
    if (!query.patient_id.empty() && !m.patient_id.empty() && m.patient_id != query.patient_id)
      continue;
    if (!query.modality.empty() && !m.modalities.empty() &&
        std::find(m.modalities.begin(), m.modalities.end(), query.modality) == m.modalities.end())
      continue;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<SeriesInfo> find_series_on(Association& assoc, const std::string& study_uid) {
  DcmDataset keys;
  keys.putAndInsertString(DCM_QueryRetrieveLevel, "SERIES");
  keys.putAndInsertString(DCM_StudyInstanceUID, study_uid.c_str());
  keys.putAndInsertString(DCM_SeriesInstanceUID, "");
  keys.putAndInsertString(DCM_Modality, "");
  keys.putAndInsertString(DCM_SeriesDescription, "");
  keys.putAndInsertString(DCM_SeriesNumber, "");
  keys.putAndInsertString(DCM_NumberOfSeriesRelatedInstances, "");

  std::vector<SeriesInfo> out;
  std::set<std::string> seen;
  for (auto& ds : run_find(assoc, keys)) {
    SeriesInfo s;
    s.series_uid = detail::get_string(*ds, DCM_SeriesInstanceUID);
    if (s.series_uid.empty() || !seen.insert(s.series_uid).second) continue;
    s.modality = detail::get_string(*ds, DCM_Modality);
    s.description = detail::get_string(*ds, DCM_SeriesDescription);
    s.number = std::max(0, get_int(*ds, DCM_SeriesNumber));
    s.expected = get_int(*ds, DCM_NumberOfSeriesRelatedInstances);
    out.push_back(std::move(s));
  }
  // No count from the PACS for some series: count their instances one level down.
  for (auto& s : out) {
    if (s.expected >= 0) continue;
    s.expected = static_cast<int>(find_instances_on(assoc, study_uid, s.series_uid).size());
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const SeriesInfo& a, const SeriesInfo& b) { return a.number < b.number; });
  return out;
}

}  // namespace

Client::Client(Peer peer) : peer_(std::move(peer)) {
  init_network();
}

double Client::echo() {
  const auto start = std::chrono::steady_clock::now();
  Association assoc(
      peer_, {{UID_VerificationSOPClass, detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}},
      "C-ECHO");
  const auto pres = assoc.require_context(UID_VerificationSOPClass);
  DIC_US status = 0;
  DcmDataset* status_detail = nullptr;
  const OFCondition cond = DIMSE_echoUser(assoc.get(), detail::next_message_id(), DIMSE_NONBLOCKING,
                                          peer_.timeouts.dimse_s, &status, &status_detail);
  delete status_detail;
  (void)pres;
  if (cond.bad()) {
    const PacsError e = detail::network_error(cond, assoc.where());
    assoc.abort();
    throw e;
  }
  if (status != STATUS_Success)
    throw PacsError(ErrorKind::Failed, assoc.where() + ": C-ECHO status " + std::to_string(status),
                    false);
  assoc.release();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Session::Session(const Client& client, bool for_get) : peer_(client.peer()), for_get_(for_get) {}

Session::~Session() = default;  // an open association is released

detail::Association& Session::association(const char* what) {
  if (!assoc_) {
    proposed_.clear();
    proposed_defaults_ = false;
    if (for_get_) {
      const detail::GetProposal get = detail::get_contexts({}, 1);
      assoc_ = std::make_unique<Association>(peer_, session_contexts(&get), what);
      proposed_ = get.classes;
      proposed_defaults_ = true;
    } else {
      assoc_ = std::make_unique<Association>(peer_, session_contexts(nullptr), what);
    }
  }
  assoc_->set_what(what);
  return *assoc_;
}

detail::Association& Session::get_association(const std::vector<std::string>& classes) {
  const auto proposed = [&](const std::string& c) {
    return std::find(proposed_.begin(), proposed_.end(), c) != proposed_.end();
  };
  const bool fits =
      assoc_ && (classes.empty() ? proposed_defaults_
                                 : std::all_of(classes.begin(), classes.end(), proposed));
  if (fits) {
    assoc_->set_what("C-GET");
    return *assoc_;
  }
  close();  // one association towards the PACS at a time
  const detail::GetProposal get = detail::get_contexts(classes, 1);
  if (!get.left_out.empty())
    throw detail::not_negotiated(detail::where_of(peer_, "C-GET"), get.left_out,
                                 detail::too_many_classes(get));
  spdlog::debug("pacs: C-GET association to {} for {}", peer_.ae_title,
                classes.empty() ? "the built-in list of storage SOP classes"
                                : "the study's SOP classes: " + detail::sop_class_names(classes));
  assoc_ = std::make_unique<Association>(peer_, session_contexts(&get), "C-GET");
  proposed_ = get.classes;
  proposed_defaults_ = classes.empty();
  return *assoc_;
}

template <typename F>
auto Session::run(const char* what, F&& query) -> decltype(query(std::declval<Association&>())) {
  try {
    return query(association(what));
  } catch (...) {
    assoc_.reset();  // after an error the association is not reused
    throw;
  }
}

std::vector<StudyMatch> Session::find_studies(const Query& query) {
  if (query.accession.empty() && query.patient_id.empty() && query.study_uid.empty())
    throw std::invalid_argument("C-FIND needs an accession number, a patient ID or a study UID");
  return run("C-FIND", [&](Association& a) { return find_studies_on(a, query); });
}

std::vector<SeriesInfo> Session::find_series(const std::string& study_uid) {
  return run("C-FIND", [&](Association& a) { return find_series_on(a, study_uid); });
}

std::vector<InstanceInfo> Session::find_instances(const std::string& study_uid,
                                                  const std::string& series_uid) {
  return run("C-FIND", [&](Association& a) { return find_instances_on(a, study_uid, series_uid); });
}

RetrieveResult Session::move(const Selection& what, const ProgressFn& on_progress,
                             const AbortFn& should_abort) {
  return run("C-MOVE", [&](Association& a) {
    if (a.context_for(UID_MOVEStudyRootQueryRetrieveInformationModel)) {
      return detail::move_on(a, what, on_progress, should_abort);
    }
    close();  // the PACS refused the MOVE model here: one association at a time
    return Client(peer_).move(what, on_progress, should_abort);
  });
}

RetrieveResult Session::get(const Selection& what, const std::string& dest_dir,
                            const ProgressFn& on_progress, const AbortFn& should_abort) {
  try {
    Association& a = get_association(what.sop_classes);
    if (!a.context_for(UID_GETStudyRootQueryRetrieveInformationModel)) {
      close();  // the PACS refused the GET model next to the FIND model: GET alone
      return Client(peer_).get(what, dest_dir, {}, on_progress, should_abort);
    }
    detail::require_classes(a, what.sop_classes);
    return detail::get_on(a, what, dest_dir, on_progress, should_abort);
  } catch (...) {
    assoc_.reset();  // after an error the association is not reused
    proposed_.clear();
    throw;
  }
}

void Session::close() {
  if (assoc_) assoc_->release();
  assoc_.reset();
  proposed_.clear();
  proposed_defaults_ = false;
}

std::vector<StudyMatch> Client::find_studies(const Query& query) {
  Session session(*this);
  auto out = session.find_studies(query);
  session.close();
  return out;
}

std::vector<SeriesInfo> Client::find_series(const std::string& study_uid) {
  Session session(*this);
  auto out = session.find_series(study_uid);
  session.close();
  return out;
}

std::vector<InstanceInfo> Client::find_instances(const std::string& study_uid,
                                                 const std::string& series_uid) {
  Session session(*this);
  auto out = session.find_instances(study_uid, series_uid);
  session.close();
  return out;
}

}  // namespace p2x::pacs
