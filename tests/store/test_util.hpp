// Test helpers for the store: a raw SQLite connection, job builders.
#pragma once

#include <cstdint>
#include <string>

#include "store/store.hpp"
#include "support/temp_dir.hpp"

namespace p2x::store::test {

using p2x::test::TempDir;

// A second, independent connection to a store file, for setting up and checking state.
class RawDb {
 public:
  explicit RawDb(const std::string& path);
  ~RawDb();
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  void exec(const std::string& sql);
  std::int64_t query_int(const std::string& sql);
  std::string query_text(const std::string& sql);

 private:
  sqlite3* db_ = nullptr;
};

// A job on `pacs` with `n` accession items (rows 1..n, lines 2..n+1).
NewJob make_job(int n, const std::string& pacs = "PACS1", const std::string& project = "PRJ");

// Drives a fresh (queued) item to `target` through legal transitions.
void drive_to(Store& store, std::int64_t item_id, ItemState target);

}  // namespace p2x::store::test
