// Engine: the MQE's SQL surface over a store's catalog. Attaching installs
// the stable user views (models, versions, components, tensors, edges,
// chunks) and the MQE function families on the catalog connection. Queries
// are read-only unless SqlOptions::write is set: an authorizer refuses
// writes, ATTACH, load_extension and writable pragmas at prepare time, and a
// progress handler stops a query at its timeout.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "core/cancel.h"
#include "store/store.h"

struct sqlite3;

namespace hart::query {

using Value = std::variant<std::monostate, int64_t, double, std::string, std::vector<uint8_t>>;
std::string ValueToString(const Value& v);  // NULL -> "NULL", blobs as x'hex'

struct ResultSet {
  std::vector<std::string> columns;
  std::vector<std::vector<Value>> rows;
};

struct SqlOptions {
  bool write = false;
  double timeout_seconds = 0;  // 0: no limit
  // Checked by the progress handler every 1000 VM steps: a cancelled query
  // stops with Cancelled. May be null.
  const CancelToken* cancel = nullptr;
};

// Called once with the column names of each statement that returns rows,
// then once per row. Returning false from on_row stops the query.
struct RowSink {
  std::function<void(const std::vector<std::string>&)> on_columns;
  std::function<bool(const std::vector<Value>&)> on_row;
};

// Whose eyes the engine answers for (issue 14). Without may_read the engine
// sees everything (the local CLI, Admins). With it, the connection gets the
// SQL function hart_can_read(owner, tenant, visibility) answering may_read,
// every user view keeps only rows of readable models, every MQE function
// refuses (as "not found") components and versions of unreadable models, and
// the authorizer refuses any top-level read of a base table: only the views
// and the MQE's table functions are reachable. The rule itself is the
// caller's (app/access.h); the engine only applies it.
struct ReadScope {
  std::function<bool(const std::string& owner, const std::string& tenant,
                     const std::string& visibility)>
      may_read;
  bool restricted() const { return static_cast<bool>(may_read); }
};

// One Engine per thread (per request): Attach opens a catalog connection of
// its own (Store::OpenConnection) that carries the views, the MQE functions,
// the read-only authorizer and the timeout's progress handler; no other
// thread ever uses it. Many Engines share one Store.
class Engine {
 public:
  static absl::StatusOr<std::unique_ptr<Engine>> Attach(store::Store& store,
                                                        ReadScope scope = {});
  ~Engine();

  // Runs every statement of `sql` in order. Errors carry SQLite's message.
  absl::Status Execute(std::string_view sql, const SqlOptions& opts, const RowSink& sink);
  // Convenience: all rows of the last statement that returned columns.
  absl::StatusOr<ResultSet> Query(std::string_view sql, const SqlOptions& opts = {});

  store::Store& store() { return store_; }
  sqlite3* db() { return db_; }

 private:
  Engine(store::Store& store, store::Store::Connection conn);
  store::Store& store_;
  bool restricted_ = false;
  store::Store::Connection conn_;
  sqlite3* db_;
};

}  // namespace hart::query
