// Catalog: opening catalog.sqlite with the store's pragmas and bringing its
// schema forward through the versioned migrations in catalog.cc. A migration
// is never edited once released; a schema change is a new step appended to
// the list, so a catalog written by any older build opens in this one.
#pragma once

#include <span>
#include <string>

#include "absl/status/statusor.h"

struct sqlite3;

namespace hart::store {

struct Migration {
  int version;
  const char* what;
  const char* sql;
};

std::span<const Migration> Migrations();
int LatestSchemaVersion();

// Opens (creating when `create`) the catalog at `path`, sets WAL, foreign
// keys, busy timeout and synchronous, and applies pending migrations. The
// caller owns the handle (sqlite3_close_v2). A non-empty `vfs` names the
// SQLite VFS to use (the Env shim of catalog_vfs.h).
absl::StatusOr<sqlite3*> OpenCatalog(const std::string& path, bool create,
                                     const std::string& vfs = "");

// Applies the migrations newer than the catalog's, each in its own
// transaction. Safe when several processes open an old catalog at once.
absl::Status Migrate(sqlite3* db);
absl::StatusOr<int> SchemaVersion(sqlite3* db);

}  // namespace hart::store
