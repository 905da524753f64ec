// The catalog side of sign-in (issue 14): API keys by hash, and each
// model's owner, tenant and visibility. The rule that uses them lives in
// app/access.h; this file only stores and reads, and audits each change.
#include <sqlite3.h>

#include <ctime>

#include "core/status.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "store/db.h"
#include "store/store.h"
#include "store/store_impl.h"

namespace hart::store {

namespace {

// Audit only (no outbox event: key names and visibility changes are not
// for every reader of the event stream).
absl::Status Audit(sqlite3* db, std::string_view action, const nlohmann::json& detail, std::string_view actor) {
  ASSIGN_OR_RETURN(Stmt a, Stmt::Prepare(db, "INSERT INTO audit(ts, actor, action, detail) VALUES(?, ?, ?, ?)"));
  std::string who = actor.empty() ? std::string("local") : std::string(actor);
  return a.Bind(1, static_cast<int64_t>(std::time(nullptr)) * 1000)
      .Bind(2, who)
      .Bind(3, action)
      .Bind(4, detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
      .Run();
}

ApiKeyRow ReadKey(const Stmt& q) {
  ApiKeyRow r;
  r.name = q.Text(0);
  r.owner = q.Text(1);
  r.role = q.Text(2);
  r.created_at = q.Int(3);
  r.created_by = q.Text(4);
  if (!q.IsNull(5)) r.revoked_at = q.Int(5);
  return r;
}

constexpr const char* kKeyCols = "SELECT name, owner, role, created_at, created_by, revoked_at FROM api_key ";

}  // namespace

absl::Status Store::CreateApiKey(const ApiKeyRow& key, std::string_view hash, std::string_view actor) {
  if (key.name.empty() || key.name.size() > 100)
    return absl::InvalidArgumentError("API key name: 1 to 100 characters");
  if (key.owner.empty()) return absl::InvalidArgumentError("API key owner: empty");
  if (key.role != "Reader" && key.role != "Contributor" && key.role != "Admin")
    return absl::InvalidArgumentError(fmt::format("API key role '{}': expected Reader, Contributor or Admin", key.role));
  std::lock_guard<std::recursive_mutex> l(impl_->db_mu);
  sqlite3* db = impl_->db;
  ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(db));
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(db, "SELECT 1 FROM api_key WHERE name = ? AND revoked_at IS NULL"));
  q.Bind(1, key.name);
  ASSIGN_OR_RETURN(bool exists, q.Step());
  if (exists) return absl::AlreadyExistsError(fmt::format("an API key named '{}' exists; revoke it first", key.name));
  ASSIGN_OR_RETURN(Stmt ins, Stmt::Prepare(db, "INSERT INTO api_key(name, hash, owner, role, created_at, created_by) "
                                               "VALUES(?, ?, ?, ?, ?, ?)"));
  RETURN_IF_ERROR(ins.Bind(1, key.name)
                      .Bind(2, hash)
                      .Bind(3, key.owner)
                      .Bind(4, key.role)
                      .Bind(5, static_cast<int64_t>(std::time(nullptr)))
                      .Bind(6, actor.empty() ? std::string("local") : std::string(actor))
                      .Run());
  RETURN_IF_ERROR(Audit(db, "apikey.create", {{"name", key.name}, {"owner", key.owner}, {"role", key.role}}, actor));
  return txn.Commit();
}

absl::StatusOr<std::vector<ApiKeyRow>> Store::ListApiKeys() {
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(), std::string(kKeyCols) + "ORDER BY name, created_at"));
  std::vector<ApiKeyRow> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out.push_back(ReadKey(q));
  }
  return out;
}

absl::StatusOr<ApiKeyRow> Store::FindApiKey(std::string_view hash) {
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(), std::string(kKeyCols) + "WHERE hash = ? AND revoked_at IS NULL"));
  q.Bind(1, hash);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::NotFoundError("no such API key");
  return ReadKey(q);
}

absl::Status Store::RevokeApiKey(std::string_view name, std::string_view actor) {
  std::lock_guard<std::recursive_mutex> l(impl_->db_mu);
  sqlite3* db = impl_->db;
  ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(db));
  ASSIGN_OR_RETURN(Stmt u, Stmt::Prepare(db, "UPDATE api_key SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL"));
  RETURN_IF_ERROR(u.Bind(1, static_cast<int64_t>(std::time(nullptr))).Bind(2, name).Run());
  if (sqlite3_changes(db) == 0) return absl::NotFoundError(fmt::format("no live API key named '{}'", name));
  RETURN_IF_ERROR(Audit(db, "apikey.revoke", {{"name", std::string(name)}}, actor));
  return txn.Commit();
}

absl::StatusOr<ModelAccess> Store::GetModelAccess(std::string_view model) {
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(), "SELECT owner, tenant, visibility FROM model WHERE name = ?"));
  q.Bind(1, model);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::NotFoundError(fmt::format("no model '{}' in the store", model));
  return ModelAccess{q.Text(0), q.Text(1), q.Text(2)};
}

absl::StatusOr<std::map<std::string, ModelAccess>> Store::ListModelAccess() {
  ASSIGN_OR_RETURN(ReadConn rc, impl_->Reader());
  ASSIGN_OR_RETURN(Stmt q, Stmt::Prepare(rc.db(), "SELECT name, owner, tenant, visibility FROM model"));
  std::map<std::string, ModelAccess> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    out[q.Text(0)] = ModelAccess{q.Text(1), q.Text(2), q.Text(3)};
  }
  return out;
}

absl::Status Store::SetModelAccess(std::string_view model, const ModelAccess& a, std::string_view actor) {
  if (a.visibility != "private" && a.visibility != "tenant" && a.visibility != "public")
    return absl::InvalidArgumentError(fmt::format("visibility '{}': expected private, tenant or public", a.visibility));
  if (a.owner.empty()) return absl::InvalidArgumentError("owner: empty");
  std::lock_guard<std::recursive_mutex> l(impl_->db_mu);
  sqlite3* db = impl_->db;
  ASSIGN_OR_RETURN(WriteTxn txn, WriteTxn::Begin(db));
  ASSIGN_OR_RETURN(Stmt u, Stmt::Prepare(db, "UPDATE model SET owner = ?, tenant = ?, visibility = ? WHERE name = ?"));
  RETURN_IF_ERROR(u.Bind(1, a.owner).Bind(2, a.tenant).Bind(3, a.visibility).Bind(4, model).Run());
  if (sqlite3_changes(db) == 0) return absl::NotFoundError(fmt::format("no model '{}' in the store", model));
  RETURN_IF_ERROR(Audit(db, "model.access",
                        {{"model", std::string(model)}, {"owner", a.owner}, {"tenant", a.tenant}, {"visibility", a.visibility}},
                        actor));
  return txn.Commit();
}

}  // namespace hart::store
