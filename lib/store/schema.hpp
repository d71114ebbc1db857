// store (private): the schema as an ordered list of migrations.
//
// Migration N (1-based) turns a version N-1 database into version N. migrate() applies each
// missing step in its own IMMEDIATE transaction and records it in schema_version; a database
// newer than the last known step is refused with a StoreError.
#pragma once

#include <string_view>
#include <vector>

#include "store/sqlite_util.hpp"

namespace p2x::store::detail {

const std::vector<std::string_view>& migrations();
int latest_schema_version();

// Current version recorded in schema_version (0 for a fresh database).
int read_schema_version(Db& db);
// Brings the database to latest_schema_version(); throws StoreError if it is newer.
void migrate(Db& db);

}  // namespace p2x::store::detail
