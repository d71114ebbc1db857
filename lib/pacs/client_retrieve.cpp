// Client: C-MOVE (to our AE) and C-GET (stored by this SCU) with progress, status checks and
// an abort hook polled about once a second.
#include "pacs/association.hpp"
#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"

#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmnet/diutil.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>

namespace p2x::pacs {

namespace {

using detail::Association;
using detail::ContextRequest;
using Clock = std::chrono::steady_clock;

constexpr int kPollSeconds = 1;
constexpr std::size_t kMaxUidsPerRequest = 200;
constexpr std::size_t kMaxContexts = 128;

struct Request {
    std::unique_ptr<DcmDataset> ids;
    std::string label;
};

// The identifiers to send for a selection: one request for a study, one per series, or
// instance UID lists (IMAGE level, in chunks).
std::vector<Request> build_requests(const Selection& what) {
    if (!detail::is_valid_uid(what.study_uid))
        throw std::invalid_argument("retrieve: invalid study UID '" + what.study_uid + "'");
    std::vector<Request> out;
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

std::string status_hex(Uint16 status) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "%04X", status);
    return std::string("0x") + hex;
}

bool is_pending(Uint16 status) { return status == 0xFF00 || status == 0xFF01; }

// Per-request response counters (as the PACS reports them).
struct Counters {
    int remaining = -1, completed = 0, failed = 0, warning = 0;
};

template <typename Rsp>
void read_counters(const Rsp& rsp, unsigned remaining_flag, unsigned completed_flag,
                   unsigned failed_flag, unsigned warning_flag, Counters& c) {
    if (rsp.opts & remaining_flag) c.remaining = rsp.NumberOfRemainingSubOperations;
    if (rsp.opts & completed_flag) c.completed = rsp.NumberOfCompletedSubOperations;
    if (rsp.opts & failed_flag) c.failed = rsp.NumberOfFailedSubOperations;
    if (rsp.opts & warning_flag) c.warning = rsp.NumberOfWarningSubOperations;
}

// Runs one C-MOVE or C-GET exchange: sends the request and handles responses (and, for C-GET,
// incoming C-STOREs through `on_store`) until the final response.
class Exchange {
public:
    Exchange(Association& assoc, bool is_get, const ProgressFn& on_progress,
             const AbortFn& should_abort, RetrieveResult& total)
        : assoc_(assoc),
          is_get_(is_get),
          on_progress_(on_progress),
          should_abort_(should_abort),
          total_(total) {}

    std::function<bool(T_ASC_PresentationContextID, T_DIMSE_C_StoreRQ&)> on_store;

