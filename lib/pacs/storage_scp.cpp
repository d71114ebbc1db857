// Storage SCP: own accept loop (port bound synchronously in start(), so a taken port fails
// there), one thread per association (at most max_associations), association negotiation and
// the DIMSE loop; where instances go is storage_routes.cpp.
#include "pacs/association.hpp"
#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"
#include "pacs/storage_scp_impl.hpp"
#include "text/text.hpp"

#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace p2x::pacs {

using Clock = std::chrono::steady_clock;

namespace {

void reject(T_ASC_Association* assoc, T_ASC_RejectParametersResult result,
            T_ASC_RejectParametersSource source, T_ASC_RejectParametersReason reason) {
    T_ASC_RejectParameters rej;
    rej.result = result;
    rej.source = source;
    rej.reason = reason;
    ASC_rejectAssociation(assoc, &rej);
}

// Storage classes (known or private); not the query/retrieve or other services.
bool acceptable_abstract_syntax(const char* uid) {
    if (std::strcmp(uid, UID_VerificationSOPClass) == 0) return true;
    if (dcmIsaStorageSOPClassUID(uid, ESSC_All)) return true;
    return dcmFindNameOfUID(uid) == nullptr;  // unknown to DCMTK: private storage class
}

}  // namespace

void StorageScp::Impl::accept_loop() {
    while (!stopping.load()) {
        T_ASC_Association* assoc = nullptr;
        const OFCondition cond =
            ASC_receiveAssociation(net, &assoc, static_cast<long>(options.max_pdu), nullptr,
                                   nullptr, OFFalse, DUL_NOBLOCK, 1);
        reap(false);
        if (cond == DUL_NOASSOCIATIONREQUEST) {
            ASC_destroyAssociation(&assoc);
            continue;
        }
        if (cond.bad()) {
            spdlog::warn("pacs scp {}: receiving an association failed: {}", ae_title, cond.text());
            if (assoc != nullptr) {
                ASC_dropAssociation(assoc);
                ASC_destroyAssociation(&assoc);
            }
            continue;
        }
        if (active.load() >= max_associations) {
            spdlog::warn("pacs scp {}: association refused, {} already open", ae_title,
                         max_associations);
            reject(assoc, ASC_RESULT_REJECTEDTRANSIENT,
                   ASC_SOURCE_SERVICEPROVIDER_PRESENTATION_RELATED,
                   ASC_REASON_SP_PRES_LOCALLIMITEXCEEDED);
            ASC_dropAssociation(assoc);
            ASC_destroyAssociation(&assoc);
            continue;
        }
        ++active;
        auto done = std::make_shared<std::atomic<bool>>(false);
        std::lock_guard<std::mutex> lock(workers_mutex);
        workers.push_back({std::thread([this, assoc, done] {
                               try {
                                   serve(assoc);
                               } catch (const std::exception& e) {
                                   spdlog::error("pacs scp {}: {}", ae_title, e.what());
                               } catch (...) {
                                   spdlog::error("pacs scp {}: unknown error", ae_title);
                               }
                               --active;
                               done->store(true);
                           }),
                           done});
    }
}

