// store: the persistent SQLite job store (see store.hpp).
#include "store/store.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>

#include "store/schema.hpp"
#include "store/sqlite_util.hpp"

namespace p2x::store {

using detail::Db;
using detail::Stmt;
using detail::Transaction;

namespace {

std::int64_t wall_now() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

std::string state_name(ItemState s) {
  return std::string(to_string(s));
}

// SQL fragment: state is one of the final states.
#define P2X_FINAL_STATES "('verified', 'failed', 'cancelled')"

#define P2X_ITEM_COLS                                                                     \
  "id, job_id, row, line, kind, accession, patient_id, study_date, study_uid, modality, " \
  "subject, session, pacs_patient_id, state, attempts, next_attempt_at, last_error, "     \
  "retryable, wait_reason, expected, received, pushed, verified, bytes, updated_at, "     \
  "verify_checks, repushes"

#define P2X_JOB_COLS                                                                   \
  "id, project, pacs, csv_name, csv_sha256, submitted_by, created_at, state, paused, " \
  "options_json, "                                                                     \
  "destination, submitted_user"

Item read_item(const Stmt& st) {
  Item it;
  it.id = st.int64(0);
  it.job_id = st.int64(1);
  it.row = st.int32(2);
  it.line = st.int32(3);
  const std::string kind = st.text(4);
  const auto parsed_kind = domain::parse_row_kind(kind);
  if (!parsed_kind) {
    throw StoreError("item " + std::to_string(it.id) + " has unknown kind '" + kind + "'");
  }
  it.kind = *parsed_kind;
  it.accession = st.text(5);
  it.patient_id = st.text(6);
  it.study_date = st.text(7);
  it.study_uid = st.text(8);
  it.modality = st.text(9);
  it.subject = st.text(10);
  it.session = st.text(11);
  it.pacs_patient_id = st.text(12);
  const std::string state = st.text(13);
  auto parsed = parse_state(state);
  if (!parsed)
    throw StoreError("item " + std::to_string(it.id) + " has unknown state '" + state + "'");
  it.state = *parsed;
  it.attempts = st.int32(14);
  it.next_attempt_at = st.int64(15);
  it.last_error = st.text(16);
  it.retryable = st.int64(17) != 0;
  it.wait_reason = st.text(18);
  it.expected = st.int64(19);
  it.received = st.int64(20);
  it.pushed = st.int64(21);
  it.verified = st.int64(22);
  it.bytes = st.int64(23);
  it.updated_at = st.int64(24);
  it.verify_checks = st.int32(25);
  it.repushes = st.int32(26);
  return it;
}

JobState parse_job_state(const std::string& s) {
  if (s == "active") return JobState::Active;
  if (s == "done") return JobState::Done;
  if (s == "cancelled") return JobState::Cancelled;
  throw StoreError("job has unknown state '" + s + "'");
}

Job read_job(const Stmt& st) {
  Job j;
  j.id = st.int64(0);
  j.project = st.text(1);
  j.pacs = st.text(2);
  j.csv_name = st.text(3);
  j.csv_sha256 = st.text(4);
  j.submitted_by = static_cast<std::uint32_t>(st.int64(5));
  j.created_at = st.int64(6);
  j.state = parse_job_state(st.text(7));
  j.paused = st.int64(8) != 0;
  j.options_json = st.text(9);
  const std::string destination = st.text(10);
  if (!destination.empty()) {
    j.destination = domain::parse_destination(destination);
    if (!j.destination) {
      throw StoreError("job " + std::to_string(j.id) + " has unknown destination '" + destination +
                       "'");
    }
  }
  j.submitted_user = st.text(11);
  return j;
}

// Checks the path and creates the file with mode 0600 if it does not exist yet, so that the
// database (and its -wal/-shm files, which SQLite creates with the same mode) is private.
void prepare_path(const std::string& path) {
  if (path.empty()) throw StoreError("store path is empty");
  if (path == ":memory:") return;
  namespace fs = std::filesystem;
  fs::path p(path);
  fs::path parent = p.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) {
    throw StoreError("cannot open store '" + path + "': directory '" + parent.string() +
                     "' does not exist");
  }
  // O_EXCL: never open (and then close) an existing database file ourselves, since closing
  // any descriptor of a file drops the process's POSIX locks on it, SQLite's included.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  if (errno != EEXIST) {
    throw StoreError("cannot create store '" + path + "': " + std::strerror(errno));
  }
}

