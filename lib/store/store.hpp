// store: the persistent SQLite job store (jobs, items, series, events, schema_version).
//
// WAL mode, busy timeout, one connection owned by the Store and serialised by a mutex (the
// Store is safe to share between threads). Commits are atomic and survive kill -9 (the WAL is
// in the page cache). Fsynced (synchronous=FULL): job creation, job operations (cancel, pause,
// retry) and item transitions into final states, `pushed`, `queued` or that count an attempt:
// what a power failure must not undo. Claims, progress and the other transitions only repeat
// local work if a power failure drops them and skip the fsync (needs_full_sync in store.cpp).
// Every item state change goes through transition(), which checks that the change is legal
// and appends the event in the same transaction. create_job() is one transaction: after a crash the
// job is whole or absent. open() migrates the schema and returns every item left in an in-flight
// state to the last durable state before it (querying/retrieving -> queued, validating ->
// retrieved, pushing -> validated, verifying -> pushed), recording an event for each.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "domain/values.hpp"

struct sqlite3;

namespace p2x::store {

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
  StoreError(const std::string& what, int sqlite_code)
      : std::runtime_error(what), sqlite_code_(sqlite_code) {}
  // SQLite's extended result code (e.g. SQLITE_BUSY_SNAPSHOT); 0 if the error is not SQLite's.
  int sqlite_code() const noexcept { return sqlite_code_; }

 private:
  int sqlite_code_ = 0;
};
// Thrown by transition() when the requested change is not in the state machine.
struct IllegalTransition : StoreError {
  using StoreError::StoreError;
};

enum class ItemState {
  Queued,
  Querying,
  Retrieving,
  Retrieved,
  Validating,
  Validated,
  Pushing,
  Pushed,
  Verifying,
  Verified,
  Failed,
  Cancelled
};
std::string_view to_string(ItemState s);
std::optional<ItemState> parse_state(std::string_view s);
bool is_final(ItemState s);      // verified, failed, cancelled
bool is_in_flight(ItemState s);  // querying, retrieving, validating, pushing, verifying
bool is_legal(ItemState from, ItemState to);
const std::vector<ItemState>& all_states();

enum class JobState { Active, Done, Cancelled };
std::string_view to_string(JobState s);

struct NewItem {
  int row = 0;                                        // data row number in the CSV
  int line = 0;                                       // physical line in the CSV
  domain::RowKind kind = domain::RowKind::Accession;  // stored as its text (domain/values)
  std::string accession, patient_id, study_date, study_uid, modality, subject, session;
};

struct NewJob {
  std::string project, pacs, csv_name, csv_sha256;
  std::uint32_t submitted_by = 0;   // uid of the submitting user
  std::string submitted_user;       // XNAT user name when submitted from the web door, else ""
  std::string options_json = "{}";  // job options (filters, strict mode, ...)
  std::vector<NewItem> items;
};

struct Job {
  std::int64_t id = 0;
  std::string project, pacs, csv_name, csv_sha256;
  std::uint32_t submitted_by = 0;
  std::int64_t created_at = 0;  // unix seconds
  JobState state = JobState::Active;
  bool paused = false;
  std::string options_json;
  // Where its sessions go: none until the first push (stored as "" / the text of the value).
  std::optional<domain::Destination> destination;
  std::string submitted_user;  // XNAT user who submitted it from the web door ("" = CLI)
};

