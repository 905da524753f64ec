// Thin RAII layer over the SQLite C API for the catalog: a prepared
// statement with typed binds/columns, and Status errors that carry SQLite's
// message and the statement. Not thread-safe; the Store serializes use.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace hart::store {

absl::Status SqlError(sqlite3* db, int rc, std::string_view what);

class Stmt {
 public:
  Stmt() = default;
  static absl::StatusOr<Stmt> Prepare(sqlite3* db, std::string_view sql);
  ~Stmt();
  Stmt(Stmt&& o) noexcept : db_(o.db_), st_(o.st_) { o.st_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;

  // Binds are 1-based, as in SQLite.
  Stmt& Bind(int i, int64_t v);
  Stmt& Bind(int i, std::string_view v);
  Stmt& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Stmt& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Stmt& BindBlob(int i, std::span<const uint8_t> v);
  Stmt& BindNull(int i);
  template <typename T>
  Stmt& Bind(int i, const std::optional<T>& v) {
    return v ? Bind(i, *v) : BindNull(i);
  }

  // True when a row is ready, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion (statements without rows).
  absl::Status Run();
  // Rewinds for another execution with new binds.
  void Reset();

  // Columns are 0-based, as in SQLite.
  int64_t Int(int c) const;
  double Double(int c) const;
  std::string Text(int c) const;
  std::span<const uint8_t> Blob(int c) const;
  bool IsNull(int c) const;

 private:
  Stmt(sqlite3* db, sqlite3_stmt* st) : db_(db), st_(st) {}
  sqlite3* db_ = nullptr;
  sqlite3_stmt* st_ = nullptr;
};

// Runs one or more statements without results.
absl::Status Exec(sqlite3* db, std::string_view sql);

// A write transaction begun with BEGIN IMMEDIATE (so the write lock is taken
// up front and two writers never deadlock on a lock upgrade), retried while
// another process holds the lock. Rolls back unless Commit() succeeded.
class WriteTxn {
 public:
  static absl::StatusOr<WriteTxn> Begin(sqlite3* db);
  WriteTxn(WriteTxn&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  WriteTxn& operator=(WriteTxn&&) = delete;
  ~WriteTxn();
  absl::Status Commit();

 private:
  explicit WriteTxn(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

}  // namespace hart::store