// synchronous=NORMAL until destroyed (then FULL again). Must wrap a whole transaction:
// SQLite refuses to change the level inside one.
//
// Used for writes whose loss on power failure is harmless: claims (an in-flight state, which
// recovery would undo anyway), progress counters, series lists (rewritten by a retried
// retrieval) and the transitions of needs_full_sync(). They stay atomic and ordered; only the
// fsync at their commit is skipped, and the next synchronous=FULL commit makes them durable too.
class RelaxedSync {
 public:
  explicit RelaxedSync(Db& db) : db_(db) { db_.exec("PRAGMA synchronous = NORMAL"); }
  ~RelaxedSync() { db_.exec_noexcept("PRAGMA synchronous = FULL"); }
  RelaxedSync(const RelaxedSync&) = delete;
  RelaxedSync& operator=(const RelaxedSync&) = delete;

 private:
  Db& db_;
};

// Whether a transition into `to` is committed with an fsync. Losing one of the others on power
// failure (a kill -9 loses nothing: the WAL is in the page cache) only repeats local,
// idempotent work: an in-flight state is undone by recovery; `retrieved` and `validated` are
// found again by a re-query and a re-retrieval (after a power loss the daemon discards the
// spool of unfinished items anyway: pipeline/spool.hpp). Final states, `pushed` (XNAT has the
// data), `queued` and any transition that counts an attempt are durable; their fsync also makes
// every earlier relaxed commit durable.
bool needs_full_sync(ItemState to, const ItemPatch& patch) {
  return is_final(to) || to == ItemState::Pushed || to == ItemState::Queued ||
         patch.attempts.has_value();
}

}  // namespace

struct Store::Impl {
  explicit Impl(const std::string& path) : db(path) {}

  Db db;
  mutable std::mutex mu;

  void insert_event(std::optional<std::int64_t> item_id, std::int64_t job_id, std::string_view from,
                    std::string_view to, std::string_view detail) {
    db.prepare(
          "INSERT INTO events (item_id, job_id, at, from_state, to_state, detail) "
          "VALUES (?, ?, ?, ?, ?, ?)")
        .bind(1, item_id)
        .bind(2, job_id)
        .bind(3, wall_now())
        .bind(4, from)
        .bind(5, to)
        .bind(6, detail)
        .run();
  }

  // Writes `patch` (and the new state, if given) to an item, only if it is in `from` (if
  // given). Returns the item's job id, or nullopt if no row matched.
  std::optional<std::int64_t> write_item(std::int64_t item_id, std::optional<ItemState> from,
                                         std::optional<ItemState> to, const ItemPatch& p) {
    auto st = db.prepare(
        "UPDATE items SET state = coalesce(?1, state), updated_at = ?2,"
        " study_uid = coalesce(?3, study_uid), pacs_patient_id = coalesce(?4, pacs_patient_id),"
        " subject = coalesce(?5, subject), session = coalesce(?6, session),"
        " last_error = coalesce(?7, last_error), wait_reason = coalesce(?8, wait_reason),"
        " retryable = coalesce(?9, retryable), attempts = coalesce(?10, attempts),"
        " next_attempt_at = coalesce(?11, next_attempt_at), expected = coalesce(?12, expected),"
        " received = coalesce(?13, received), pushed = coalesce(?14, pushed),"
        " verified = coalesce(?15, verified), bytes = coalesce(?16, bytes),"
        // Back in the queue: verification's counters start afresh (schema v5).
        " verify_checks = CASE WHEN ?1 = 'queued' THEN 0 ELSE coalesce(?19, verify_checks) END,"
        " repushes = CASE WHEN ?1 = 'queued' THEN 0 ELSE coalesce(?20, repushes) END"
        " WHERE id = ?17 AND (?18 IS NULL OR state = ?18) RETURNING job_id");
    if (to) st.bind(1, to_string(*to));
    st.bind(2, wall_now());
    st.bind(3, p.study_uid).bind(4, p.pacs_patient_id).bind(5, p.subject).bind(6, p.session);
    st.bind(7, p.last_error).bind(8, p.wait_reason).bind(9, p.retryable).bind(10, p.attempts);
    st.bind(11, p.next_attempt_at).bind(12, p.expected).bind(13, p.received);
    st.bind(14, p.pushed).bind(15, p.verified).bind(16, p.bytes);
    st.bind(17, item_id);
    if (from) st.bind(18, to_string(*from));
    st.bind(19, p.verify_checks).bind(20, p.repushes);
    std::optional<std::int64_t> job_id;
    if (st.step()) job_id = st.int64(0);
    st.run();
    if (job_id) write_learned(item_id, *job_id, p);
    return job_id;
  }

  // The patch's series and job destination, in the caller's transaction.
  void write_learned(std::int64_t item_id, std::int64_t job_id, const ItemPatch& p) {
    if (p.series) replace_series(item_id, *p.series);
    for (const auto& [uid, received] : p.series_received) set_received(item_id, uid, received);
    if (p.job_destination) set_destination(job_id, *p.job_destination);
  }

