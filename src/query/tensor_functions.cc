// Tensor functions, computed from a tensor's stored bytes:
//   tensor_stats(tensor_id)            JSON text: min, max, mean, std, l2,
//     abs_max, zero_fraction, nan_count, inf_count, count, dtype; streamed in
//     blocks of decoded floats and cached in the catalog by content sha256.
//   tensor_values(tensor_id, start, count)  JSON array of floats
//   tensor_row(tensor_id, row)         JSON array of row `row` (outermost
//     index); for block types only that row's blocks are decoded.
// NaN and Inf appear as null in the JSON arrays (JSON has no spelling).
//
// The stats cache is written through a second connection of our own: the
// user's query may be read-only or inside a read transaction on the catalog
// connection, and a cache entry must not depend on either. A busy catalog
// just means no cache entry this time.
#include <sqlite3.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/decode.h"
#include "core/shape.h"
#include "core/mapped_file.h"
#include "core/status.h"
#include "fmt/format.h"
#include "nlohmann/json.hpp"
#include "query/functions.h"
#include "query/tensor_stats.h"
#include "store/db.h"

namespace hart::query {
namespace {

// Elements decoded per step: a multiple of every block size (256 for the
// K-quants), 64 KiB of floats, small enough to stay in L2.
constexpr uint64_t kStep = 16384;
constexpr uint64_t kMaxValues = uint64_t{1} << 22;

struct State {
  store::Store* store = nullptr;
  sqlite3* cache_db = nullptr;  // opened on first cache write
  bool cache_failed = false;
  ~State() {
    if (cache_db) sqlite3_close_v2(cache_db);
  }
};

struct TensorRef {
  int64_t version_id = 0;
  std::string name;
  DType dtype = DType::kF32;
  Shape shape;
  uint64_t elements = 0;
  std::vector<uint8_t> sha256;
};

absl::StatusOr<TensorRef> LookUp(sqlite3* db, sqlite3_value* arg, const char* fn) {
  if (sqlite3_value_type(arg) != SQLITE_INTEGER)
    return absl::InvalidArgumentError(fmt::format("{}: expected a tensor id (integer)", fn));
  int64_t id = sqlite3_value_int64(arg);
  ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(db,
      "SELECT version_id, name, kind, dtype, shape, sha256 FROM main.component WHERE id = ?"));
  q.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  // A tensor of a model the caller may not read does not exist for it (scope.cc).
  if (row) {
    ASSIGN_OR_RETURN(row, ComponentReadable(db, id));
  }
  if (!row) return absl::NotFoundError(fmt::format("{}: no tensor with id {}", fn, id));
  if (q.Text(2) != "tensor")
    return absl::InvalidArgumentError(
        fmt::format("{}: component {} is a {}, not a tensor", fn, id, q.Text(2)));
  TensorRef t;
  t.version_id = q.Int(0);
  t.name = q.Text(1);
  std::string dtype = q.Text(3);
  auto d = DTypeFromName(dtype);
  if (!d.ok()) return absl::InvalidArgumentError(fmt::format("{}: unknown dtype '{}'", fn, dtype));
  t.dtype = *d;
  if (!CanDecode(t.dtype))
    return absl::UnimplementedError(
        fmt::format("{}: dtype {} is not supported (tensor {} '{}')", fn, dtype, id, t.name));
  auto shape = nlohmann::json::parse(q.Text(4), nullptr, /*allow_exceptions=*/false);
  if (!shape.is_array())
    return absl::DataLossError(fmt::format("{}: tensor {}: bad shape '{}'", fn, id, q.Text(4)));
  for (const auto& dim : shape) {
    if (!dim.is_number_unsigned())
      return absl::DataLossError(fmt::format("{}: tensor {}: bad shape '{}'", fn, id, q.Text(4)));
    t.shape.push_back(dim.get<uint64_t>());
  }
  ASSIGN_OR_RETURN(t.elements, NumElements(t.shape));
  auto blob = q.Blob(5);
  t.sha256.assign(blob.begin(), blob.end());
  return t;
}

absl::StatusOr<store::TensorBytes> Bytes(State* st, const TensorRef& t) {
  ASSIGN_OR_RETURN(store::TensorBytes b, st->store->ReadTensor(t.version_id, t.name));
  ASSIGN_OR_RETURN(uint64_t need, ByteSize(t.dtype, t.elements));
  if (b.bytes().size() != need)
    return absl::DataLossError(fmt::format("tensor '{}': {} bytes stored, {} {} elements need {}",
                                           t.name, b.bytes().size(), t.elements,
                                           Name(t.dtype), need));
  return b;
}

void Error(sqlite3_context* ctx, const absl::Status& s) {
  sqlite3_result_error(ctx, std::string(Msg(s)).c_str(), -1);
}

void Text(sqlite3_context* ctx, const std::string& s) {
  sqlite3_result_text(ctx, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
}

// Decodes elements [first, first + count) and appends them as JSON numbers.
absl::StatusOr<std::string> ValuesJson(const TensorRef& t, std::span<const uint8_t> bytes,
                                       uint64_t first, uint64_t count) {
  const uint64_t bs = Info(t.dtype).block_size, ts = Info(t.dtype).type_size;
  std::string out = "[";
  std::vector<float> buf;
  uint64_t pos = first, end = first + count;
  while (pos < end) {
    // Whole blocks covering [pos, min(end, pos + kStep)).
    uint64_t b0 = pos / bs, b1 = (std::min(end, pos + kStep) + bs - 1) / bs;
    buf.resize((b1 - b0) * bs);
    RETURN_IF_ERROR(DecodeToF32(t.dtype, bytes.subspan(b0 * ts, (b1 - b0) * ts), buf));
    uint64_t stop = std::min(end, b1 * bs);
    for (uint64_t i = pos; i < stop; ++i) {
      float x = buf[i - b0 * bs];
      if (out.size() > 1) out += ',';
      if (std::isfinite(x)) fmt::format_to(std::back_inserter(out), "{}", x);
      else out += "null";
    }
    pos = stop;
  }
  out += ']';
  return out;
}

void CacheStats(State* st, std::span<const uint8_t> sha, const std::string& json) {
  if (sha.empty() || st->cache_failed) return;
  if (!st->cache_db) {
    std::string path = st->store->catalog_path();
    if (sqlite3_open_v2(path.c_str(), &st->cache_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
      st->cache_failed = true;
      return;
    }
    sqlite3_busy_timeout(st->cache_db, 50);
  }
  sqlite3_stmt* ins = nullptr;
  if (sqlite3_prepare_v2(st->cache_db, "INSERT OR IGNORE INTO tensor_stats(sha256, stats) VALUES(?, ?)",
                         -1, &ins, nullptr) != SQLITE_OK)
    return;  // e.g. a catalog not yet migrated by this build: no cache
  sqlite3_bind_blob(ins, 1, sha.data(), static_cast<int>(sha.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(ins, 2, json.data(), static_cast<int>(json.size()), SQLITE_TRANSIENT);
  sqlite3_step(ins);  // SQLITE_BUSY and friends: the next call will try again
  sqlite3_finalize(ins);
}

absl::StatusOr<std::string> Stats(State* st, sqlite3* db, sqlite3_value* arg) {
  ASSIGN_OR_RETURN(TensorRef t, LookUp(db, arg, "tensor_stats"));
  if (!t.sha256.empty()) {
    ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(db,
        "SELECT stats FROM main.tensor_stats WHERE sha256 = ?"));
    q.BindBlob(1, t.sha256);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) return q.Text(0);
  }
  ASSIGN_OR_RETURN(store::TensorBytes tb, Bytes(st, t));
  if (tb.zero_copy()) PrefaultRange(tb.bytes());  // every byte is read: map it in one call
  const uint64_t bs = Info(t.dtype).block_size, ts = Info(t.dtype).type_size;
  StatsAccumulator acc;
  std::vector<float> buf(kStep);
  for (uint64_t pos = 0; pos < t.elements; pos += kStep) {
    uint64_t n = std::min(kStep, t.elements - pos);
    std::span<float> out(buf.data(), n);
    RETURN_IF_ERROR(DecodeToF32(t.dtype, tb.bytes().subspan(pos / bs * ts, n / bs * ts), out));
    acc.Add(out);
  }
  std::string json = acc.ToJson(Name(t.dtype));
  CacheStats(st, t.sha256, json);
  return json;
}

void TensorStatsFn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  auto* st = static_cast<State*>(sqlite3_user_data(ctx));
  auto r = Stats(st, sqlite3_context_db_handle(ctx), argv[0]);
  if (!r.ok()) return Error(ctx, r.status());
  Text(ctx, *r);
}

void TensorValuesFn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  auto* st = static_cast<State*>(sqlite3_user_data(ctx));
  auto t = LookUp(sqlite3_context_db_handle(ctx), argv[0], "tensor_values");
  if (!t.ok()) return Error(ctx, t.status());
  int64_t start = sqlite3_value_int64(argv[1]), count = sqlite3_value_int64(argv[2]);
  if (start < 0 || count < 0)
    return Error(ctx, absl::InvalidArgumentError("tensor_values: start and count must be >= 0"));
  if (static_cast<uint64_t>(count) > kMaxValues)
    return Error(ctx, absl::InvalidArgumentError(fmt::format(
        "tensor_values: count {} exceeds {}; read it in pieces", count, kMaxValues)));
  uint64_t first = std::min<uint64_t>(static_cast<uint64_t>(start), t->elements);
  uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(count), t->elements - first);
  auto tb = Bytes(st, *t);
  if (!tb.ok()) return Error(ctx, tb.status());
  auto json = ValuesJson(*t, tb->bytes(), first, n);
  if (!json.ok()) return Error(ctx, json.status());
  Text(ctx, *json);
}