void StorageScp::Impl::reap(bool all) {
    std::list<Worker> finished;
    {
        std::lock_guard<std::mutex> lock(workers_mutex);
        for (auto it = workers.begin(); it != workers.end();) {
            if (all || it->done->load()) {
                finished.push_back(std::move(*it));
                it = workers.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (auto& w : finished)
        if (w.thread.joinable()) w.thread.join();
}

bool StorageScp::Impl::negotiate(T_ASC_Association* assoc) {
    char calling[64] = {0}, called[64] = {0}, responding[64] = {0};
    ASC_getAPTitles(assoc->params, calling, sizeof(calling), called, sizeof(called), responding,
                    sizeof(responding));
    // Only associations addressed to our AE title: a PACS configured with the wrong
    // destination should fail visibly rather than deliver into the wrong receiver.
    if (text::trim(called) != ae_title) {
        spdlog::warn("pacs scp {}: association from {} for AE '{}' rejected (not our AE title)",
                     ae_title, text::trim(calling), text::trim(called));
        reject(assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
               ASC_REASON_SU_CALLEDAETITLENOTRECOGNIZED);
        return false;
    }
    const int n = ASC_countPresentationContexts(assoc->params);
    int accepted = 0;
    for (int i = 0; i < n; ++i) {
        T_ASC_PresentationContext pc;
        if (ASC_getPresentationContext(assoc->params, i, &pc).bad()) continue;
        const char* chosen = nullptr;
        if (acceptable_abstract_syntax(pc.abstractSyntax)) {
            // The sender's first proposal we understand: files arrive as it holds them.
            for (int t = 0; t < pc.transferSyntaxCount && chosen == nullptr; ++t) {
                if (DcmXfer(pc.proposedTransferSyntaxes[t]).getXfer() != EXS_Unknown)
                    chosen = pc.proposedTransferSyntaxes[t];
            }
            if (chosen != nullptr) {
                ASC_acceptPresentationContext(assoc->params, pc.presentationContextID, chosen,
                                              ASC_SC_ROLE_DEFAULT);
                ++accepted;
            } else {
                ASC_refusePresentationContext(assoc->params, pc.presentationContextID,
                                              ASC_P_TRANSFERSYNTAXESNOTSUPPORTED);
            }
        } else {
            ASC_refusePresentationContext(assoc->params, pc.presentationContextID,
                                          ASC_P_ABSTRACTSYNTAXNOTSUPPORTED);
        }
    }
    if (accepted == 0) {
        reject(assoc, ASC_RESULT_REJECTEDPERMANENT, ASC_SOURCE_SERVICEUSER,
               ASC_REASON_SU_NOREASON);
        return false;
    }
    ASC_setAPTitles(assoc->params, nullptr, nullptr, ae_title.c_str());
    const OFCondition cond = ASC_acknowledgeAssociation(assoc);
    if (cond.bad()) {
        spdlog::warn("pacs scp {}: acknowledging association failed: {}", ae_title, cond.text());
        return false;
    }
    return true;
}

void StorageScp::Impl::handle_store(T_ASC_Association* assoc, T_ASC_PresentationContextID pres,
                                    T_DIMSE_C_StoreRQ& req, bool& ok) {
    const auto out = detail::store_instance(assoc, pres, req, receive_dir(assoc, req), resolver(),
                                            options.dimse_s, options.fsync_each_file);
    if (!out.network_ok) {
        spdlog::warn("pacs scp {}: receiving {} failed: {}", ae_title, out.sop_uid,
                     out.cond.text());
        ok = false;
        return;
    }
    if (out.status != 0) {
        ++refused;
        spdlog::warn("pacs scp {}: refused instance {} of study {}: {}", ae_title, out.sop_uid,
                     out.study_uid, out.comment);
    } else {
        ++received;
    }
}

void StorageScp::Impl::serve(T_ASC_Association* assoc) {
    if (negotiate(assoc)) {
        auto last_activity = Clock::now();
        bool ok = true;
        bool released = false;
        while (ok) {
            if (stopping.load()) break;  // connection closed below
            if (Clock::now() - last_activity > std::chrono::seconds(options.idle_s)) {
                spdlog::warn("pacs scp {}: association idle for {} s, aborted", ae_title,
                             options.idle_s);
                break;
            }
            T_DIMSE_Message msg;
            std::memset(&msg, 0, sizeof(msg));
            T_ASC_PresentationContextID pres = 0;
            DcmDataset* detail = nullptr;
            const OFCondition cond =
                DIMSE_receiveCommand(assoc, DIMSE_NONBLOCKING, 1, &pres, &msg, &detail);
            delete detail;
            if (cond == DIMSE_NODATAAVAILABLE) continue;
            if (cond == DUL_PEERREQUESTEDRELEASE) {
                ASC_acknowledgeRelease(assoc);
                released = true;
                break;
            }
            if (cond == DUL_PEERABORTEDASSOCIATION) break;
            if (cond.bad()) {
                spdlog::warn("pacs scp {}: {}", ae_title, cond.text());
                break;
            }
            last_activity = Clock::now();
            switch (msg.CommandField) {
                case DIMSE_C_ECHO_RQ:
                    ok = DIMSE_sendEchoResponse(assoc, pres, &msg.msg.CEchoRQ, STATUS_Success,
                                                nullptr)
                             .good();
                    break;
                case DIMSE_C_STORE_RQ:
                    handle_store(assoc, pres, msg.msg.CStoreRQ, ok);
                    last_activity = Clock::now();
                    break;
                default:
                    spdlog::warn("pacs scp {}: unsupported DIMSE command {:#x}, aborting",
                                 ae_title, static_cast<unsigned>(msg.CommandField));
                    ok = false;
                    break;
            }
        }
        if (released) {
            ASC_dropSCPAssociation(assoc, 5);  // let the peer close first after A-RELEASE-RP
        } else {
            ASC_dropAssociation(assoc);  // abort: close the connection (no 30 s A-ABORT wait)
        }
    } else {
        ASC_dropAssociation(assoc);
    }
    ASC_destroyAssociation(&assoc);
}

StorageScp::StorageScp(std::string ae_title, std::uint16_t port, int max_associations,
                       ScpOptions options)
    : impl_(std::make_shared<Impl>()) {
    init_network();
    impl_->ae_title = std::move(ae_title);
    impl_->port = port;
    impl_->max_associations = std::max(1, max_associations);
    impl_->options = std::move(options);
    impl_->staging_dir = impl_->options.staging_dir.empty()
                             ? (std::filesystem::temp_directory_path() /
                                ("p2x-scp-" + std::to_string(port)))
                                   .string()
                             : impl_->options.staging_dir;
}

StorageScp::~StorageScp() {
    try {
        stop();
    } catch (...) {
    }
}

void StorageScp::start() {
    if (impl_->running) return;
    const OFCondition cond = ASC_initializeNetwork(NET_ACCEPTOR, impl_->port,
                                                   impl_->options.acse_s, &impl_->net);
    if (cond.bad()) {
        impl_->net = nullptr;
        throw PacsError(ErrorKind::Connect,
                        "Storage SCP " + impl_->ae_title + ": cannot listen on port " +
                            std::to_string(impl_->port) + " (" + cond.text() +
                            "); is another process using it?",
                        false);
    }
    try {
        std::filesystem::create_directories(impl_->staging_dir);
    } catch (...) {
        ASC_dropNetwork(&impl_->net);
        impl_->net = nullptr;
        throw;
    }
    impl_->stopping = false;
    impl_->running = true;
    auto impl = impl_;
    impl_->accept_thread = std::thread([impl] {
        try {
            impl->accept_loop();
        } catch (const std::exception& e) {
            spdlog::error("pacs scp {}: accept loop ended: {}", impl->ae_title, e.what());
        }
    });
}

void StorageScp::stop() {
    if (!impl_->running) return;
    impl_->stopping = true;
    if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
    impl_->reap(true);
    ASC_dropNetwork(&impl_->net);
    impl_->net = nullptr;
    impl_->running = false;
}

std::uint16_t StorageScp::port() const { return impl_->port; }
const std::string& StorageScp::ae_title() const { return impl_->ae_title; }
std::uint64_t StorageScp::refused() const { return impl_->refused.load(); }
std::uint64_t StorageScp::received() const { return impl_->received.load(); }

}  // namespace p2x::pacs