  void replace_series(std::int64_t item_id, const std::vector<Series>& series) {
    db.prepare("DELETE FROM series WHERE item_id = ?").bind(1, item_id).run();
    auto st = db.prepare(
        "INSERT INTO series (item_id, series_uid, modality, description, number, expected,"
        " received) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (item_id, series_uid) DO UPDATE SET modality = excluded.modality,"
        " description = excluded.description, number = excluded.number,"
        " expected = excluded.expected, received = excluded.received");
    for (const auto& s : series) {
      st.bind(1, item_id).bind(2, s.series_uid).bind(3, s.modality).bind(4, s.description);
      st.bind(5, s.number).bind(6, s.expected).bind(7, s.received);
      st.run();
      st.reset();
    }
  }

  void set_received(std::int64_t item_id, const std::string& series_uid, std::int64_t received) {
    // A series the C-FIND did not report is recorded with expected = 0, so validation sees it.
    db.prepare(
          "INSERT INTO series (item_id, series_uid, received) VALUES (?, ?, ?)"
          " ON CONFLICT (item_id, series_uid) DO UPDATE SET received = excluded.received")
        .bind(1, item_id)
        .bind(2, series_uid)
        .bind(3, received)
        .run();
  }

  // Records the job's destination unless already decided; returns the one in force.
  std::optional<domain::Destination> set_destination(std::int64_t job_id,
                                                     domain::Destination value) {
    const std::string destination(domain::to_string(value));
    db.prepare("UPDATE jobs SET destination = ? WHERE id = ? AND destination = ''")
        .bind(1, destination)
        .bind(2, job_id)
        .run();
    if (db.changes() > 0)
      insert_event(std::nullopt, job_id, "", "", "sessions go to the " + destination);
    auto job = get_job(job_id);
    return job ? job->destination : std::nullopt;
  }

  std::int64_t unfinished(std::int64_t job_id) {
    auto st = db.prepare(
        "SELECT coalesce(sum(n), 0) FROM job_counts WHERE job_id = ? AND state NOT "
        "IN " P2X_FINAL_STATES);
    st.bind(1, job_id);
    return st.step() ? st.int64(0) : 0;
  }

  // active -> done when every item is final; done -> active when one is not any more.
  void refresh_job(std::int64_t job_id) {
    std::string state;
    {
      auto st = db.prepare("SELECT state FROM jobs WHERE id = ?");
      st.bind(1, job_id);
      if (!st.step()) return;
      state = st.text(0);
    }
    const std::int64_t open = unfinished(job_id);
    const char* next = nullptr;
    if (state == "active" && open == 0) next = "done";
    if (state == "done" && open > 0) next = "active";
    if (!next) return;
    db.prepare("UPDATE jobs SET state = ? WHERE id = ?").bind(1, next).bind(2, job_id).run();
    insert_event(std::nullopt, job_id, state, next,
                 open == 0 ? "all items finished" : "items re-queued");
  }

