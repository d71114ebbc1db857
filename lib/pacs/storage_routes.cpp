// Storage SCP routes: which directory an incoming instance goes to (by the Move Originator of
// our C-MOVE, then by StudyInstanceUID) and whether its sender may store there (the route's
// AE titles, our own C-MOVE), the Route handles expect() gives out, and what they count and
// sync.
#include "pacs/association.hpp"
#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"
#include "pacs/received_sink.hpp"
#include "pacs/storage_scp_impl.hpp"

#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

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

std::string StorageScp::Route::State::refusal(const detail::StoreCaller& caller,
                                              const std::string& our_ae) const {
  if (std::find(senders.begin(), senders.end(), caller.calling_ae) == senders.end())
    return "calling AE " + caller.calling_ae + " may not store into this retrieval";
  if (!caller.move_originator_ae.empty() && caller.move_originator_ae != our_ae)
    return "sent for a C-MOVE by " + caller.move_originator_ae + ", not by " + our_ae;
  if (!caller.move_originator_ae.empty()) {
    const std::string moved =
        detail::lookup_move(caller.move_originator_ae, caller.move_originator_id);
    if (!moved.empty() && moved != study_uid)
      return "sent for our C-MOVE of another study (" + moved + ")";
  }
  return {};
}

std::shared_ptr<StorageScp::Route::State> StorageScp::Impl::route_for(
    const std::string& study_uid) {
  std::lock_guard<std::mutex> lock(routes_mutex);
  const auto it = routes.find(study_uid);
  return it == routes.end() ? nullptr : it->second;
}

detail::StoreResolver StorageScp::Impl::resolver() {
  return
      [this](const std::string& study, const detail::StoreCaller& caller) -> detail::StoreTarget {
        auto route = route_for(study);
        if (!route)
          return detail::StoreTarget::refuse(STATUS_STORE_Refused_OutOfResources,
                                             "no retrieval waiting for this study here");
        const std::string why = route->refusal(caller, ae_title);
        if (!why.empty()) {
          {
            std::lock_guard<std::mutex> lock(route->mutex);
            ++route->refused;
          }
          // handle_store() logs the refusal; the AE titles the route accepts, for diagnosis.
          spdlog::debug("pacs scp {}: the route of study {} accepts AE {} only", ae_title, study,
                        fmt::join(route->senders, ", "));
          return detail::StoreTarget::refuse(STATUS_STORE_Refused_NotAuthorized, why);
        }
        detail::StoreTarget target;
        target.dest_dir = route->dest_dir;
        target.on_stored = [route](const std::string& path, const std::string& sop,
                                   std::uint64_t bytes) { route->stored(path, sop, bytes); };
        if (const ReceivedSink* sink = options.sink) {  // the owner says where copies go
          target.keep_apart = [sink, dir = route->dest_dir](const std::string& file,
                                                            const std::string& name,
                                                            const std::string& reason) {
            return sink->keep_apart(file, dir, name, reason);
          };
        }
        target.on_quarantined = [route](const std::string&) {
          std::lock_guard<std::mutex> lock(route->mutex);
          ++route->quarantined;
        };
        return target;
      };
}

ReceivePlan StorageScp::Impl::receive_dir(T_ASC_Association* assoc, const T_DIMSE_C_StoreRQ& req) {
  {
    std::lock_guard<std::mutex> lock(routes_mutex);
    if (routes.empty()) return {"", "no retrieval waiting for any study here"};
  }
  // The C-MOVE that caused this C-STORE (when the PACS says) tells us the route before any
  // data arrives: the file is received straight into the route's directory if the sender may
  // store there, and refused before a byte is written if it may not, or if the Move
  // Originator names our AE title but none of our live C-MOVEs, or a study with no route.
  const detail::StoreCaller caller = detail::caller_of(assoc, req);
  const bool names_us =
      caller.move_originator_ae == ae_title && (req.opts & O_STORE_MOVEORIGINATORID);
  // Without it (or for another AE's C-MOVE) the study is known only once the data set is
  // read, in staging; the resolver decides then.
  if (!names_us) return {staging_dir, ""};
  const std::string study =
      detail::lookup_move(caller.move_originator_ae, caller.move_originator_id);
  if (study.empty()) return {"", "Move Originator is no C-MOVE of ours"};
  const auto route = route_for(study);
  if (!route) return {"", "no retrieval waiting for this study here"};
  const std::string why = route->refusal(caller, ae_title);
  if (why.empty()) return {route->dest_dir, ""};
  {
    std::lock_guard<std::mutex> lock(route->mutex);
    ++route->refused;
  }
  return {"", why, STATUS_STORE_Refused_NotAuthorized};
}

std::unique_ptr<StorageScp::Route> StorageScp::expect(const std::string& study_uid,
                                                      const std::string& dest_dir,
                                                      std::vector<std::string> senders) {
  if (senders.empty())
    throw std::invalid_argument("Storage SCP: a route for study " + study_uid +
                                " needs the AE title(s) that may store into it");
  std::filesystem::create_directories(dest_dir);
  auto state = std::make_shared<Route::State>();
  state->study_uid = study_uid;
  state->senders = std::move(senders);
  state->dest_dir = std::filesystem::absolute(dest_dir).lexically_normal().string();
  while (state->dest_dir.size() > 1 && state->dest_dir.back() == '/') state->dest_dir.pop_back();
  {
    std::lock_guard<std::mutex> lock(impl_->routes_mutex);
    const auto it = impl_->routes.find(study_uid);
    if (it != impl_->routes.end()) {
      // Parallel retrievals of one study's series share its route (same directory).
      if (it->second->dest_dir != state->dest_dir || it->second->senders != state->senders)
        throw std::logic_error("Storage SCP: study " + study_uid + " already has a route into " +
                               it->second->dest_dir);
      state = it->second;
    } else {
      impl_->routes.emplace(study_uid, state);
    }
    ++state->handles;
  }
  std::weak_ptr<Impl> weak = impl_;
  return std::make_unique<Route>(state, [weak, study_uid, state] {
    if (auto impl = weak.lock()) {
      std::lock_guard<std::mutex> lock(impl->routes_mutex);
      if (--state->handles == 0) impl->routes.erase(study_uid);
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

const std::string& StorageScp::Route::study_uid() const {
  return state_->study_uid;
}
const std::string& StorageScp::Route::dest_dir() const {
  return state_->dest_dir;
}

int StorageScp::Route::received() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return static_cast<int>(state_->files.size());
}

int StorageScp::Route::refused() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->refused;
}

int StorageScp::Route::busy_refused() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->busy_refused;
}

int StorageScp::Route::quarantined() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->quarantined;
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