void TensorRowFn(sqlite3_context* ctx, int, sqlite3_value** argv) {
  auto* st = static_cast<State*>(sqlite3_user_data(ctx));
  auto t = LookUp(sqlite3_context_db_handle(ctx), argv[0], "tensor_row");
  if (!t.ok()) return Error(ctx, t.status());
  uint64_t rows = t->shape.empty() ? 1 : t->shape[0];
  int64_t row = sqlite3_value_int64(argv[1]);
  if (row < 0 || static_cast<uint64_t>(row) >= rows)
    return Error(ctx, absl::OutOfRangeError(fmt::format(
        "tensor_row: row {} out of range: '{}' has {} rows", row, t->name, rows)));
  uint64_t per_row = rows ? t->elements / rows : 0;
  if (per_row % Info(t->dtype).block_size != 0)
    return Error(ctx, absl::InvalidArgumentError(fmt::format(
        "tensor_row: rows of '{}' ({} elements) are not whole {} blocks", t->name, per_row,
        Name(t->dtype))));
  if (per_row > kMaxValues)
    return Error(ctx, absl::InvalidArgumentError(fmt::format(
        "tensor_row: a row of {} values exceeds {}; use tensor_values", per_row, kMaxValues)));
  auto tb = Bytes(st, *t);
  if (!tb.ok()) return Error(ctx, tb.status());
  // ValuesJson decodes only the blocks covering the row.
  auto json = ValuesJson(*t, tb->bytes(), static_cast<uint64_t>(row) * per_row, per_row);
  if (!json.ok()) return Error(ctx, json.status());
  Text(ctx, *json);
}

void DestroyState(void* p) { delete static_cast<State*>(p); }

}  // namespace

absl::Status RegisterTensorFunctions(sqlite3* db, store::Store& store) {
  auto* st = new State{};
  st->store = &store;
  // tensor_stats owns the state (freed with it); the others share it, and
  // the connection drops all three together.
  int rc = sqlite3_create_function_v2(db, "tensor_stats", 1, SQLITE_UTF8, st, TensorStatsFn,
                                      nullptr, nullptr, DestroyState);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function_v2(db, "tensor_values", 3, SQLITE_UTF8, st, TensorValuesFn,
                                    nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function_v2(db, "tensor_row", 2, SQLITE_UTF8, st, TensorRowFn, nullptr,
                                    nullptr, nullptr);
  if (rc != SQLITE_OK) return store::SqlError(db, rc, "register tensor functions");
  return absl::OkStatus();
}

}  // namespace hart::query