  std::optional<Job> get_job(std::int64_t id) {
    auto st = db.prepare("SELECT " P2X_JOB_COLS " FROM jobs WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return read_job(st);
  }

  std::optional<Item> get_item(std::int64_t id) {
    auto st = db.prepare("SELECT " P2X_ITEM_COLS " FROM items WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) return std::nullopt;
    return read_item(st);
  }

  std::string label_conflict(std::int64_t job_id, std::int64_t item_id,
                             const std::string& patient_id, const std::string& subject);

  // Returns every item left in an in-flight state to the last durable state before it.
  int recover() {
    struct Step {
      ItemState from, to;
    };
    static constexpr Step kSteps[] = {
        {ItemState::Querying, ItemState::Queued},      {ItemState::Retrieving, ItemState::Queued},
        {ItemState::Validating, ItemState::Retrieved}, {ItemState::Pushing, ItemState::Validated},
        {ItemState::Verifying, ItemState::Pushed},
    };
    Transaction tx(db);
    std::int64_t total = 0;
    const std::int64_t now = wall_now();
    for (const auto& s : kSteps) {
      db.prepare(
            "INSERT INTO events (item_id, job_id, at, from_state, to_state, detail) "
            "SELECT id, job_id, ?1, state, ?2, 'recovered after restart' FROM items "
            "WHERE job_id IN (SELECT job_id FROM job_counts WHERE state = ?3 AND n > 0) "
            "AND state = ?3")
          .bind(1, now)
          .bind(2, to_string(s.to))
          .bind(3, to_string(s.from))
          .run();
      db.prepare(
            "UPDATE items SET state = ?1, updated_at = ?2 "
            "WHERE job_id IN (SELECT job_id FROM job_counts WHERE state = ?3 AND n > 0) "
            "AND state = ?3")
          .bind(1, to_string(s.to))
          .bind(2, now)
          .bind(3, to_string(s.from))
          .run();
      total += db.changes();
    }
    tx.commit();
    return static_cast<int>(total);
  }
};

int Store::requeue_unfinished(const std::string& detail) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto& db = impl_->db;
  Transaction tx(db);
  const std::int64_t now = wall_now();
  const std::string moved = "('retrieved', 'validated', 'pushed')";
  const std::string reset = "('queued', 'retrieved', 'validated', 'pushed')";
  const std::string event =
      "INSERT INTO events (item_id, job_id, at, from_state, to_state, detail) "
      "SELECT id, job_id, ?1, state, 'queued', ?2 FROM items WHERE state IN " +
      moved;
  const std::string series =
      "UPDATE series SET received = 0 WHERE item_id IN (SELECT id FROM items WHERE state IN " +
      reset + ")";
  const std::string counts =
      "UPDATE items SET received = 0, bytes = 0, pushed = 0, verified = 0, verify_checks = 0,"
      " repushes = 0 WHERE state IN " +
      reset;
  const std::string state =
      "UPDATE items SET state = 'queued', next_attempt_at = 0, updated_at = ?1 WHERE state IN " +
      moved;
  db.prepare(event.c_str()).bind(1, now).bind(2, detail).run();
  db.prepare(series.c_str()).run();
  db.prepare(counts.c_str()).run();
  db.prepare(state.c_str()).bind(1, now).run();
  const int n = static_cast<int>(db.changes());
  tx.commit();
  return n;
}

Store::Store(const std::string& path) {
  prepare_path(path);
  impl_ = std::make_unique<Impl>(path);
  auto& db = impl_->db;
  db.exec("PRAGMA busy_timeout = 5000");
  if (path != ":memory:") {
    auto st = db.prepare("PRAGMA journal_mode = WAL");
    std::string mode = st.step() ? st.text(0) : "";
    if (mode != "wal") {
      throw StoreError("cannot open store '" + path + "': WAL journal mode unavailable (got '" +
                       mode + "')");
    }
  }
  db.exec("PRAGMA synchronous = FULL");
  db.exec("PRAGMA foreign_keys = ON");
  db.exec("PRAGMA cache_size = -16384");  // 16 MiB: a 100k-item submit fits without spilling
  detail::migrate(db);
  recovered_ = impl_->recover();
}

Store::~Store() = default;

int Store::schema_version() const {
  std::lock_guard lock(impl_->mu);
  return detail::read_schema_version(impl_->db);
}

std::int64_t Store::create_job(const NewJob& job) {
  std::lock_guard lock(impl_->mu);
  auto& db = impl_->db;
  Transaction tx(db);
  const std::int64_t now = wall_now();
  std::int64_t job_id = 0;
  {
    auto st = db.prepare(
        "INSERT INTO jobs (project, pacs, csv_name, csv_sha256, submitted_by, created_at, state,"
        " options_json, submitted_user) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id");
    st.bind(1, job.project).bind(2, job.pacs).bind(3, job.csv_name).bind(4, job.csv_sha256);
    st.bind(5, job.submitted_by).bind(6, now);
    st.bind(7, job.items.empty() ? "done" : "active");
    st.bind(8, job.options_json.empty() ? std::string("{}") : job.options_json);
    st.bind(9, job.submitted_user);
    if (!st.step()) throw StoreError("inserting job returned no id");
    job_id = st.int64(0);
    st.run();
  }
  {
    auto st = db.prepare(
        "INSERT INTO items (job_id, row, line, kind, accession, patient_id, study_date,"
        " study_uid, modality, subject, session, state, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)");
    for (const auto& it : job.items) {
      st.bind(1, job_id).bind(2, it.row).bind(3, it.line).bind(4, domain::to_string(it.kind));
      st.bind(5, it.accession).bind(6, it.patient_id).bind(7, it.study_date);
      st.bind(8, it.study_uid).bind(9, it.modality).bind(10, it.subject).bind(11, it.session);
      st.bind(12, now);
      st.run();
      st.reset();
    }
  }
  if (!job.items.empty()) {
    db.prepare("INSERT INTO job_counts (job_id, state, n) VALUES (?, 'queued', ?)")
        .bind(1, job_id)
        .bind(2, static_cast<std::int64_t>(job.items.size()))
        .run();
  }
  impl_->insert_event(
      std::nullopt, job_id, "", "queued",
      "created with " + std::to_string(job.items.size()) + " items from '" + job.csv_name + "'");
  tx.commit();
  return job_id;
}

std::optional<Job> Store::job(std::int64_t id) const {
  std::lock_guard lock(impl_->mu);
  return impl_->get_job(id);
}

std::vector<Job> Store::jobs() const {
  std::lock_guard lock(impl_->mu);
  std::vector<Job> out;
  auto st = impl_->db.prepare("SELECT " P2X_JOB_COLS " FROM jobs ORDER BY id DESC");
  while (st.step()) out.push_back(read_job(st));
  return out;
}

std::optional<Job> Store::active_job_with_csv(const std::string& project,
                                              const std::string& csv_sha256) const {
  std::lock_guard lock(impl_->mu);
  auto st = impl_->db.prepare("SELECT " P2X_JOB_COLS
                              " FROM jobs WHERE state = 'active' AND "
                              "project = ? AND csv_sha256 = ? ORDER BY id DESC LIMIT 1");
  st.bind(1, project).bind(2, csv_sha256);
  if (!st.step()) return std::nullopt;
  return read_job(st);
}

JobSummary Store::summary(std::int64_t job_id) const {
  std::lock_guard lock(impl_->mu);
  auto& db = impl_->db;
  Transaction tx(db, Transaction::Kind::Deferred);  // one consistent snapshot
  JobSummary s;
  auto job = impl_->get_job(job_id);
  if (!job) throw StoreError("no job " + std::to_string(job_id));
  s.job = std::move(*job);
  {
    auto st = db.prepare(
        "SELECT state, n, expected, received, pushed, verified, bytes FROM job_counts"
        " WHERE job_id = ? AND n > 0");
    st.bind(1, job_id);
    while (st.step()) {
      auto state = parse_state(st.text(0));
      if (!state) continue;
      s.counts[*state] = st.int64(1);
      s.total += st.int64(1);
      s.expected += st.int64(2);
      s.received += st.int64(3);
      s.pushed += st.int64(4);
      s.verified += st.int64(5);
      s.bytes += st.int64(6);
    }
  }
  {
    auto st = db.prepare("SELECT " P2X_ITEM_COLS
                         " FROM items WHERE job_id = ? AND state = 'failed'"
                         " ORDER BY updated_at DESC, id DESC LIMIT 5");
    st.bind(1, job_id);
    while (st.step()) s.latest_failures.push_back(read_item(st));
  }
  tx.commit();
  return s;
}

std::vector<Item> Store::items(std::int64_t job_id) const {
  std::lock_guard lock(impl_->mu);
  std::vector<Item> out;
  auto st =
      impl_->db.prepare("SELECT " P2X_ITEM_COLS " FROM items WHERE job_id = ? ORDER BY row, id");
  st.bind(1, job_id);
  while (st.step()) out.push_back(read_item(st));
  return out;
}

std::vector<Item> Store::items_page(std::int64_t job_id, std::optional<ItemState> state,
                                    std::int64_t offset, std::int64_t limit) const {
  std::lock_guard lock(impl_->mu);
  std::vector<Item> out;
  auto st = impl_->db.prepare(state ? "SELECT " P2X_ITEM_COLS
                                      " FROM items WHERE job_id = ?1 AND state = ?2"
                                      " ORDER BY row LIMIT ?3 OFFSET ?4"
                                    : "SELECT " P2X_ITEM_COLS
                                      " FROM items INDEXED BY items_row WHERE job_id = ?1"
                                      " AND row > 0 ORDER BY row LIMIT ?3 OFFSET ?4");
  st.bind(1, job_id);
  if (state) st.bind(2, to_string(*state));
  st.bind(3, std::max<std::int64_t>(0, limit)).bind(4, std::max<std::int64_t>(0, offset));
  while (st.step()) out.push_back(read_item(st));
  return out;
}

StoreStats Store::stats() const {
  std::lock_guard lock(impl_->mu);
  auto& db = impl_->db;
  Transaction tx(db, Transaction::Kind::Deferred);  // one consistent snapshot
  StoreStats out;
  {
    auto st = db.prepare(
        "SELECT j.project, c.state, sum(c.n) FROM job_counts c JOIN jobs j"
        " ON j.id = c.job_id WHERE c.n > 0 GROUP BY j.project, c.state");
    while (st.step()) {
      auto state = parse_state(st.text(1));
      if (state) out.items.push_back({st.text(0), *state, st.int64(2)});
    }
  }
  // Each MIN/MAX is one seek in items_state_age.
  const auto edge = [&db](const char* sql, ItemState state) -> std::int64_t {
    auto st = db.prepare(sql);
    st.bind(1, to_string(state));
    return st.step() && !st.is_null(0) ? st.int64(0) : 0;
  };
  const char* oldest = "SELECT min(updated_at) FROM items WHERE state = ?";
  out.oldest_queued_at = edge(oldest, ItemState::Queued);
  for (ItemState s : all_states()) {
    if (!is_in_flight(s)) continue;
    const std::int64_t at = edge(oldest, s);
    if (at > 0 && (out.oldest_in_flight_at == 0 || at < out.oldest_in_flight_at)) {
      out.oldest_in_flight_at = at;
    }
  }
  out.last_verified_at =
      edge("SELECT max(updated_at) FROM items WHERE state = ?", ItemState::Verified);
  tx.commit();
  return out;
}

std::optional<Item> Store::item(std::int64_t item_id) const {
  std::lock_guard lock(impl_->mu);
  return impl_->get_item(item_id);
}

std::vector<Event> Store::events(std::int64_t item_id) const {
  std::lock_guard lock(impl_->mu);
  std::vector<Event> out;
  auto st = impl_->db.prepare(
      "SELECT id, item_id, job_id, at, from_state, to_state, detail FROM events"
      " WHERE item_id = ? ORDER BY id");
  st.bind(1, item_id);
  while (st.step()) {
    Event e;
    e.id = st.int64(0);
    e.item_id = st.int64(1);
    e.job_id = st.int64(2);
    e.at = st.int64(3);
    e.from = st.text(4);
    e.to = st.text(5);
    e.detail = st.text(6);
    out.push_back(std::move(e));
  }
  return out;
}

bool Store::transition(std::int64_t item_id, ItemState from, ItemState to, std::string_view detail,
                       const ItemPatch& patch) {
  if (!is_legal(from, to)) {
    throw IllegalTransition("illegal item transition from " + state_name(from) + " to " +
                            state_name(to));
  }
  std::lock_guard lock(impl_->mu);
  std::optional<RelaxedSync> relaxed;
  if (!needs_full_sync(to, patch)) relaxed.emplace(impl_->db);
  Transaction tx(impl_->db);
  auto job_id = impl_->write_item(item_id, from, to, patch);
  if (!job_id) return false;  // not in `from` (or no such item): nothing changed
  impl_->insert_event(item_id, *job_id, to_string(from), to_string(to), detail);
  if (is_final(to) || is_final(from)) impl_->refresh_job(*job_id);
  tx.commit();
  return true;
}

void Store::update(std::int64_t item_id, const ItemPatch& patch) {
  std::lock_guard lock(impl_->mu);
  RelaxedSync relaxed(impl_->db);  // not a state change: see RelaxedSync
  Transaction tx(impl_->db);
  if (!impl_->write_item(item_id, std::nullopt, std::nullopt, patch)) {
    throw StoreError("no item " + std::to_string(item_id));
  }
  tx.commit();
}

std::optional<Item> Store::claim(ItemState from, ItemState to, std::int64_t now,
                                 std::string_view pacs) {
  if (!is_legal(from, to)) {
    throw IllegalTransition("illegal item transition from " + state_name(from) + " to " +
                            state_name(to));
  }
  std::lock_guard lock(impl_->mu);
  auto& db = impl_->db;
  // A claim only moves an item into an in-flight state, which recovery undoes anyway: if a
  // power loss drops it, the item is simply still queued. So its commit skips the fsync.
  RelaxedSync relaxed(db);
  Transaction tx(db);
  std::int64_t job_id = 0, item_id = 0;
  {
    // Jobs least recently served first; within a job, the first due item (earliest
    // next_attempt_at, then CSV row order). Each probe is one index seek.
    auto jobs = db.prepare(
        "SELECT id FROM jobs WHERE state = 'active' AND paused = 0 AND (?1 = '' OR pacs = ?1)"
        " ORDER BY serve_seq, id");
    jobs.bind(1, pacs);
    auto pick = db.prepare(
        "SELECT id FROM items WHERE job_id = ? AND state = ? AND next_attempt_at <= ?"
        " ORDER BY next_attempt_at, row, id LIMIT 1");
    while (jobs.step()) {
      const std::int64_t candidate = jobs.int64(0);
      pick.bind(1, candidate).bind(2, to_string(from)).bind(3, now);
      const bool found = pick.step();
      if (found) item_id = pick.int64(0);
      pick.reset();
      if (found) {
        job_id = candidate;
        break;
      }
    }
  }
  if (item_id == 0) return std::nullopt;
  db.prepare(
        "UPDATE jobs SET serve_seq = (SELECT coalesce(max(serve_seq), 0) + 1 FROM jobs)"
        " WHERE id = ?")
      .bind(1, job_id)
      .run();
  if (!impl_->write_item(item_id, from, to, ItemPatch{})) {
    throw StoreError("claimed item " + std::to_string(item_id) + " vanished");
  }
  impl_->insert_event(item_id, job_id, to_string(from), to_string(to), "claimed");
  auto item = impl_->get_item(item_id);
  tx.commit();
  return item;
}

void Store::set_series(std::int64_t item_id, const std::vector<Series>& series) {
  std::lock_guard lock(impl_->mu);
  RelaxedSync relaxed(impl_->db);  // not a state change: see RelaxedSync
  Transaction tx(impl_->db);
  impl_->replace_series(item_id, series);
  tx.commit();
}

std::vector<Series> Store::series(std::int64_t item_id) const {
  std::lock_guard lock(impl_->mu);
  std::vector<Series> out;
  auto st = impl_->db.prepare(
      "SELECT item_id, series_uid, modality, description, number, expected, received"
      " FROM series WHERE item_id = ? ORDER BY number, series_uid");
  st.bind(1, item_id);
  while (st.step()) {
    Series s;
    s.item_id = st.int64(0);
    s.series_uid = st.text(1);
    s.modality = st.text(2);
    s.description = st.text(3);
    s.number = st.int32(4);
    s.expected = st.int64(5);
    s.received = st.int64(6);
    out.push_back(std::move(s));
  }
  return out;
}

void Store::set_series_received(std::int64_t item_id, const std::string& series_uid,
                                std::int64_t received) {
  std::lock_guard lock(impl_->mu);
  RelaxedSync relaxed(impl_->db);  // not a state change: see RelaxedSync
  Transaction tx(impl_->db);
  impl_->set_received(item_id, series_uid, received);
  tx.commit();
}

std::optional<domain::Destination> Store::set_destination(std::int64_t job_id,
                                                          domain::Destination value) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(impl_->db);
  auto in_force = impl_->set_destination(job_id, value);
  tx.commit();
  return in_force;
}

