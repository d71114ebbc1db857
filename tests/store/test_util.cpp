#include "test_util.hpp"

#include <sqlite3.h>

#include <stdexcept>
#include <vector>

namespace p2x::store::test {

RawDb::RawDb(const std::string& path) {
  if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
    throw std::runtime_error("raw open failed: " + path);
  }
  sqlite3_busy_timeout(db_, 5000);
}

RawDb::~RawDb() {
  sqlite3_close(db_);
}

void RawDb::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw std::runtime_error("raw exec failed: " + msg + " in " + sql);
  }
}

std::int64_t RawDb::query_int(const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("raw prepare failed: ") + sqlite3_errmsg(db_));
  }
  std::int64_t v = -1;
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

std::string RawDb::query_text(const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    throw std::runtime_error(std::string("raw prepare failed: ") + sqlite3_errmsg(db_));
  }
  std::string v;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
    v = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return v;
}

NewJob make_job(int n, const std::string& pacs, const std::string& project) {
  NewJob job;
  job.project = project;
  job.pacs = pacs;
  job.csv_name = "list.csv";
  job.csv_sha256 = std::string(64, 'a');
  job.submitted_by = 1000;
  job.items.reserve(static_cast<std::size_t>(n));
  for (int i = 1; i <= n; ++i) {
    NewItem it;
    it.row = i;
    it.line = i + 1;
    it.kind = p2x::domain::RowKind::Accession;
    it.accession = "ACC" + std::to_string(i);
    it.subject = "SUBJ" + std::to_string(i);
    it.session = "SESS" + std::to_string(i);
    job.items.push_back(std::move(it));
  }
  return job;
}

void drive_to(Store& store, std::int64_t item_id, ItemState target) {
  using S = ItemState;
  static const std::vector<S> chain = {S::Queued,     S::Querying,  S::Retrieving, S::Retrieved,
                                       S::Validating, S::Validated, S::Pushing,    S::Pushed,
                                       S::Verifying,  S::Verified};
  if (target == S::Failed || target == S::Cancelled) {
    if (!store.transition(item_id, S::Queued, target, "test")) {
      throw std::runtime_error("drive_to failed");
    }
    return;
  }
  for (std::size_t i = 0; chain[i] != target; ++i) {
    if (!store.transition(item_id, chain[i], chain[i + 1], "test")) {
      throw std::runtime_error("drive_to failed");
    }
  }
}

}  // namespace p2x::store::test
