// Internal: the state shared by the Storage SCP's parts: the accept loop and association
// handling (storage_scp.cpp), the association slots with their caps and probation
// (storage_scp_slots.cpp) and the routes instances are filed by (storage_routes.cpp).
#pragma once

#include "pacs/instance_writer.hpp"
#include "pacs/pacs.hpp"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmnet/assoc.h>
#include <dcmtk/dcmnet/dimse.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
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
  int busy_refused = 0;  // its senders turned away for lack of a free slot
  std::chrono::steady_clock::time_point last_activity = std::chrono::steady_clock::now();
  std::vector<std::string> to_sync;  // written (or replaced) since the last sync()
  std::mutex sync_mutex;             // one sync() at a time
  int handles = 0;                   // Route handles sharing it (under Impl::routes_mutex)

  // A file of the route is in place (path, SOP Instance UID, size): counted, waiters woken.
  void stored(const std::string& path, const std::string& sop, std::uint64_t size);
  // Why `caller` may not store an instance into this route ("" if it may); our_ae: the SCP's
  // AE title (the Move Originator of our C-MOVEs).
  std::string refusal(const detail::StoreCaller& caller, const std::string& our_ae) const;
};

// Where one C-STORE's data set is received, decided from its command alone (receive_dir()).
struct ReceivePlan {
  std::string dir;         // route directory or staging_dir; "" refuses without reading
  std::string refusal;     // the ErrorComment when dir is ""
  Uint16 status = 0xA700;  // the C-STORE status when dir is ""
};

// An accepted association's place: one of the max_associations slots, or on probation (see
// ScpOptions::busy_idle_s). `probation` and `why_evicted` change under Impl::slots_mutex; the
// association's own thread reads `evicted` (set when another association took its place) and
// writes `last_store_ms`.
struct ScpSlot {
  std::string peer, calling_ae;
  std::int64_t opened_ms = 0;  // steady clock
  bool probation = false;
  std::string why_evicted;
  std::atomic<bool> evicted{false};
  std::atomic<std::int64_t> last_store_ms{-1};  // -1: stored nothing yet
};

// One accepted association being served: who it is and what its C-STOREs did so far.
struct ScpAssociation {
  T_ASC_Association* assoc = nullptr;
  std::string calling_ae, peer;      // calling AE title, peer IP address
  std::uint64_t unrouted_bytes = 0;  // written into staging for instances refused afterwards
  bool routed_any = false;           // at least one instance stored
  std::uint64_t refused = 0, stored = 0;
  std::shared_ptr<ScpSlot> slot;  // its place, from take_slot()
  std::string where() const { return "'" + calling_ae + "' at " + peer; }
};

struct StorageScp::Impl {
  std::string ae_title;
  std::uint16_t port = 0;
  int max_associations = 1;
  ScpOptions options;
  std::string staging_dir;

  int listen_fd = -1;            // our own listening socket (accept loop)
  T_ASC_Network* net = nullptr;  // acceptor network without a socket of its own
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
  std::mutex slots_mutex;  // the places of accepted associations (storage_scp_slots.cpp)
  std::vector<std::shared_ptr<ScpSlot>> slots;
  std::mutex pending_mutex;  // connections waiting for their A-ASSOCIATE-RQ
  int pending = 0;
  std::map<std::string, int> pending_by_peer;

  std::atomic<std::uint64_t> refused{0}, received{0}, refused_unread{0}, rejected_calling{0},
      rejected_busy{0}, dropped{0}, idle_closed{0}, unrouted_aborted{0}, evicted{0},
      probation_closed{0};
  // Steady-clock seconds of the last "association refused, N already open" warning.
  std::atomic<std::int64_t> last_busy_warning_s{std::numeric_limits<std::int64_t>::min() / 2};
  std::atomic<std::int64_t> last_eviction_warning_s{std::numeric_limits<std::int64_t>::min() / 2};
  std::mutex logged_mutex;
  std::set<std::string> logged;  // "<kind>:<AE>@<address>" already logged (bounded)

  // Network door (storage_scp.cpp).
  void open_listener();  // binds the port (throws PacsError(Connect) naming it)
  void close_listener();
  void accept_loop();
  // Counts a connection from `peer` as waiting for its request; false (not counted) beyond
  // max_pending or max_pending_per_peer. done_waiting() ends what admit() counted.
  bool admit(const std::string& peer, std::string& why);
  void done_waiting(const std::string& peer);
  void spawn_connection(int fd, const std::string& peer);
  void reap(bool all);
  // A warning the first time `key` is seen, debug afterwards: what an unwanted peer repeats
  // is counted, not logged again.
  void log_once(const std::string& key, const std::string& text);
  void handle_connection(int fd, const std::string& peer);
  // Waits (at most options.request_s) until the whole first PDU, an A-ASSOCIATE-RQ, is in the
  // socket's queue, so that DCMTK reading it cannot wait on the peer; false with `why` if
  // not.
  bool wait_for_request(int fd, std::string& why);
  // DCMTK's association built from the accepted socket (nullptr and the socket closed when
  // the request cannot be read).
  T_ASC_Association* adopt(int fd);
  bool calling_allowed(const std::string& calling) const;
  bool check_titles(ScpAssociation& a);
  // Slots (storage_scp_slots.cpp): a place for the association (a slot within the caps, or
  // probation for a sender of a route when none is free), else a busy rejection; the slot of
  // an idle association for one on probation that stores into a retrieval; the end of one.
  bool take_slot(ScpAssociation& a);
  bool promote(ScpAssociation& a, std::string& why);
  void release_slot(ScpAssociation& a);
  // Why an association must end now ("" if it may go on): another took its place, or its
  // probation ran out.
  std::string must_close(const ScpAssociation& a);
  // Counts a busy refusal of `calling_ae` and notes it on the routes it is a sender of.
  void note_busy(const std::string& calling_ae);
  bool is_route_sender(const std::string& calling_ae);
  int cap_per_address() const;
  int cap_per_ae() const;
  // Under slots_mutex: why no slot is free for a newcomer from peer as ae ("" if one is).
  std::string full_for(const std::string& peer, const std::string& ae) const;
  void make_room_on_probation(const ScpAssociation& a);  // under slots_mutex
  // The busy rejection (storage_scp.cpp): a warning at most once a minute, and the A-ASSOCIATE-RJ.
  void warn_busy(const std::string& text);
  void reject_busy(ScpAssociation& a);
  bool negotiate(ScpAssociation& a);
  void serve(ScpAssociation& a);
  void handle_store(ScpAssociation& a, T_ASC_PresentationContextID pres, T_DIMSE_C_StoreRQ& req,
                    bool& ok);

  // Routing (storage_routes.cpp): the route registered for a study (null if none); the
  // resolver store_instance asks (by study and sender); where to receive a C-STORE's data
  // first (the route's directory when the Move Originator names one of our C-MOVEs and the
  // calling AE may store into it, else staging_dir), or a refusal when the command alone
  // shows that nobody waits for it or that its sender may not store there.
  std::shared_ptr<Route::State> route_for(const std::string& study_uid);
  detail::StoreResolver resolver();
  ReceivePlan receive_dir(T_ASC_Association* assoc, const T_DIMSE_C_StoreRQ& req);
};

}  // namespace p2x::pacs