bool Store::set_paused(std::int64_t job_id, bool paused) {
  std::lock_guard lock(impl_->mu);
  auto& db = impl_->db;
  Transaction tx(db);
  db.prepare("UPDATE jobs SET paused = ? WHERE id = ?").bind(1, paused).bind(2, job_id).run();
  if (db.changes() == 0) return false;
  impl_->insert_event(std::nullopt, job_id, "", "", paused ? "paused" : "resumed");
  tx.commit();
  return true;
}

std::int64_t Store::cancel_job(std::int64_t job_id) {
  std::lock_guard lock(impl_->mu);
  auto& db = impl_->db;
  Transaction tx(db);
  auto job = impl_->get_job(job_id);
  if (!job) return 0;
  const std::int64_t now = wall_now();
  db.prepare(
        "INSERT INTO events (item_id, job_id, at, from_state, to_state, detail)"
        " SELECT id, job_id, ?1, state, 'cancelled', 'job cancelled' FROM items"
        " WHERE job_id = ?2 AND state NOT IN " P2X_FINAL_STATES)
      .bind(1, now)
      .bind(2, job_id)
      .run();
  db.prepare(
        "UPDATE items SET state = 'cancelled', updated_at = ?1"
        " WHERE job_id = ?2 AND state NOT IN " P2X_FINAL_STATES)
      .bind(1, now)
      .bind(2, job_id)
      .run();
  const std::int64_t count = db.changes();
  if (job->state == JobState::Active) {
    db.prepare("UPDATE jobs SET state = 'cancelled' WHERE id = ?").bind(1, job_id).run();
    impl_->insert_event(std::nullopt, job_id, "active", "cancelled",
                        "job cancelled (" + std::to_string(count) + " items)");
  }
  tx.commit();
  return count;
}

