// store (private): thin RAII wrappers over the SQLite C API used by the job store.
//
// Db owns one connection and caches prepared statements by SQL text; Stmt is a borrowed,
// reset-on-scope-exit handle to a cached statement; Transaction begins IMMEDIATE (or deferred
// for reads) and rolls back in its destructor unless committed. Every failure becomes a
// StoreError carrying SQLite's message and extended result code. Destructors never throw.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "store/store.hpp"

struct sqlite3_stmt;

namespace p2x::store::detail {

// Throws StoreError("<context>: <sqlite message>", extended code) if rc is not OK/ROW/DONE.
void check(sqlite3* db, int rc, std::string_view context);

// A cached prepared statement, borrowed for one use: binds by 1-based index, steps, reads
// columns; resets and clears its bindings when it goes out of scope.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  Stmt& bind(int i, std::uint32_t v) { return bind(i, static_cast<std::int64_t>(v)); }
  Stmt& bind(int i, bool v) { return bind(i, static_cast<std::int64_t>(v ? 1 : 0)); }
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind_null(int i);
  template <typename T>
  Stmt& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bind_null(i);
  }

  // Returns true if a row is available, false when done.
  bool step();
  // Steps to completion (for statements that return no rows).
  void run();
  // Resets so the statement can be stepped again with the same bindings cleared.
  void reset();

  std::int64_t int64(int col) const;
  int int32(int col) const { return static_cast<int>(int64(col)); }
  std::string text(int col) const;
  bool is_null(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Db {
 public:
  // Opens (creating if needed) the database file; throws StoreError on failure.
  explicit Db(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  sqlite3* handle() const { return db_; }
  // Runs one or more SQL statements without results.
  void exec(std::string_view sql);
  // As exec() but reports failure by its return value (for destructors).
  bool exec_noexcept(const char* sql) noexcept;
  // Returns the cached statement for `sql`, preparing it on first use.
  Stmt prepare(const char* sql);
  std::int64_t changes() const;

 private:
  struct Finalizer {
    void operator()(sqlite3_stmt* s) const noexcept;
  };
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<sqlite3_stmt, Finalizer>> cache_;
};

// BEGIN IMMEDIATE (write) or BEGIN (read) on construction; ROLLBACK in the destructor unless
// commit() succeeded.
class Transaction {
 public:
  enum class Kind { Immediate, Deferred };
  explicit Transaction(Db& db, Kind kind = Kind::Immediate);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace p2x::store::detail
