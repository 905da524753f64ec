// The catalog's SQLite VFS when a Store runs on an Env other than the real
// one: a shim over SQLite's default VFS that asks Env::LibraryIo before each
// write, sync, truncate and delete of a catalog file (database, WAL,
// journal) and fails the call when the Env says so (SQLITE_FULL for
// ResourceExhausted, SQLITE_IOERR_* otherwise). Reads, locks and the WAL
// index (shared memory) pass straight through.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "core/env.h"

namespace hart::store {

// The name of a VFS registered for `env` (once per Env, never unregistered),
// or "" for an Env that does not intercept library I/O: SQLite's default.
absl::StatusOr<std::string> CatalogVfsFor(Env* env);

}  // namespace hart::store