    void run(T_ASC_PresentationContextID pres, Uint16 message_id, const char* sop_class,
             DcmDataset& ids, const std::string& label) {
        T_DIMSE_Message msg;
        std::memset(&msg, 0, sizeof(msg));
        if (is_get_) {
            msg.CommandField = DIMSE_C_GET_RQ;
            auto& r = msg.msg.CGetRQ;
            r.MessageID = message_id;
            OFStandard::strlcpy(r.AffectedSOPClassUID, sop_class, sizeof(r.AffectedSOPClassUID));
            r.Priority = DIMSE_PRIORITY_MEDIUM;
            r.DataSetType = DIMSE_DATASET_PRESENT;
        } else {
            msg.CommandField = DIMSE_C_MOVE_RQ;
            auto& r = msg.msg.CMoveRQ;
            r.MessageID = message_id;
            OFStandard::strlcpy(r.AffectedSOPClassUID, sop_class, sizeof(r.AffectedSOPClassUID));
            r.Priority = DIMSE_PRIORITY_MEDIUM;
            r.DataSetType = DIMSE_DATASET_PRESENT;
            OFStandard::strlcpy(r.MoveDestination, assoc_.peer().our_ae.c_str(),
                                sizeof(r.MoveDestination));
        }
        OFCondition cond = DIMSE_sendMessageUsingMemoryData(assoc_.get(), pres, &msg, nullptr,
                                                            &ids, nullptr, nullptr);
        if (cond.bad()) fail_network(cond);

        Counters c;
        auto last_activity = Clock::now();
        const int idle_s = assoc_.peer().timeouts.idle_s;
        for (;;) {
            if (wants_abort(last_activity, idle_s)) abort_exchange(pres, message_id, label);
            T_DIMSE_Message rsp;
            std::memset(&rsp, 0, sizeof(rsp));
            T_ASC_PresentationContextID rsp_pres = 0;
            DcmDataset* detail = nullptr;
            cond = DIMSE_receiveCommand(assoc_.get(), DIMSE_NONBLOCKING, kPollSeconds, &rsp_pres,
                                        &rsp, &detail);
            if (cond == DIMSE_NODATAAVAILABLE) continue;
            std::unique_ptr<DcmDataset> detail_owner(detail);
            if (cond.bad()) fail_network(cond);
            last_activity = Clock::now();

            if (rsp.CommandField == DIMSE_C_STORE_RQ && is_get_ && on_store) {
                if (!on_store(rsp_pres, rsp.msg.CStoreRQ)) return;  // on_store threw or aborted
                Progress p{c.remaining, total_.completed + c.completed, total_.failed + c.failed,
                           total_.warning + c.warning, total_.received};
                if (on_progress_) on_progress_(p);
                continue;
            }
            Uint16 status = 0;
            bool has_dataset = false;
            if (!is_get_ && rsp.CommandField == DIMSE_C_MOVE_RSP) {
                const auto& r = rsp.msg.CMoveRSP;
                status = r.DimseStatus;
                has_dataset = r.DataSetType != DIMSE_DATASET_NULL;
                read_counters(r, O_MOVE_NUMBEROFREMAININGSUBOPERATIONS,
                              O_MOVE_NUMBEROFCOMPLETEDSUBOPERATIONS,
                              O_MOVE_NUMBEROFFAILEDSUBOPERATIONS,
                              O_MOVE_NUMBEROFWARNINGSUBOPERATIONS, c);
            } else if (is_get_ && rsp.CommandField == DIMSE_C_GET_RSP) {
                const auto& r = rsp.msg.CGetRSP;
                status = r.DimseStatus;
                has_dataset = r.DataSetType != DIMSE_DATASET_NULL;
                read_counters(r, O_GET_NUMBEROFREMAININGSUBOPERATIONS,
                              O_GET_NUMBEROFCOMPLETEDSUBOPERATIONS,
                              O_GET_NUMBEROFFAILEDSUBOPERATIONS,
                              O_GET_NUMBEROFWARNINGSUBOPERATIONS, c);
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
                cond = DIMSE_receiveDataSetInMemory(assoc_.get(), DIMSE_NONBLOCKING,
                                                    assoc_.peer().timeouts.dimse_s, &ds_pres, &ds,
                                                    nullptr, nullptr);
                delete ds;
                if (cond.bad()) fail_network(cond);
            }
            if (is_pending(status)) {
                Progress p{c.remaining, total_.completed + c.completed, total_.failed + c.failed,
                           total_.warning + c.warning, total_.received};
                if (on_progress_) on_progress_(p);
                continue;
            }
            finish(status, detail::error_comment(detail_owner.get()), c, label);
            return;
        }
    }

private:
    bool wants_abort(Clock::time_point last_activity, int idle_s) {
        if (should_abort_) return should_abort_();
        return idle_s > 0 && Clock::now() - last_activity > std::chrono::seconds(idle_s);
    }

    [[noreturn]] void fail_network(const OFCondition& cond) {
        const PacsError e = detail::network_error(cond, assoc_.where());
        assoc_.abort();
        throw e;
    }

    [[noreturn]] void abort_exchange(T_ASC_PresentationContextID pres, Uint16 message_id,
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
            const OFCondition cond = DIMSE_receiveCommand(assoc_.get(), DIMSE_NONBLOCKING, 1,
                                                          &rsp_pres, &rsp, &detail);
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
                        assoc_.where() + ": retrieve of " + label + " aborted (idle or stopped)",
                        true);
    }

    void finish(Uint16 status, const std::string& comment, const Counters& c,
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
        // A failure that reports sub-operations is a result for the caller to judge; one
        // without (unknown destination, cannot process) is an error.
        if (c.completed > 0 || c.failed > 0 || c.warning > 0) return;
        const bool transient = (status & 0xFF00) == 0xA700 || status == 0xFE00;
        throw PacsError(ErrorKind::Failed,
                        assoc_.where() + ": retrieve of " + label + " failed: " + text, transient);
    }

    Association& assoc_;
    bool is_get_;
    const ProgressFn& on_progress_;
    const AbortFn& should_abort_;
    RetrieveResult& total_;
};

// Keeps the Move Originator registration for the length of one C-MOVE.
class MoveRegistration {
public:
    MoveRegistration(std::string ae, Uint16 id, const std::string& study)
        : ae_(std::move(ae)), id_(id) {
        detail::register_move(ae_, id_, study);
    }
    ~MoveRegistration() { detail::unregister_move(ae_, id_); }
    MoveRegistration(const MoveRegistration&) = delete;
    MoveRegistration& operator=(const MoveRegistration&) = delete;

private:
    std::string ae_;
    Uint16 id_;
};

}  // namespace