std::int64_t Store::retry_job(std::int64_t job_id) {
  std::lock_guard lock(impl_->mu);
  auto& db = impl_->db;
  Transaction tx(db);
  auto job = impl_->get_job(job_id);
  if (!job) return 0;
  const std::int64_t now = wall_now();
  db.prepare(
        "INSERT INTO events (item_id, job_id, at, from_state, to_state, detail)"
        " SELECT id, job_id, ?1, 'failed', 'queued', 'retry requested' FROM items"
        " WHERE job_id = ?2 AND state = 'failed'")
      .bind(1, now)
      .bind(2, job_id)
      .run();
  db.prepare(
        "UPDATE items SET state = 'queued', attempts = 0, next_attempt_at = 0, last_error = '',"
        " verify_checks = 0, repushes = 0,"
        " retryable = 1, wait_reason = '', updated_at = ?1 WHERE job_id = ?2 AND state = 'failed'")
      .bind(1, now)
      .bind(2, job_id)
      .run();
  const std::int64_t count = db.changes();
  if (count > 0 && job->state != JobState::Active) {
    db.prepare("UPDATE jobs SET state = 'active' WHERE id = ?").bind(1, job_id).run();
    impl_->insert_event(std::nullopt, job_id, to_string(job->state), "active",
                        "retry of " + std::to_string(count) + " failed items");
  }
  tx.commit();
  return count;
}

