// store (private): schema migrations (see schema.hpp).
#include "store/schema.hpp"

#include <ctime>
#include <string>

namespace p2x::store::detail {

namespace {

// Version 1: the initial schema.
//
// job_counts is a per-(job, state) aggregate, so that summary() costs O(states) rather than a
// scan of a job's (possibly 100k+) items. Triggers keep it up to date on item updates and
// deletes; create_job() adds its items' row itself (one write instead of one per item).
// Recovery and cancel find items through job_counts and the (job_id, state, ...) index.
// jobs.serve_seq orders jobs for fair claiming: every claim stamps the served job with
// max(serve_seq)+1, so the job with the smallest value is the one served least recently.
constexpr std::string_view kV1 = R"sql(
CREATE TABLE jobs (
  id            INTEGER PRIMARY KEY,
  project       TEXT    NOT NULL,
  pacs          TEXT    NOT NULL,
  csv_name      TEXT    NOT NULL DEFAULT '',
  csv_sha256    TEXT    NOT NULL DEFAULT '',
  submitted_by  INTEGER NOT NULL DEFAULT 0,
  created_at    INTEGER NOT NULL,
  state         TEXT    NOT NULL DEFAULT 'active'
                CHECK (state IN ('active', 'done', 'cancelled')),
  paused        INTEGER NOT NULL DEFAULT 0,
  options_json  TEXT    NOT NULL DEFAULT '{}',
  serve_seq     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_claim ON jobs (state, paused, serve_seq);
CREATE INDEX jobs_served ON jobs (serve_seq);

CREATE TABLE items (
  id              INTEGER PRIMARY KEY,
  job_id          INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  row             INTEGER NOT NULL DEFAULT 0,
  line            INTEGER NOT NULL DEFAULT 0,
  kind            TEXT    NOT NULL DEFAULT '',
  accession       TEXT    NOT NULL DEFAULT '',
  patient_id      TEXT    NOT NULL DEFAULT '',
  study_date      TEXT    NOT NULL DEFAULT '',
  study_uid       TEXT    NOT NULL DEFAULT '',
  modality        TEXT    NOT NULL DEFAULT '',
  subject         TEXT    NOT NULL DEFAULT '',
  session         TEXT    NOT NULL DEFAULT '',
  pacs_patient_id TEXT    NOT NULL DEFAULT '',
  state           TEXT    NOT NULL DEFAULT 'queued',
  attempts        INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error      TEXT    NOT NULL DEFAULT '',
  retryable       INTEGER NOT NULL DEFAULT 1,
  wait_reason     TEXT    NOT NULL DEFAULT '',
  expected        INTEGER NOT NULL DEFAULT 0,
  received        INTEGER NOT NULL DEFAULT 0,
  pushed          INTEGER NOT NULL DEFAULT 0,
  verified        INTEGER NOT NULL DEFAULT 0,
  bytes           INTEGER NOT NULL DEFAULT 0,
  updated_at      INTEGER NOT NULL DEFAULT 0
);
-- claim(): first due item of a job in a state, earliest due first, then CSV row order.
CREATE INDEX items_claim ON items (job_id, state, next_attempt_at, row);
-- summary(): latest failures of a job, newest first (partial: costs nothing for other states).
CREATE INDEX items_failed ON items (job_id, updated_at) WHERE state = 'failed';

-- Clustered by item: an item's series are adjacent, one b-tree for rows and lookups.
CREATE TABLE series (
  item_id     INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
  series_uid  TEXT    NOT NULL,
  modality    TEXT    NOT NULL DEFAULT '',
  description TEXT    NOT NULL DEFAULT '',
  number      INTEGER NOT NULL DEFAULT 0,
  expected    INTEGER NOT NULL DEFAULT 0,
  received    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (item_id, series_uid)
) WITHOUT ROWID;

-- Append-only audit log. item_id is NULL for job-level events (e.g. "created").
CREATE TABLE events (
  id         INTEGER PRIMARY KEY,
  item_id    INTEGER REFERENCES items (id) ON DELETE CASCADE,
  job_id     INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  at         INTEGER NOT NULL,
  from_state TEXT    NOT NULL DEFAULT '',
  to_state   TEXT    NOT NULL DEFAULT '',
  detail     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX events_item ON events (item_id);
CREATE INDEX events_job ON events (job_id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;

CREATE TABLE job_counts (
  job_id   INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  state    TEXT    NOT NULL,
  n        INTEGER NOT NULL DEFAULT 0,
  expected INTEGER NOT NULL DEFAULT 0,
  received INTEGER NOT NULL DEFAULT 0,
  pushed   INTEGER NOT NULL DEFAULT 0,
  verified INTEGER NOT NULL DEFAULT 0,
  bytes    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, state)
) WITHOUT ROWID;

CREATE TRIGGER items_count_update
AFTER UPDATE OF job_id, state, expected, received, pushed, verified, bytes ON items
BEGIN
  UPDATE job_counts SET
    n = n - 1, expected = expected - OLD.expected, received = received - OLD.received,
    pushed = pushed - OLD.pushed, verified = verified - OLD.verified, bytes = bytes - OLD.bytes
  WHERE job_id = OLD.job_id AND state = OLD.state;
  INSERT INTO job_counts (job_id, state, n, expected, received, pushed, verified, bytes)
  VALUES (NEW.job_id, NEW.state, 1, NEW.expected, NEW.received, NEW.pushed, NEW.verified,
          NEW.bytes)
  ON CONFLICT (job_id, state) DO UPDATE SET
    n = n + 1, expected = expected + excluded.expected, received = received + excluded.received,
    pushed = pushed + excluded.pushed, verified = verified + excluded.verified,
    bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER items_count_delete AFTER DELETE ON items
BEGIN
  UPDATE job_counts SET
    n = n - 1, expected = expected - OLD.expected, received = received - OLD.received,
    pushed = pushed - OLD.pushed, verified = verified - OLD.verified, bytes = bytes - OLD.bytes
  WHERE job_id = OLD.job_id AND state = OLD.state;
END;
)sql";

// Version 2: label consistency (Store::label_conflict) looks up one job's items by PacsPatientID
// and by subject label once per retrieved study; without these a 100k-row job scanned all its
// rows each time (~75 ms under the store lock, quadratic over the job).
constexpr std::string_view kV2 = R"sql(
CREATE INDEX items_patient ON items (job_id, pacs_patient_id) WHERE pacs_patient_id != '';
CREATE INDEX items_subject ON items (job_id, lower(subject)) WHERE pacs_patient_id != '';
)sql";

// Version 3: where a job's sessions go in XNAT ('' = not decided yet, 'archive', 'prearchive'),
// decided once at its first push from the project's prearchive setting (Store::set_destination).
constexpr std::string_view kV3 = R"sql(
ALTER TABLE jobs ADD COLUMN destination TEXT NOT NULL DEFAULT '';
)sql";

// Version 4 (the web door, lib/web): the XNAT user who submitted a job from the browser ('' for
// the CLI, whose submitter is the uid in submitted_by); one job's rows in CSV order a page at a
// time (Store::items_page; partial, so that only queries that say "row > 0" use it: a plain
// (job_id, row) index drew label_conflict's ORDER BY row LIMIT 1 off its two index searches);
// and the oldest queued or in-flight item and the newest verified one
// for /metrics (Store::stats) without a scan of every item.
constexpr std::string_view kV4 = R"sql(
ALTER TABLE jobs ADD COLUMN submitted_user TEXT NOT NULL DEFAULT '';
CREATE INDEX items_row ON items (job_id, row) WHERE row > 0;
CREATE INDEX items_state_age ON items (state, updated_at);
)sql";

