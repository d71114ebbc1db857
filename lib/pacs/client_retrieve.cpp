// Client: C-MOVE (to our AE) and C-GET (stored by this SCU) of a selection, one exchange per
// request (retrieve_exchange.hpp) on one association; the C-GET's storage contexts and files.
#include "pacs/association.hpp"
#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"
#include "pacs/retrieve_exchange.hpp"

#include <dcmtk/dcmdata/dcuid.h>

#include <spdlog/spdlog.h>

#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <utility>

namespace p2x::pacs {

namespace {

using detail::Association;
using detail::ContextRequest;
using detail::RetrieveExchange;

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
    auto requests = detail::build_requests(what);
    const char* model = UID_MOVEStudyRootQueryRetrieveInformationModel;
    const auto pres = assoc.require_context(model);
    RetrieveResult total;
    total.status_text = "0x0000 Success";
    for (auto& req : requests) {
        const Uint16 id = detail::next_message_id();
        MoveRegistration reg(assoc.peer().our_ae, id, what.study_uid);
        RetrieveExchange ex(assoc, false, on_progress, should_abort, total);
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
            if (contexts.size() + reserved >= detail::kMaxContexts) break;
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
    auto requests = detail::build_requests(what);
    std::filesystem::create_directories(dest_dir);
    const char* model = UID_GETStudyRootQueryRetrieveInformationModel;
    const Peer& peer = assoc.peer();
    const auto pres = assoc.require_context(model);
    RetrieveResult total;
    total.status_text = "0x0000 Success";
    std::set<std::string> stored;
    std::mutex mutex;
    // On our own association: the sender is the PACS asked; only the study is checked.
    const detail::StoreResolver resolve = [&](const std::string& study,
                                              const detail::StoreCaller&) {
        if (study != what.study_uid) {
            spdlog::warn("pacs: C-GET from {} sent an instance of study {} (asked for {}): refused",
                         peer.ae_title, study, what.study_uid);
            return detail::StoreTarget::refuse(STATUS_STORE_Refused_OutOfResources,
                                               "no retrieval waiting for this study here");
        }
        detail::StoreTarget target;
        target.dest_dir = dest_dir;
        target.on_stored = [&](const std::string&, const std::string& sop, std::uint64_t bytes) {
            std::lock_guard<std::mutex> lock(mutex);
            if (stored.insert(sop).second) ++total.received;
            total.bytes += bytes;
        };
        return target;
    };

    for (auto& req : requests) {
        const Uint16 id = detail::next_message_id();
        RetrieveExchange ex(assoc, true, on_progress, should_abort, total);
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