void Store::refresh_job_state(std::int64_t job_id) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(impl_->db);
  impl_->refresh_job(job_id);
  tx.commit();
}

std::vector<Item> Store::due(ItemState state, std::int64_t now, int limit) const {
  std::lock_guard lock(impl_->mu);
  std::vector<Item> out;
  auto st =
      impl_->db.prepare("SELECT " P2X_ITEM_COLS
                        " FROM items WHERE state = ?1 AND next_attempt_at <= ?2"
                        " AND job_id IN (SELECT id FROM jobs WHERE state = 'active' AND paused = 0)"
                        " ORDER BY next_attempt_at, id LIMIT ?3");
  st.bind(1, to_string(state)).bind(2, now).bind(3, limit);
  while (st.step()) out.push_back(read_item(st));
  return out;
}

std::string Store::label_conflict(std::int64_t job_id, std::int64_t item_id,
                                  const std::string& patient_id, const std::string& subject) const {
  std::lock_guard lock(impl_->mu);
  return impl_->label_conflict(job_id, item_id, patient_id, subject);
}

std::string Store::record_patient(std::int64_t item_id, const std::string& patient_id,
                                  const std::string& subject) {
  std::lock_guard lock(impl_->mu);
  auto item = impl_->get_item(item_id);
  if (!item) throw StoreError("no item " + std::to_string(item_id));
  RelaxedSync relaxed(impl_->db);  // recorded while querying: a lost write is queried again
  Transaction tx(impl_->db);
  std::string conflict = impl_->label_conflict(item->job_id, item_id, patient_id, subject);
  ItemPatch p;
  p.pacs_patient_id = patient_id;
  p.subject = subject;
  impl_->write_item(item_id, std::nullopt, std::nullopt, p);
  tx.commit();
  return conflict;
}

