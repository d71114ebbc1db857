// One C-MOVE or C-GET exchange and the identifiers of a selection (see retrieve_exchange.hpp).
#include "pacs/retrieve_exchange.hpp"
#include "text/text.hpp"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmnet/diutil.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace p2x::pacs::detail {

namespace {

constexpr int kPollSeconds = 1;
constexpr std::size_t kMaxUidsPerRequest = 200;

std::string status_hex(Uint16 status) {
  char hex[8];
  std::snprintf(hex, sizeof(hex), "%04X", status);
  return std::string("0x") + hex;
}

bool is_pending(Uint16 status) {
  return status == 0xFF00 || status == 0xFF01;
}

// The common fields of a C-MOVE-RQ or C-GET-RQ.
template <typename Rq>
void fill_request(Rq& r, Uint16 message_id, const char* sop_class) {
  r.MessageID = message_id;
  OFStandard::strlcpy(r.AffectedSOPClassUID, sop_class, sizeof(r.AffectedSOPClassUID));
  r.Priority = DIMSE_PRIORITY_MEDIUM;
  r.DataSetType = DIMSE_DATASET_PRESENT;
}

// Status of a C-MOVE-RSP or C-GET-RSP, the sub-operation counters it reports into c, and
// whether a data set follows.
template <typename Rsp, typename Counters>
Uint16 parse_response(const Rsp& rsp, unsigned remaining_flag, unsigned completed_flag,
                      unsigned failed_flag, unsigned warning_flag, Counters& c, bool& has_dataset) {
  if (rsp.opts & remaining_flag) c.remaining = rsp.NumberOfRemainingSubOperations;
  if (rsp.opts & completed_flag) c.completed = rsp.NumberOfCompletedSubOperations;
  if (rsp.opts & failed_flag) c.failed = rsp.NumberOfFailedSubOperations;
  if (rsp.opts & warning_flag) c.warning = rsp.NumberOfWarningSubOperations;
  has_dataset = rsp.DataSetType != DIMSE_DATASET_NULL;
  return rsp.DimseStatus;
}

}  // namespace

std::vector<RetrieveRequest> build_requests(const Selection& what) {
  if (!text::is_valid_uid(what.study_uid))
    throw std::invalid_argument("retrieve: invalid study UID '" + what.study_uid + "'");
  std::vector<RetrieveRequest> out;
  const auto base = [&](const char* level) {
    auto ds = std::make_unique<DcmDataset>();
    ds->putAndInsertString(DCM_QueryRetrieveLevel, level);
    ds->putAndInsertString(DCM_StudyInstanceUID, what.study_uid.c_str());
    return ds;
  };
  if (what.sop_uids.empty() && what.series_uids.empty()) {
    out.push_back({base("STUDY"), "study " + what.study_uid});
    return out;
  }
  if (what.sop_uids.empty()) {
    for (const auto& series : what.series_uids) {
      auto ds = base("SERIES");
      ds->putAndInsertString(DCM_SeriesInstanceUID, series.c_str());
      out.push_back({std::move(ds), "series " + series});
    }
    return out;
  }
  if (what.series_uids.size() != 1)
    throw std::invalid_argument("retrieve of instances needs exactly one series UID");
  for (std::size_t i = 0; i < what.sop_uids.size(); i += kMaxUidsPerRequest) {
    std::string list;
    const std::size_t end = std::min(what.sop_uids.size(), i + kMaxUidsPerRequest);
    for (std::size_t j = i; j < end; ++j) {
      if (!list.empty()) list += '\\';
      list += what.sop_uids[j];
    }
    auto ds = base("IMAGE");
    ds->putAndInsertString(DCM_SeriesInstanceUID, what.series_uids.front().c_str());
    ds->putAndInsertString(DCM_SOPInstanceUID, list.c_str());
    out.push_back({std::move(ds), std::to_string(end - i) + " instances"});
  }
  return out;
}

void RetrieveExchange::send_request(T_ASC_PresentationContextID pres, Uint16 message_id,
                                    const char* sop_class, DcmDataset& ids) {
  T_DIMSE_Message msg;
  std::memset(&msg, 0, sizeof(msg));
  if (is_get_) {
    msg.CommandField = DIMSE_C_GET_RQ;
    fill_request(msg.msg.CGetRQ, message_id, sop_class);
  } else {
    msg.CommandField = DIMSE_C_MOVE_RQ;
    auto& r = msg.msg.CMoveRQ;
    fill_request(r, message_id, sop_class);
    OFStandard::strlcpy(r.MoveDestination, assoc_.peer().our_ae.c_str(), sizeof(r.MoveDestination));
  }
  const OFCondition cond =
      DIMSE_sendMessageUsingMemoryData(assoc_.get(), pres, &msg, nullptr, &ids, nullptr, nullptr);
  if (cond.bad()) fail_network(cond);
}

