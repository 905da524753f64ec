// The caller's read scope on an MQE connection (issue 14): one SQL function,
// hart_can_read, that the views and the MQE functions filter with. The rule
// comes from the caller (app/access.h MayRead); nothing here decides who may
// read what.
#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "core/status.h"
#include "fmt/format.h"
#include "query/functions.h"
#include "store/db.h"

namespace hart::query {
namespace {

std::string TextArg(sqlite3_value* v) {
  const unsigned char* t = sqlite3_value_text(v);
  return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
}

void CanRead(sqlite3_context* ctx, int, sqlite3_value** argv) {
  auto* scope = static_cast<ReadScope*>(sqlite3_user_data(ctx));
  if (!scope || !scope->restricted()) return sqlite3_result_int(ctx, 1);
  sqlite3_result_int(ctx, scope->may_read(TextArg(argv[0]), TextArg(argv[1]), TextArg(argv[2])) ? 1 : 0);
}

void DestroyScope(void* p) { delete static_cast<ReadScope*>(p); }

absl::StatusOr<bool> One(sqlite3* db, const char* sql, auto bind) {
  ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(db, sql));
  bind(q);
  ASSIGN_OR_RETURN(bool row, q.Step());
  return row && q.Int(0) != 0;
}

}  // namespace

absl::Status RegisterAccessFunction(sqlite3* db, ReadScope scope) {
  auto* owned = scope.restricted() ? new ReadScope(std::move(scope)) : nullptr;
  int rc = sqlite3_create_function_v2(db, "hart_can_read", 3, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                      owned, CanRead, nullptr, nullptr, owned ? DestroyScope : nullptr);
  if (rc != SQLITE_OK) return store::SqlError(db, rc, "register hart_can_read");
  rc = sqlite3_create_function_v2(db, "hart_scope_restricted", 0, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                  reinterpret_cast<void*>(static_cast<intptr_t>(owned ? 1 : 0)),
                                  [](sqlite3_context* ctx, int, sqlite3_value**) {
                                    sqlite3_result_int(ctx, static_cast<int>(reinterpret_cast<intptr_t>(
                                                                sqlite3_user_data(ctx))));
                                  },
                                  nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return store::SqlError(db, rc, "register hart_scope_restricted");
  return absl::OkStatus();
}

absl::StatusOr<NodeFilter> ReadableComponentFilter(sqlite3* db) {
  ASSIGN_OR_RETURN(bool restricted, One(db, "SELECT hart_scope_restricted()", [](store::Stmt&) {}));
  if (!restricted) return NodeFilter();
  // One catalog read per component, one rule check per version.
  auto cache = std::make_shared<std::unordered_map<int64_t, bool>>();
  return NodeFilter([db, cache](int64_t id) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(db, "SELECT version_id FROM main.component WHERE id = ?"));
    q.Bind(1, id);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) return false;
    int64_t version = q.Int(0);
    auto it = cache->find(version);
    if (it != cache->end()) return it->second;
    ASSIGN_OR_RETURN(bool ok, VersionReadable(db, version));
    cache->emplace(version, ok);
    return ok;
  });
}

absl::StatusOr<bool> ComponentReadable(sqlite3* db, int64_t id) {
  return One(db,
             "SELECT hart_can_read(m.owner, m.tenant, m.visibility) FROM main.component c "
             "JOIN main.version v ON v.id = c.version_id JOIN main.model m ON m.id = v.model_id "
             "WHERE c.id = ?",
             [&](store::Stmt& q) { q.Bind(1, id); });
}

absl::StatusOr<bool> VersionReadable(sqlite3* db, int64_t id) {
  return One(db,
             "SELECT hart_can_read(m.owner, m.tenant, m.visibility) FROM main.version v "
             "JOIN main.model m ON m.id = v.model_id WHERE v.id = ?",
             [&](store::Stmt& q) { q.Bind(1, id); });
}

absl::StatusOr<bool> RefReadable(sqlite3* db, const std::string& ref) {
  size_t at = ref.find('@');
  if (at == std::string::npos) at = ref.find(':');
  std::string model = ref.substr(0, at);
  return One(db,
             "SELECT hart_can_read(owner, tenant, visibility) FROM main.model WHERE name = ?",
             [&](store::Stmt& q) { q.Bind(1, model); });
}

}  // namespace hart::query
