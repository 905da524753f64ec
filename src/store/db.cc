#include "store/db.h"

#include <sqlite3.h>

#include <chrono>
#include <thread>

#include "core/status.h"
#include "fmt/format.h"

namespace hart::store {

absl::Status SqlError(sqlite3* db, int rc, std::string_view what) {
  std::string msg = fmt::format("catalog: {}: {}", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return absl::UnavailableError(msg);
    case SQLITE_CONSTRAINT: return absl::AlreadyExistsError(msg);
    case SQLITE_FULL: return absl::ResourceExhaustedError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return absl::DataLossError(msg);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY: return absl::PermissionDeniedError(msg);
    default: return absl::InternalError(msg);
  }
}

absl::StatusOr<Stmt> Stmt::Prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &st, nullptr);
  if (rc != SQLITE_OK) return SqlError(db, rc, fmt::format("prepare '{}'", sql));
  return Stmt(db, st);
}

Stmt::~Stmt() {
  if (st_) sqlite3_finalize(st_);
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    if (st_) sqlite3_finalize(st_);
    db_ = o.db_;
    st_ = o.st_;
    o.st_ = nullptr;
  }
  return *this;
}

Stmt& Stmt::Bind(int i, int64_t v) {
  sqlite3_bind_int64(st_, i, v);
  return *this;
}
Stmt& Stmt::Bind(int i, std::string_view v) {
  sqlite3_bind_text64(st_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}
Stmt& Stmt::BindBlob(int i, std::span<const uint8_t> v) {
  sqlite3_bind_blob64(st_, i, v.data(), v.size(), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::BindNull(int i) {
  sqlite3_bind_null(st_, i);
  return *this;
}

absl::StatusOr<bool> Stmt::Step() {
  int rc = sqlite3_step(st_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqlError(db_, rc, sqlite3_sql(st_));
}

absl::Status Stmt::Run() {
  for (;;) {
    ASSIGN_OR_RETURN(bool row, Step());
    if (!row) break;
  }
  Reset();
  return absl::OkStatus();
}

void Stmt::Reset() {
  sqlite3_reset(st_);
  sqlite3_clear_bindings(st_);
}

int64_t Stmt::Int(int c) const { return sqlite3_column_int64(st_, c); }
double Stmt::Double(int c) const { return sqlite3_column_double(st_, c); }
std::string Stmt::Text(int c) const {
  const unsigned char* p = sqlite3_column_text(st_, c);
  int n = sqlite3_column_bytes(st_, c);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n)) : std::string();
}
std::span<const uint8_t> Stmt::Blob(int c) const {
  const void* p = sqlite3_column_blob(st_, c);
  int n = sqlite3_column_bytes(st_, c);
  return {static_cast<const uint8_t*>(p), static_cast<size_t>(n)};
}
bool Stmt::IsNull(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }

absl::Status Exec(sqlite3* db, std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    absl::Status st = SqlError(nullptr, rc, "");
    return absl::Status(st.code(), fmt::format("catalog: {} (in '{}')", msg, s.substr(0, 120)));
  }
  return absl::OkStatus();
}

absl::StatusOr<WriteTxn> WriteTxn::Begin(sqlite3* db) {
  // busy_timeout already waits inside BEGIN IMMEDIATE; the loop covers the
  // cases where SQLite returns BUSY without calling the handler.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return WriteTxn(db);
    if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() > deadline)
      return SqlError(db, rc, "BEGIN IMMEDIATE");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

WriteTxn::~WriteTxn() {
  if (db_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

absl::Status WriteTxn::Commit() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) {
      db_ = nullptr;
      return absl::OkStatus();
    }
    if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() > deadline)
      return SqlError(db_, rc, "COMMIT");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace hart::store
