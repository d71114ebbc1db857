// Storage SCP, its association slots: at most max_associations at once, max_per_address from one
// IP address and max_per_ae from one calling AE title, so that one host or one title (a
// spoofed one included) cannot hold every slot. When none is free, an association from an AE
// title a retrieval waits for is not turned away but waits on probation: its first C-STORE into
// a retrieval takes the slot of the association that has stored nothing for longest (closed
// for it), and without one it is closed after probation_s. So associations held open and idle,
// even under the PACS's own title and renewed as fast as they are closed, cannot keep the
// PACS's C-STOREs out; and a C-MOVE that fails all the same is reported as the receiver's
// fault (busy_refused on the routes), to wait for a slot rather than to count against the study.
#include "pacs/storage_scp_impl.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace p2x::pacs {

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Places held (or waiting on probation) in all, from one address and from one AE title.
struct Counts {
  int total = 0, address = 0, ae = 0;
};

Counts count(const std::vector<std::shared_ptr<ScpSlot>>& slots, bool probation,
             const std::string& peer, const std::string& ae) {
  Counts c;
  for (const auto& s : slots) {
    if (s->probation != probation) continue;
    ++c.total;
    if (s->peer == peer) ++c.address;
    if (s->calling_ae == ae) ++c.ae;
  }
  return c;
}

// Takes `victim` out of `slots` and tells its association to close (it does within a second).
void evict(std::vector<std::shared_ptr<ScpSlot>>& slots, const std::shared_ptr<ScpSlot>& victim,
           const std::string& why) {
  victim->why_evicted = why;
  victim->evicted.store(true);
  slots.erase(std::remove(slots.begin(), slots.end(), victim), slots.end());
}

}  // namespace

bool StorageScp::Impl::is_route_sender(const std::string& calling_ae) {
  std::lock_guard<std::mutex> lock(routes_mutex);
  for (const auto& [study, route] : routes) {
    const auto& s = route->senders;
    if (std::find(s.begin(), s.end(), calling_ae) != s.end()) return true;
  }
  return false;
}

void StorageScp::Impl::note_busy(const std::string& calling_ae) {
  ++rejected_busy;
  std::lock_guard<std::mutex> lock(routes_mutex);
  for (const auto& [study, route] : routes) {
    const auto& s = route->senders;
    if (std::find(s.begin(), s.end(), calling_ae) == s.end()) continue;
    std::lock_guard<std::mutex> route_lock(route->mutex);
    ++route->busy_refused;
  }
}

int StorageScp::Impl::cap_per_address() const {
  const int cap = options.max_per_address;
  return cap > 0 ? std::min(cap, max_associations) : max_associations;
}

int StorageScp::Impl::cap_per_ae() const {
  const int cap = options.max_per_ae;
  return cap > 0 ? std::min(cap, max_associations) : max_associations;
}

std::string StorageScp::Impl::full_for(const std::string& peer, const std::string& ae) const {
  const Counts held = count(slots, false, peer, ae);
  if (held.total >= max_associations)
    return std::to_string(held.total) + " associations already open";
  if (held.address >= cap_per_address())
    return std::to_string(held.address) + " associations already open from " + peer;
  if (held.ae >= cap_per_ae())
    return std::to_string(held.ae) + " associations already open as '" + ae + "'";
  return {};
}

bool StorageScp::Impl::take_slot(ScpAssociation& a) {
  auto slot = std::make_shared<ScpSlot>();
  slot->peer = a.peer;
  slot->calling_ae = a.calling_ae;
  slot->opened_ms = now_ms();
  const bool sender = is_route_sender(a.calling_ae);
  std::string full;
  {
    std::lock_guard<std::mutex> lock(slots_mutex);
    full = full_for(a.peer, a.calling_ae);
    if (full.empty() || sender) {
      slot->probation = !full.empty();
      if (slot->probation) make_room_on_probation(a);
      slots.push_back(slot);
      a.slot = slot;
    }
  }
  if (a.slot) {
    if (slot->probation)
      spdlog::debug("pacs scp {}: association from {} on probation: {}", ae_title, a.where(), full);
    return true;
  }
  note_busy(a.calling_ae);
  warn_busy("association from " + a.where() + " refused: " + full);
  reject_busy(a);
  return false;
}