void RetrieveExchange::run(T_ASC_PresentationContextID pres, Uint16 message_id,
                           const char* sop_class, DcmDataset& ids, const std::string& label) {
  send_request(pres, message_id, sop_class, ids);
  Counters c;
  auto last_activity = Clock::now();
  const int idle_s = assoc_.peer().timeouts.idle_s;
  for (;;) {
    if (wants_abort(last_activity, idle_s)) abort_exchange(pres, message_id, label);
    T_DIMSE_Message rsp;
    std::memset(&rsp, 0, sizeof(rsp));
    T_ASC_PresentationContextID rsp_pres = 0;
    DcmDataset* detail = nullptr;
    const OFCondition cond = DIMSE_receiveCommand(assoc_.get(), DIMSE_NONBLOCKING, kPollSeconds,
                                                  &rsp_pres, &rsp, &detail);
    if (cond == DIMSE_NODATAAVAILABLE) continue;
    std::unique_ptr<DcmDataset> detail_owner(detail);
    if (cond.bad()) fail_network(cond);
    last_activity = Clock::now();

    if (rsp.CommandField == DIMSE_C_STORE_RQ && is_get_ && on_store) {
      if (!on_store(rsp_pres, rsp.msg.CStoreRQ)) return;  // on_store threw or aborted
      report(c);
      continue;
    }
    const Uint16 status = read_response(rsp, c);
    if (is_pending(status)) {
      report(c);
      continue;
    }
    finish(status, error_comment(detail_owner.get()), c, label);
    return;
  }
}

Uint16 RetrieveExchange::read_response(const T_DIMSE_Message& rsp, Counters& c) {
  Uint16 status = 0;
  bool has_dataset = false;
  if (!is_get_ && rsp.CommandField == DIMSE_C_MOVE_RSP) {
    status =
        parse_response(rsp.msg.CMoveRSP, O_MOVE_NUMBEROFREMAININGSUBOPERATIONS,
                       O_MOVE_NUMBEROFCOMPLETEDSUBOPERATIONS, O_MOVE_NUMBEROFFAILEDSUBOPERATIONS,
                       O_MOVE_NUMBEROFWARNINGSUBOPERATIONS, c, has_dataset);
  } else if (is_get_ && rsp.CommandField == DIMSE_C_GET_RSP) {
    status = parse_response(rsp.msg.CGetRSP, O_GET_NUMBEROFREMAININGSUBOPERATIONS,
                            O_GET_NUMBEROFCOMPLETEDSUBOPERATIONS, O_GET_NUMBEROFFAILEDSUBOPERATIONS,
                            O_GET_NUMBEROFWARNINGSUBOPERATIONS, c, has_dataset);
  } else {
    const PacsError e(ErrorKind::Protocol,
                      assoc_.where() + ": unexpected DIMSE command 0x" +
                          status_hex(static_cast<Uint16>(rsp.CommandField)),
                      true);
    assoc_.abort();
    throw e;
  }
  if (has_dataset) {
    // Failed SOP Instance UID List of a final failure/warning response.
    DcmDataset* ds = nullptr;
    T_ASC_PresentationContextID ds_pres = 0;
    const OFCondition cond = DIMSE_receiveDataSetInMemory(assoc_.get(), DIMSE_NONBLOCKING,
                                                          assoc_.peer().timeouts.dimse_s, &ds_pres,
                                                          &ds, nullptr, nullptr);
    delete ds;
    if (cond.bad()) fail_network(cond);
  }
  return status;
}

void RetrieveExchange::report(const Counters& c) const {
  if (!on_progress_) return;
  on_progress_(Progress{c.remaining, total_.completed + c.completed, total_.failed + c.failed,
                        total_.warning + c.warning, total_.received});
}

bool RetrieveExchange::wants_abort(Clock::time_point last_activity, int idle_s) const {
  if (should_abort_) return should_abort_();
  return idle_s > 0 && Clock::now() - last_activity > std::chrono::seconds(idle_s);
}