// Version 5 (steps with leases, issue 23): the counters that decide what verification does next
// are item columns, written with the transition that changes them (pipeline/outcome.hpp), never
// kept in memory or read back from event text. verify_checks: checks since the last push that
// found XNAT without the whole study; repushes: pushes again after such checks since the item
// was last queued (both reset when the item goes back to queued). An item an older daemon
// already pushed again keeps that count: it is read once from the events that version wrote
// ("verification: ..." from verifying to validated, since the item was last queued).
constexpr std::string_view kV5 = R"sql(
ALTER TABLE items ADD COLUMN verify_checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE items ADD COLUMN repushes INTEGER NOT NULL DEFAULT 0;
UPDATE items SET repushes = (
  SELECT count(*) FROM events e
  WHERE e.item_id = items.id AND e.from_state = 'verifying' AND e.to_state = 'validated'
    AND e.detail LIKE 'verification: %'
    AND e.id > coalesce((SELECT max(q.id) FROM events q
                         WHERE q.item_id = items.id AND q.to_state = 'queued'), 0))
WHERE state NOT IN ('verified', 'cancelled');
)sql";

}  // namespace

const std::vector<std::string_view>& migrations() {
  static const std::vector<std::string_view> steps = {kV1, kV2, kV3, kV4, kV5};
  return steps;
}

int latest_schema_version() {
  return static_cast<int>(migrations().size());
}

int read_schema_version(Db& db) {
  auto st = db.prepare("SELECT coalesce(max(version), 0) FROM schema_version");
  return st.step() ? st.int32(0) : 0;
}

void migrate(Db& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS schema_version ("
      " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const auto& steps = migrations();
  for (int version = 1;; ++version) {
    Transaction tx(db);
    int current = read_schema_version(db);  // re-read under the write lock
    if (current > latest_schema_version()) {
      throw StoreError("store schema version " + std::to_string(current) +
                       " is newer than this program supports (" +
                       std::to_string(latest_schema_version()) + "); upgrade pacs2xnat");
    }
    if (version > latest_schema_version()) break;
    if (current >= version) continue;
    db.exec(steps[static_cast<std::size_t>(version - 1)]);
    db.prepare("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)")
        .bind(1, version)
        .bind(2, static_cast<std::int64_t>(std::time(nullptr)))
        .run();
    tx.commit();
  }
}

}  // namespace p2x::store::detail
