// Storage SCP: own accept loop (port bound synchronously in start(), so a taken port fails
// there), one thread per association (at most max_associations), routes by Move Originator and
// StudyInstanceUID to the Route registered with expect().
#include "pacs/association.hpp"
#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"

#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace p2x::pacs {

using Clock = std::chrono::steady_clock;

struct StorageScp::Route::State {
    std::string study_uid, dest_dir;
    mutable std::mutex mutex;
    mutable std::condition_variable cv;
    std::set<std::string> sops;
    std::vector<std::string> files;
    std::uint64_t bytes = 0;
    Clock::time_point last_activity = Clock::now();
    std::vector<std::string> to_sync;  // written (or replaced) since the last sync()
    std::mutex sync_mutex;             // one sync() at a time

    void stored(const std::string& path, const std::string& sop, std::uint64_t size) {
        {
            std::lock_guard<std::mutex> lock(mutex);
            if (sops.insert(sop).second) files.push_back(path);
            bytes += size;
            to_sync.push_back(path);
            last_activity = Clock::now();
        }
        cv.notify_all();
    }
};

struct StorageScp::Impl {
    std::string ae_title;
    std::uint16_t port = 0;
    int max_associations = 1;
    ScpOptions options;
    std::string staging_dir;

    T_ASC_Network* net = nullptr;
    std::thread accept_thread;
    std::atomic<bool> stopping{false};
    bool running = false;

    std::mutex routes_mutex;
    std::map<std::string, std::shared_ptr<Route::State>> routes;

    struct Worker {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    std::mutex workers_mutex;
    std::list<Worker> workers;
    std::atomic<int> active{0};

    std::atomic<std::uint64_t> refused{0};
    std::atomic<std::uint64_t> received{0};

    void accept_loop();
    void reap(bool all);
    void serve(T_ASC_Association* assoc);
    bool negotiate(T_ASC_Association* assoc);
    void handle_store(T_ASC_Association* assoc, T_ASC_PresentationContextID pres,
                      T_DIMSE_C_StoreRQ& req, bool& ok);
    std::shared_ptr<Route::State> route_for(const std::string& study_uid) {
        std::lock_guard<std::mutex> lock(routes_mutex);
        const auto it = routes.find(study_uid);
        return it == routes.end() ? nullptr : it->second;
    }
};

namespace {

std::string trim(const char* s) {
    std::string v(s);
    const auto b = v.find_first_not_of(' ');
    if (b == std::string::npos) return {};
    return v.substr(b, v.find_last_not_of(' ') - b + 1);
}

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
    if (trim(called) != ae_title) {
        spdlog::warn("pacs scp {}: association from {} for AE '{}' rejected (not our AE title)",
                     ae_title, trim(calling), trim(called));
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
    // The C-MOVE that caused this C-STORE (when the PACS says) tells us the route before any
    // data arrives, so the file is received straight into the route's directory.
    std::string temp_dir = staging_dir;
    if ((req.opts & O_STORE_MOVEORIGINATORID) && (req.opts & O_STORE_MOVEORIGINATORAETITLE)) {
        const std::string study =
            detail::lookup_move(req.MoveOriginatorApplicationEntityTitle, req.MoveOriginatorID);
        if (!study.empty()) {
            if (auto route = route_for(study)) temp_dir = route->dest_dir;
        }
    }
    const detail::StoreResolver resolve =
        [this](const std::string& study) -> std::optional<detail::StoreTarget> {
        auto route = route_for(study);
        if (!route) return std::nullopt;
        return detail::StoreTarget{
            route->dest_dir,
            [route](const std::string& path, const std::string& sop, std::uint64_t bytes) {
                route->stored(path, sop, bytes);
            }};
    };
    const auto out = detail::store_instance(assoc, pres, req, temp_dir, resolve,
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

std::unique_ptr<StorageScp::Route> StorageScp::expect(const std::string& study_uid,
                                                      const std::string& dest_dir) {
    std::filesystem::create_directories(dest_dir);
    auto state = std::make_shared<Route::State>();
    state->study_uid = study_uid;
    state->dest_dir = std::filesystem::absolute(dest_dir).lexically_normal().string();
    while (state->dest_dir.size() > 1 && state->dest_dir.back() == '/') state->dest_dir.pop_back();
    {
        std::lock_guard<std::mutex> lock(impl_->routes_mutex);
        if (!impl_->routes.emplace(study_uid, state).second)
            throw std::logic_error("Storage SCP: study " + study_uid + " already has a route");
    }
    std::weak_ptr<Impl> weak = impl_;
    return std::make_unique<Route>(state, [weak, study_uid] {
        if (auto impl = weak.lock()) {
            std::lock_guard<std::mutex> lock(impl->routes_mutex);
            impl->routes.erase(study_uid);
        }
    });
}

StorageScp::Route::Route(std::shared_ptr<State> state, std::function<void()> on_close)
    : state_(std::move(state)), on_close_(std::move(on_close)) {}

StorageScp::Route::~Route() {
    try {
        if (on_close_) on_close_();
    } catch (const std::exception& e) {
        spdlog::error("pacs scp: {}", e.what());
    } catch (...) {
    }
}

void StorageScp::Route::sync() {
    std::lock_guard<std::mutex> sync_lock(state_->sync_mutex);
    std::vector<std::string> pending;
    {
        std::lock_guard<std::mutex> lock(state_->mutex);
        pending.swap(state_->to_sync);
    }
    if (pending.empty()) return;
    std::sort(pending.begin(), pending.end());
    pending.erase(std::unique(pending.begin(), pending.end()), pending.end());
    const std::string error = detail::sync_files(pending, state_->dest_dir);
    if (!error.empty()) {
        std::lock_guard<std::mutex> lock(state_->mutex);
        state_->to_sync.insert(state_->to_sync.end(), pending.begin(), pending.end());
        throw std::runtime_error("spool sync for study " + state_->study_uid + ": " + error);
    }
}

const std::string& StorageScp::Route::study_uid() const { return state_->study_uid; }
const std::string& StorageScp::Route::dest_dir() const { return state_->dest_dir; }

int StorageScp::Route::received() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return static_cast<int>(state_->files.size());
}

std::uint64_t StorageScp::Route::bytes() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->bytes;
}

std::chrono::steady_clock::time_point StorageScp::Route::last_activity() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->last_activity;
}

std::vector<std::string> StorageScp::Route::files() const {
    std::lock_guard<std::mutex> lock(state_->mutex);
    return state_->files;
}

bool StorageScp::Route::wait_for(int n, std::chrono::milliseconds timeout) const {
    std::unique_lock<std::mutex> lock(state_->mutex);
    return state_->cv.wait_for(lock, timeout,
                               [&] { return static_cast<int>(state_->files.size()) >= n; });
}

}  // namespace p2x::pacs