std::string Store::Impl::label_conflict(std::int64_t job_id, std::int64_t item_id,
                                        const std::string& patient_id, const std::string& subject) {
  // Two index searches (items_patient, items_subject), not one OR over the job's rows.
  auto st = db.prepare(
      "SELECT row, subject, pacs_patient_id FROM ("
      "  SELECT id, row, subject, pacs_patient_id, state FROM items"
      "  WHERE job_id = ?1 AND pacs_patient_id != '' AND pacs_patient_id = ?3"
      "    AND lower(subject) != lower(?4)"
      "  UNION ALL"
      "  SELECT id, row, subject, pacs_patient_id, state FROM items"
      "  WHERE job_id = ?1 AND pacs_patient_id != '' AND lower(subject) = lower(?4)"
      "    AND pacs_patient_id != ?3)"
      " WHERE id != ?2 AND state NOT IN ('cancelled') ORDER BY row LIMIT 1");
  st.bind(1, job_id).bind(2, item_id).bind(3, patient_id).bind(4, subject);
  if (!st.step()) return {};
  const std::string other_subject = st.text(1), other_pid = st.text(2);
  const std::string row = std::to_string(st.int64(0));
  if (other_pid == patient_id) {
    return "PatientID " + patient_id + " is subject " + other_subject + " on row " + row +
           " but subject " + subject + " here; XNAT would split this patient into two subjects";
  }
  return "subject " + subject + " is given to PatientID " + other_pid + " on row " + row +
         " and to PatientID " + patient_id +
         " here; XNAT would merge two patients into one subject";
}

std::int64_t Store::release_waiting(const std::string& pacs) {
  std::lock_guard lock(impl_->mu);
  auto& db = impl_->db;
  RelaxedSync relaxed(db);
  Transaction tx(db);
  db.prepare(
        "UPDATE items SET next_attempt_at = 0 WHERE state = 'queued'"
        " AND next_attempt_at > 0 AND wait_reason LIKE 'PACS % unreachable%'"
        " AND job_id IN (SELECT id FROM jobs WHERE pacs = ?1 AND state = 'active')")
      .bind(1, pacs)
      .run();
  const std::int64_t n = db.changes();
  tx.commit();
  return n;
}

std::int64_t Store::fail_job(std::int64_t job_id, const std::string& reason) {
  std::lock_guard lock(impl_->mu);
  auto& db = impl_->db;
  Transaction tx(db);
  const std::int64_t now = wall_now();
  db.prepare(
        "INSERT INTO events (item_id, job_id, at, from_state, to_state, detail)"
        " SELECT id, job_id, ?1, state, 'failed', ?3 FROM items"
        " WHERE job_id = ?2 AND state NOT IN " P2X_FINAL_STATES)
      .bind(1, now)
      .bind(2, job_id)
      .bind(3, reason)
      .run();
  db.prepare(
        "UPDATE items SET state = 'failed', last_error = ?3, retryable = 1, updated_at = ?1"
        " WHERE job_id = ?2 AND state NOT IN " P2X_FINAL_STATES)
      .bind(1, now)
      .bind(2, job_id)
      .bind(3, reason)
      .run();
  const std::int64_t count = db.changes();
  impl_->refresh_job(job_id);
  tx.commit();
  return count;
}

}  // namespace p2x::store
