// store (private): RAII wrappers over the SQLite C API (see sqlite_util.hpp).
#include "store/sqlite_util.hpp"

#include <sqlite3.h>

namespace p2x::store::detail {

void check(sqlite3* db, int rc, std::string_view context) {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
  std::string msg(context);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int code = db ? sqlite3_extended_errcode(db) : rc;
  if (code == SQLITE_OK) code = rc;
  msg += " (sqlite code " + std::to_string(code) + ")";
  throw StoreError(msg, code);
}

Stmt::~Stmt() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Stmt& Stmt::bind(int i, std::int64_t v) {
  check(db_, sqlite3_bind_int64(stmt_, i, v), "bind");
  return *this;
}

Stmt& Stmt::bind(int i, std::string_view v) {
  // A default string_view has a null data(), which SQLite would bind as NULL, not ''.
  const char* data = v.data() ? v.data() : "";
  check(db_, sqlite3_bind_text64(stmt_, i, data, v.size(), SQLITE_TRANSIENT, SQLITE_UTF8), "bind");
  return *this;
}

Stmt& Stmt::bind_null(int i) {
  check(db_, sqlite3_bind_null(stmt_, i), "bind");
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  // The statement's error is reported by reset in legacy mode; errmsg holds it in v2 mode.
  std::string sql = sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "";
  if (sql.size() > 60) sql = sql.substr(0, 60) + "...";
  check(db_, rc, "executing '" + sql + "'");
  return false;
}

void Stmt::run() {
  while (step()) {
  }
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
}

std::int64_t Stmt::int64(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

std::string Stmt::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
}

bool Stmt::is_null(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

void Db::Finalizer::operator()(sqlite3_stmt* s) const noexcept {
  sqlite3_finalize(s);
}

Db::Db(const std::string& path) {
  int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = "cannot open store '" + path + "': ";
    msg += db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    int code = db_ ? sqlite3_extended_errcode(db_) : rc;
    sqlite3_close(db_);  // a handle is returned even on most failures
    db_ = nullptr;
    throw StoreError(msg, code);
  }
  sqlite3_extended_result_codes(db_, 1);
}

Db::~Db() {
  cache_.clear();  // finalise every statement before closing
  sqlite3_close(db_);
}

void Db::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    int code = sqlite3_extended_errcode(db_);
    throw StoreError("sql: " + msg + " (sqlite code " + std::to_string(code) + ")", code);
  }
}

bool Db::exec_noexcept(const char* sql) noexcept {
  return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

Stmt Db::prepare(const char* sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    std::unique_ptr<sqlite3_stmt, Finalizer> owned(raw);
    check(db_, rc, std::string("preparing '") + sql + "'");
    it = cache_.emplace(sql, std::move(owned)).first;
  }
  return Stmt(db_, it->second.get());
}

std::int64_t Db::changes() const {
  return sqlite3_changes64(db_);
}

Transaction::Transaction(Db& db, Kind kind) : db_(db) {
  db_.exec(kind == Kind::Immediate ? "BEGIN IMMEDIATE" : "BEGIN");
}

Transaction::~Transaction() {
  if (done_) return;
  // No throw from a destructor: if the rollback fails the connection is left to autocommit
  // recovery (SQLite rolls back an open transaction when the next BEGIN fails or on close).
  db_.exec_noexcept("ROLLBACK");
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace p2x::store::detail
