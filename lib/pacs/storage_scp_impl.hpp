// Internal: the state shared by the Storage SCP's parts: the accept loop and association
// handling (storage_scp.cpp) and the routes instances are filed by (storage_routes.cpp).
#pragma once

#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace p2x::pacs {

struct StorageScp::Route::State {
    std::string study_uid, dest_dir;
    std::vector<std::string> senders;  // calling AE titles that may store into the route
    mutable std::mutex mutex;
    mutable std::condition_variable cv;
    std::set<std::string> sops;
    std::vector<std::string> files;
    std::uint64_t bytes = 0;
    int refused = 0, quarantined = 0;
    std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
    std::vector<std::string> to_sync;  // written (or replaced) since the last sync()
    std::mutex sync_mutex;             // one sync() at a time

    // A file of the route is in place (path, SOP Instance UID, size): counted, waiters woken.
    void stored(const std::string& path, const std::string& sop, std::uint64_t size);
    // Why `caller` may not store an instance into this route ("" if it may); our_ae: the SCP's
    // AE title (the Move Originator of our C-MOVEs).
    std::string refusal(const detail::StoreCaller& caller, const std::string& our_ae) const;
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

    // Routing (storage_routes.cpp): the route registered for a study (null if none); the
    // resolver store_instance asks (by study and sender); where to receive a C-STORE's data
    // first (the route's directory when the Move Originator names one of our C-MOVEs and the
    // calling AE may store into it, else staging_dir).
    std::shared_ptr<Route::State> route_for(const std::string& study_uid);
    detail::StoreResolver resolver();
    std::string receive_dir(T_ASC_Association* assoc, const T_DIMSE_C_StoreRQ& req);
};

}  // namespace p2x::pacs