struct Item {
  std::int64_t id = 0, job_id = 0;
  int row = 0, line = 0;
  domain::RowKind kind = domain::RowKind::Accession;
  std::string accession, patient_id, study_date, study_uid, modality, subject, session;
  std::string pacs_patient_id;  // PatientID as reported by the PACS C-FIND
  ItemState state = ItemState::Queued;
  int attempts = 0;
  std::int64_t next_attempt_at = 0;  // unix seconds; 0 = now
  std::string last_error;
  bool retryable = true;    // for failed items: whether `retry` may help
  std::string wait_reason;  // why a queued item is waiting (PACS closed, breaker open, ...)
  std::int64_t expected = 0, received = 0, pushed = 0, verified = 0;  // instance counts
  std::int64_t bytes = 0;  // bytes received into the spool
  std::int64_t updated_at = 0;
  // Verification's counters (schema v5), reset when the item goes back to queued: checks since
  // the last push that found XNAT without the whole study, and pushes again after such checks.
  int verify_checks = 0, repushes = 0;
};

struct Series {
  std::int64_t item_id = 0;
  std::string series_uid, modality, description;
  int number = 0;
  std::int64_t expected = 0, received = 0;
};

struct Event {
  std::int64_t id = 0, item_id = 0, job_id = 0, at = 0;
  std::string from, to, detail;
};

struct JobSummary {
  Job job;
  std::map<ItemState, std::int64_t> counts;  // items per state (absent = 0)
  std::int64_t total = 0;
  std::int64_t expected = 0, received = 0, pushed = 0, verified = 0, bytes = 0;
  std::vector<Item> latest_failures;  // up to 5, newest first
};

// What /metrics reports of the store (Store::stats); times are unix seconds, 0 = none.
struct StoreStats {
  struct Count {
    std::string project;
    ItemState state;
    std::int64_t n = 0;
  };
  std::vector<Count> items;              // per project and state (absent = 0)
  std::int64_t oldest_queued_at = 0;     // the queued item waiting the longest: since when
  std::int64_t oldest_in_flight_at = 0;  // the in-flight item busy the longest: since when
  std::int64_t last_verified_at = 0;     // the newest verification
};

// Optional fields written together with a transition (in the same transaction): what a step
// learned travels in its outcome (pipeline/outcome.hpp) and lands here.
struct ItemPatch {
  std::optional<std::string> study_uid, pacs_patient_id, subject, session, last_error, wait_reason;
  std::optional<bool> retryable;
  std::optional<int> attempts, verify_checks, repushes;
  std::optional<std::int64_t> next_attempt_at, expected, received, pushed, verified, bytes;
  // The item's series, replaced wholesale (as set_series does).
  std::optional<std::vector<Series>> series;
  // Received counts per SeriesInstanceUID (as set_series_received does).
  std::vector<std::pair<std::string, std::int64_t>> series_received;
  // Where the item's job sends its sessions, recorded unless already decided (as
  // set_destination does).
  std::optional<domain::Destination> job_destination;
};

class Store {
 public:
  // Opens (creating if needed) the database at `path` (":memory:" for tests), migrates, recovers.
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Number of items moved back from in-flight states when this Store was opened.
  int recovered() const { return recovered_; }
  int schema_version() const;

  // After the spool's files were lost or may be damaged (see pipeline/spool.hpp): every item in
  // retrieved, validated or pushed goes back to queued (one event each, with `detail`, no
  // attempt counted); their received/pushed/verified counts and those of queued items (whose
  // partial spool is gone too) are reset. Call it on a recovered store, before any worker
  // runs. Returns the number of items moved.
  int requeue_unfinished(const std::string& detail);

  // One transaction; returns the new job id.
  std::int64_t create_job(const NewJob& job);

  std::optional<Job> job(std::int64_t id) const;
  std::vector<Job> jobs() const;  // newest first
  // The newest active job of `project` made from a CSV with this sha256 (a resubmission of the
  // same file while its first job still runs), if any.
  std::optional<Job> active_job_with_csv(const std::string& project,
                                         const std::string& csv_sha256) const;
  JobSummary summary(std::int64_t job_id) const;
  std::vector<Item> items(std::int64_t job_id) const;  // in CSV row order
  // One page of a job's items in CSV row order, optionally only those in `state`.
  std::vector<Item> items_page(std::int64_t job_id, std::optional<ItemState> state,
                               std::int64_t offset, std::int64_t limit) const;
  // Items per project and state, the oldest queued and in-flight items, the last verification;
  // a few index seeks whatever the store's size.
  StoreStats stats() const;
  std::optional<Item> item(std::int64_t item_id) const;
  std::vector<Event> events(std::int64_t item_id) const;