void RetrieveExchange::fail_network(const OFCondition& cond) {
  const PacsError e = network_error(cond, assoc_.where());
  assoc_.abort();
  throw e;
}

void RetrieveExchange::abort_exchange(T_ASC_PresentationContextID pres, Uint16 message_id,
                                      const std::string& label) {
  DIMSE_sendCancelRequest(assoc_.get(), pres, message_id);
  // A responsive PACS confirms the C-CANCEL (final response); then the association is
  // released. One that does not answer (stuck) gets its connection closed.
  bool confirmed = false;
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  while (Clock::now() < deadline) {
    T_DIMSE_Message rsp;
    std::memset(&rsp, 0, sizeof(rsp));
    T_ASC_PresentationContextID rsp_pres = 0;
    DcmDataset* detail = nullptr;
    const OFCondition cond =
        DIMSE_receiveCommand(assoc_.get(), DIMSE_NONBLOCKING, 1, &rsp_pres, &rsp, &detail);
    delete detail;
    if (cond == DIMSE_NODATAAVAILABLE) continue;
    if (cond.bad()) break;
    if (rsp.CommandField == DIMSE_C_MOVE_RSP) {
      if (rsp.msg.CMoveRSP.DataSetType != DIMSE_DATASET_NULL) break;
      if (!is_pending(rsp.msg.CMoveRSP.DimseStatus)) confirmed = true;
    } else if (rsp.CommandField == DIMSE_C_GET_RSP) {
      if (rsp.msg.CGetRSP.DataSetType != DIMSE_DATASET_NULL) break;
      if (!is_pending(rsp.msg.CGetRSP.DimseStatus)) confirmed = true;
    } else {
      break;  // e.g. a C-STORE with data following: just close
    }
    if (confirmed) break;
  }
  if (confirmed) {
    assoc_.release();
  } else {
    assoc_.drop();
  }
  throw PacsError(ErrorKind::Aborted,
                  assoc_.where() + ": retrieve of " + label + " aborted (idle or stopped)", true);
}

void RetrieveExchange::finish(Uint16 status, const std::string& comment, const Counters& c,
                              const std::string& label) {
  total_.completed += c.completed;
  total_.failed += c.failed;
  total_.warning += c.warning;
  const char* name = is_get_ ? DU_cgetStatusString(status) : DU_cmoveStatusString(status);
  std::string text = status_hex(status) + " " + name;
  if (!comment.empty()) text += " (" + comment + ")";
  if (status == STATUS_Success) {
    if (total_.status == STATUS_Success) total_.status_text = text;
    return;
  }
  if (total_.status == STATUS_Success) {
    total_.status = status;
    total_.status_text = text;
  }
  const bool is_warning = (status & 0xF000) == 0xB000;
  if (is_warning) return;
  // A failure that reports sub-operations is a result for the caller to judge (dcmqrscp's
  // 0xA702 with failed counts means a refused sub-association as well as a file it could
  // not read: the pipeline's validation sees what is missing and fetches it again). One
  // without any counts is an error.
  if (c.completed > 0 || c.failed > 0 || c.warning > 0) return;
  throw PacsError(
      ErrorKind::Failed,
      assoc_.where() + ": retrieve of " + label + " failed: " + text + nothing_delivered(status),
      !names_permanent_cause(status));
}

bool RetrieveExchange::names_permanent_cause(Uint16 status) {
  // Retrying the same request cannot cure these: the PACS does not know our AE as a move
  // destination, or does not understand the request. Every other failure without
  // sub-operations (0xC000 "unable to process", 0xA7xx out of resources) may be the PACS
  // unable to deliver right now, e.g. its sub-association refused by our full Storage SCP.
  // (Orthanc answers 0xC000 without a comment also for an unknown destination: that one is
  // retried too, and its message says what to check.)
  return status == 0xA801 || status == 0xA900 || status == 0x0122 || status == 0x0124;
}

std::string RetrieveExchange::nothing_delivered(Uint16 status) const {
  const std::string text = "; no sub-operations reported";
  if (status == 0xA801)
    return text + " (the PACS does not know " + assoc_.peer().our_ae + " as a move destination)";
  if (is_get_) return text + ": the PACS sent nothing";
  return text + ": the PACS could not deliver to " + assoc_.peer().our_ae +
         " (was our Storage SCP full or unreachable from the PACS? does the PACS know " +
         assoc_.peer().our_ae + " as a move destination?)";
}

}  // namespace p2x::pacs::detail