RetrieveResult detail::move_on(Association& assoc, const Selection& what,
                               const ProgressFn& on_progress, const AbortFn& should_abort) {
    auto requests = build_requests(what);
    const char* model = UID_MOVEStudyRootQueryRetrieveInformationModel;
    const auto pres = assoc.require_context(model);
    RetrieveResult total;
    total.status_text = "0x0000 Success";
    for (auto& req : requests) {
        const Uint16 id = detail::next_message_id();
        MoveRegistration reg(assoc.peer().our_ae, id, what.study_uid);
        Exchange ex(assoc, false, on_progress, should_abort, total);
        ex.run(pres, id, model, *req.ids, req.label);
    }
    return total;
}

RetrieveResult Client::move(const Selection& what, const ProgressFn& on_progress,
                            const AbortFn& should_abort) {
    Association assoc(peer_,
                      {{UID_MOVEStudyRootQueryRetrieveInformationModel,
                        detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}},
                      "C-MOVE");
    RetrieveResult total = detail::move_on(assoc, what, on_progress, should_abort);
    assoc.release();
    return total;
}

std::vector<ContextRequest> detail::get_contexts(const std::vector<std::string>& sop_classes,
                                                std::size_t reserved) {
    // The GET model, then (storage class x transfer syntax group) with us as SCP, group by
    // group so every class gets uncompressed first, within 128 contexts.
    std::vector<std::string> classes;
    std::set<std::string> seen;
    for (const auto& c : sop_classes.empty() ? detail::default_get_sop_classes() : sop_classes)
        if (!c.empty() && seen.insert(c).second) classes.push_back(c);
    std::vector<ContextRequest> contexts = {{UID_GETStudyRootQueryRetrieveInformationModel,
                                             detail::uncompressed_syntaxes(), ASC_SC_ROLE_DEFAULT}};
    for (const auto& group : detail::get_syntax_groups()) {
        for (const auto& c : classes) {
            if (contexts.size() + reserved >= kMaxContexts) break;
            contexts.push_back({c, group, ASC_SC_ROLE_SCP});
        }
    }
    return contexts;
}

RetrieveResult Client::get(const Selection& what, const std::string& dest_dir,
                           const std::vector<std::string>& sop_classes,
                           const ProgressFn& on_progress, const AbortFn& should_abort) {
    Association assoc(peer_, detail::get_contexts(sop_classes, 0), "C-GET");
    RetrieveResult total = detail::get_on(assoc, what, dest_dir, on_progress, should_abort);
    assoc.release();
    return total;
}

RetrieveResult detail::get_on(Association& assoc, const Selection& what,
                              const std::string& dest_dir, const ProgressFn& on_progress,
                              const AbortFn& should_abort) {
    auto requests = build_requests(what);
    std::filesystem::create_directories(dest_dir);
    const char* model = UID_GETStudyRootQueryRetrieveInformationModel;
    const Peer& peer = assoc.peer();
    const auto pres = assoc.require_context(model);
    RetrieveResult total;
    total.status_text = "0x0000 Success";
    std::set<std::string> stored;
    std::mutex mutex;
    const detail::StoreResolver resolve =
        [&](const std::string& study) -> std::optional<detail::StoreTarget> {
        if (study != what.study_uid) {
            spdlog::warn("pacs: C-GET from {} sent an instance of study {} (asked for {}): refused",
                         peer.ae_title, study, what.study_uid);
            return std::nullopt;
        }
        return detail::StoreTarget{
            dest_dir, [&](const std::string&, const std::string& sop, std::uint64_t bytes) {
                std::lock_guard<std::mutex> lock(mutex);
                if (stored.insert(sop).second) ++total.received;
                total.bytes += bytes;
            }};
    };

    for (auto& req : requests) {
        const Uint16 id = detail::next_message_id();
        Exchange ex(assoc, true, on_progress, should_abort, total);
        ex.on_store = [&](T_ASC_PresentationContextID store_pres, T_DIMSE_C_StoreRQ& rq) {
            const auto out = detail::store_instance(assoc.get(), store_pres, rq, dest_dir, resolve,
                                                    peer.timeouts.dimse_s, false);
            if (!out.network_ok) {
                const PacsError e = detail::network_error(out.cond, assoc.where());
                assoc.abort();
                throw e;
            }
            return true;
        };
        ex.run(pres, id, model, *req.ids, req.label);
    }
    return total;
}

}  // namespace p2x::pacs