  // Moves an item from `from` to `to` if it is currently in `from`; returns false (changing
  // nothing) if it is not (someone else moved it). Throws IllegalTransition if from->to is not in
  // the state machine. Writes the patch and one event in the same transaction. A move into a
  // final state marks the job done when it was the last open item (see refresh_job_state).
  bool transition(std::int64_t item_id, ItemState from, ItemState to, std::string_view detail,
                  const ItemPatch& patch = {});
  // Updates fields without a state change (progress counters, wait reasons).
  void update(std::int64_t item_id, const ItemPatch& patch);

  // Atomically picks the next eligible item in state `from` (job active and not paused,
  // next_attempt_at <= now, optionally only jobs on PACS `pacs`) and moves it to `to`.
  // Fair across jobs: the job that was served least recently goes first (a new job first of
  // all); within a job the earliest next_attempt_at, then CSV row order.
  std::optional<Item> claim(ItemState from, ItemState to, std::int64_t now,
                            std::string_view pacs = {});

  // Series of one item (replaced wholesale after a C-FIND; received counts updated in place).
  void set_series(std::int64_t item_id, const std::vector<Series>& series);
  std::vector<Series> series(std::int64_t item_id) const;
  void set_series_received(std::int64_t item_id, const std::string& series_uid,
                           std::int64_t received);

  // Items in `state` whose next_attempt_at is due, of active unpaused jobs (e.g. pushed items
  // waiting for verification), earliest first.
  std::vector<Item> due(ItemState state, std::int64_t now, int limit) const;

  // Label consistency within a job: another item of `job_id` whose PACS PatientID is
  // `patient_id` but whose subject differs, or whose subject is `subject` (case-insensitive,
  // as XNAT matches subjects) but whose PatientID differs. Returns a readable description of
  // the first such conflict, or "" if none.
  std::string label_conflict(std::int64_t job_id, std::int64_t item_id,
                             const std::string& patient_id, const std::string& subject) const;

  // Atomically checks label_conflict() for this item and records its PACS PatientID and subject,
  // so two items of one patient queried at the same moment cannot both miss each other.
  // Returns the conflict description, or "" if none.
  std::string record_patient(std::int64_t item_id, const std::string& patient_id,
                             const std::string& subject);

  // Queued items of active jobs on PACS `pacs` that wait for that PACS to answer become due now
  // (called when its circuit breaker closes). Returns count.
  std::int64_t release_waiting(const std::string& pacs);

  // Fails every non-final item of a job with `reason` (e.g. XNAT refused the credentials);
  // returns count. The items may be retried later with retry_job().
  std::int64_t fail_job(std::int64_t job_id, const std::string& reason);

  // Records where the job's sessions go unless already decided; returns the destination in
  // force (nullopt for an unknown job).
  std::optional<domain::Destination> set_destination(std::int64_t job_id,
                                                     domain::Destination destination);

  // Job controls. Return false if the job does not exist.
  bool set_paused(std::int64_t job_id, bool paused);
  // Cancels every non-final item (in-flight ones too: workers notice and stop); returns count
  // (0 also for an unknown job: check job() first to tell the two apart).
  std::int64_t cancel_job(std::int64_t job_id);
  // Re-queues the job's failed items (attempts, next_attempt_at, last_error reset) and makes
  // the job active again; returns count (0 also for an unknown job).
  std::int64_t retry_job(std::int64_t job_id);
  // Marks an active job done when all its items are final (and a done job active again when
  // one is not).
  void refresh_job_state(std::int64_t job_id);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int recovered_ = 0;
};

}  // namespace p2x::store
