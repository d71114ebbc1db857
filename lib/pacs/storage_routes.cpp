// Storage SCP routes: which directory an incoming instance goes to (by the Move Originator of
// our C-MOVE, then by StudyInstanceUID), the Route handles expect() gives out, and what they
// count and sync.
#include "pacs/association.hpp"
#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"
#include "pacs/storage_scp_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <optional>

namespace p2x::pacs {

void StorageScp::Route::State::stored(const std::string& path, const std::string& sop,
                                      std::uint64_t size) {
    {
        std::lock_guard<std::mutex> lock(mutex);
        if (sops.insert(sop).second) files.push_back(path);
        bytes += size;
        to_sync.push_back(path);
        last_activity = std::chrono::steady_clock::now();
    }
    cv.notify_all();
}

std::shared_ptr<StorageScp::Route::State> StorageScp::Impl::route_for(
    const std::string& study_uid) {
    std::lock_guard<std::mutex> lock(routes_mutex);
    const auto it = routes.find(study_uid);
    return it == routes.end() ? nullptr : it->second;
}

detail::StoreResolver StorageScp::Impl::resolver() {
    return [this](const std::string& study) -> std::optional<detail::StoreTarget> {
        auto route = route_for(study);
        if (!route) return std::nullopt;
        return detail::StoreTarget{
            route->dest_dir,
            [route](const std::string& path, const std::string& sop, std::uint64_t bytes) {
                route->stored(path, sop, bytes);
            }};
    };
}

ReceivePlan StorageScp::Impl::receive_dir(const T_DIMSE_C_StoreRQ& req) {
    // The C-MOVE that caused this C-STORE (when the PACS says) tells us the route before any
    // data arrives, so the file is received straight into the route's directory; a Move
    // Originator that is not one of our live C-MOVEs, or whose study has no route, is refused
    // before a byte is written.
    if ((req.opts & O_STORE_MOVEORIGINATORID) && (req.opts & O_STORE_MOVEORIGINATORAETITLE)) {
        const std::string study =
            detail::lookup_move(req.MoveOriginatorApplicationEntityTitle, req.MoveOriginatorID);
        if (study.empty()) return {"", "Move Originator is no C-MOVE of ours"};
        if (auto route = route_for(study)) return {route->dest_dir, ""};
        return {"", "no retrieval waiting for this study here"};
    }
    // Without it the study is known only once the data set is read (in staging), unless no
    // retrieval waits at all.
    std::lock_guard<std::mutex> lock(routes_mutex);
    if (routes.empty()) return {"", "no retrieval waiting for any study here"};
    return {staging_dir, ""};
}

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