// Under slots_mutex: at most max_associations wait on probation; one address or AE title that
// has its share replaces its own oldest, else the oldest of all goes.
void StorageScp::Impl::make_room_on_probation(const ScpAssociation& a) {
  const Counts waiting = count(slots, true, a.peer, a.calling_ae);
  const bool own_address = waiting.address >= cap_per_address();
  const bool own_ae = !own_address && waiting.ae >= cap_per_ae();
  if (!own_address && !own_ae && waiting.total < max_associations) return;
  std::shared_ptr<ScpSlot> oldest;
  for (const auto& s : slots) {
    if (!s->probation || (own_address && s->peer != a.peer) ||
        (own_ae && s->calling_ae != a.calling_ae))
      continue;
    if (!oldest || s->opened_ms < oldest->opened_ms) oldest = s;
  }
  if (!oldest) return;
  ++probation_closed;
  evict(slots, oldest, "its place on probation went to a newer association");
}

bool StorageScp::Impl::promote(ScpAssociation& a, std::string& why) {
  std::lock_guard<std::mutex> lock(slots_mutex);
  ScpSlot& me = *a.slot;
  if (me.evicted.load()) {
    why = me.why_evicted;
    return false;
  }
  if (!me.probation) return true;
  const Counts held = count(slots, false, a.peer, a.calling_ae);
  const bool address_full = held.address >= cap_per_address();
  const bool ae_full = held.ae >= cap_per_ae();
  if (!address_full && !ae_full && held.total < max_associations) {
    me.probation = false;  // a slot was freed meanwhile
    return true;
  }
  // The holder that stored nothing for longest, where its leaving makes room for us.
  const std::int64_t now = now_ms();
  std::shared_ptr<ScpSlot> victim;
  std::int64_t victim_idle = -1;
  for (const auto& s : slots) {
    if (s->probation || (address_full && s->peer != a.peer) ||
        (ae_full && s->calling_ae != a.calling_ae))
      continue;
    const std::int64_t last = s->last_store_ms.load();
    const std::int64_t idle = now - (last < 0 ? s->opened_ms : last);
    const std::int64_t needed = last < 0 ? options.fresh_grace_ms : options.busy_idle_s * 1000;
    if (idle >= needed && idle > victim_idle) {
      victim = s;
      victim_idle = idle;
    }
  }
  if (!victim) {
    why = full_for(a.peer, a.calling_ae) + ", all storing";
    return false;
  }
  const auto n = ++evicted;
  const std::string idle_text = std::to_string(victim_idle / 1000) + " s";
  // What an attacker can repeat: a warning at most once a minute, with the count.
  const std::string text = "association from '" + victim->calling_ae + "' at " + victim->peer +
                           " closed: it stored nothing for " + idle_text + "; its slot went to " +
                           a.where() + ", storing into a retrieval (" + std::to_string(n) +
                           " so far)";
  const std::int64_t now_s = now / 1000;
  std::int64_t last = last_eviction_warning_s.load();
  if (now_s - last >= 60 && last_eviction_warning_s.compare_exchange_strong(last, now_s)) {
    spdlog::warn("pacs scp {}: {}", ae_title, text);
  } else {
    spdlog::debug("pacs scp {}: {}", ae_title, text);
  }
  evict(slots, victim,
        "idle for " + idle_text + " while a retrieval's C-STOREs waited for its slot");
  me.probation = false;
  return true;
}

void StorageScp::Impl::release_slot(ScpAssociation& a) {
  if (!a.slot) return;
  std::lock_guard<std::mutex> lock(slots_mutex);
  slots.erase(std::remove(slots.begin(), slots.end(), a.slot), slots.end());
}

std::string StorageScp::Impl::must_close(const ScpAssociation& a) {
  const ScpSlot& me = *a.slot;
  if (me.evicted.load()) return me.why_evicted;
  if (me.probation && now_ms() - me.opened_ms > std::int64_t{options.probation_s} * 1000) {
    ++probation_closed;
    return "on probation for " + std::to_string(options.probation_s) +
           " s without a C-STORE into a retrieval while the SCP was full";
  }
  return {};
}

}  // namespace p2x::pacs
