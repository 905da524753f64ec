// The app layer's use cases against a real store: their JSON is the CLI's,
// requests read from JSON are strict, errors map to 4xx, names are data
// (no SQL injection, no path traversal), uploads ingest all or nothing,
// byte ranges of exported files are exact.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <map>
#include <set>
#include <fstream>
#include <random>

#include "app/catalog.h"
#include "app/errors.h"
#include "app/events.h"
#include "app/json_io.h"
#include "app/query.h"
#include "app/transfer.h"
#include "tests/app/app_test_util.h"

namespace hart::app {
namespace {

using nlohmann::json;
using testing::AppTest;
using testing::Fixture;
namespace fs = std::filesystem;

std::vector<uint8_t> FileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

int64_t CountRows(sqlite3* db, const std::string& table) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, ("SELECT COUNT(*) FROM " + table).c_str(), -1, &st, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_step(st), SQLITE_ROW);
  int64_t n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return n;
}

// Row counts of the tables a write touches: equal before and after = unchanged.
std::vector<int64_t> Snapshot(store::Store& st) {
  std::vector<int64_t> out;
  for (const char* t : {"model", "version", "chunk", "component", "outbox", "audit", "file"})
    out.push_back(CountRows(st.catalog(), t));
  return out;
}

TEST_F(AppTest, ListShowDiffStatsAnswerWithTheCliJson) {
  Ingest("base.safetensors", "m");
  Ingest("ft1.safetensors", "m", "m@1");

  auto models = List(ctx_, {});
  ASSERT_TRUE(models.ok()) << models.status();
  json mj = models->ToJson();
  ASSERT_EQ(mj.size(), 1u);
  EXPECT_EQ(mj[0]["name"], "m");
  EXPECT_EQ(mj[0]["versions"], 2);
  EXPECT_EQ(mj[0]["latest"], 2);

  auto versions = List(ctx_, {"m"});
  ASSERT_TRUE(versions.ok());
  json vj = versions->ToJson();
  ASSERT_EQ(vj.size(), 2u);
  EXPECT_EQ(vj[1]["version"], "m@2");
  EXPECT_EQ(vj[1]["parent"], "m@1");
  EXPECT_EQ(vj[0]["parent"], nullptr);
  EXPECT_FALSE(vj[0].contains("metadata"));

  auto missing = List(ctx_, {"nope"});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  auto show = Show(ctx_, {"m@1"});
  ASSERT_TRUE(show.ok()) << show.status();
  json sj = show->ToJson();
  EXPECT_EQ(sj["version"]["version"], "m@1");
  EXPECT_TRUE(sj["version"].contains("metadata"));
  EXPECT_EQ(sj["files"].size(), 1u);
  EXPECT_EQ(sj["tensors"].size(), show->version.tensors);
  EXPECT_GT(sj["tensors"].size(), 10u);
  EXPECT_EQ(sj["files"][0]["size"], FileBytes(Fixture("base.safetensors")).size());

  auto diff = Diff(ctx_, {"m@1", "m@2"});
  ASSERT_TRUE(diff.ok()) << diff.status();
  json dj = diff->ToJson();
  EXPECT_EQ(dj["a"], "m@1");
  EXPECT_EQ(dj["b"], "m@2");
  EXPECT_GT(dj["summary"]["changed"].get<int>(), 0);
  EXPECT_EQ(dj["summary"]["added"], 0);
  EXPECT_EQ(dj["rows"].size(), diff->rows.size());
  EXPECT_EQ(dj["summary"]["logical_bytes_b"], diff->b.logical_bytes);

  auto stats = Stats(ctx_, {});
  ASSERT_TRUE(stats.ok());
  json tj = stats->ToJson();
  EXPECT_EQ(tj["total"]["versions"], 2);
  EXPECT_LT(tj["total"]["physical_bytes"].get<uint64_t>(), tj["total"]["logical_bytes"].get<uint64_t>());

  auto v = Verify(ctx_, {});
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->ToJson()["ok"], true);
}

// The web UI's Models list and model page (issue 16) show who owns a model
// and who else reads it: List and Show carry "owner" and "visibility", and
// only for the models the caller may read.
TEST_F(AppTest, ListAndShowCarryOwnerAndVisibilityOfWhatTheCallerMayRead) {
  Ingest("base.safetensors", "open");
  Ingest("base.safetensors", "secret");
  Ingest("base.safetensors", "mine");
  ASSERT_TRUE(ctx_.st().SetModelAccess("open", {.owner = "local", .tenant = "", .visibility = "public"}, "tester").ok());
  ASSERT_TRUE(ctx_.st().SetModelAccess("mine", {.owner = "idp|alice", .tenant = "", .visibility = "private"}, "tester").ok());

  json all = List(ctx_, {})->ToJson();  // the local Admin reads everything
  ASSERT_EQ(all.size(), 3u);
  for (const json& m : all) {
    EXPECT_EQ(m["owner"], m["name"] == "mine" ? "idp|alice" : "local") << m.dump();
    EXPECT_EQ(m["visibility"], m["name"] == "open" ? "public" : "private") << m.dump();
  }

  Context alice = ctx_;
  alice.caller = {.actor = "idp|alice", .owner = "idp|alice", .tenant = "", .role = AccessRole::kReader, .authenticated = true};
  json seen = List(alice, {})->ToJson();
  ASSERT_EQ(seen.size(), 2u) << seen.dump();
  EXPECT_EQ(seen[0]["name"], "mine");
  EXPECT_EQ(seen[0]["owner"], "idp|alice");
  EXPECT_EQ(seen[0]["visibility"], "private");
  EXPECT_EQ(seen[1]["name"], "open");
  EXPECT_EQ(seen[1]["visibility"], "public");
  EXPECT_EQ(seen[1]["license"], "mit");  // the latest version's, for callers without SQL
  EXPECT_GT(seen[1]["created_at"].get<int64_t>(), 0);
  EXPECT_EQ(List(alice, {"secret"}).status().code(), absl::StatusCode::kNotFound);

  json versions = List(alice, {"open"})->ToJson();
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_EQ(versions[0]["owner"], "local");
  EXPECT_EQ(versions[0]["visibility"], "public");

  auto show = Show(alice, {"mine@1"});
  ASSERT_TRUE(show.ok()) << show.status();
  EXPECT_EQ(show->ToJson()["version"]["owner"], "idp|alice");
  EXPECT_EQ(show->ToJson()["version"]["visibility"], "private");
  EXPECT_EQ(Show(alice, {"secret@1"}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(AppTest, RemoveRefusesAParentUnlessForcedAndRecordsTheActor) {
  Ingest("base.safetensors", "m");
  Ingest("ft1.safetensors", "m", "m@1");
  ctx_.actor = "alice";
  auto r = Remove(ctx_, {"m@1", false});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(HttpStatusFor(r.status()), 409);
  EXPECT_EQ(std::string(r.status().message()).find("--"), std::string::npos) << r.status();
  r = Remove(ctx_, {"m@1", true});
  ASSERT_TRUE(r.ok()) << r.status();
  json j = r->ToJson();
  EXPECT_EQ(j["deleted"], "m@1");
  EXPECT_EQ(j["children_relinked"], json::array({"m@2"}));

  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(ctx_.st().catalog(), "SELECT actor, action FROM audit ORDER BY id DESC LIMIT 1",
                               -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "alice");
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 1)), "delete");
  sqlite3_finalize(st);

  auto gc = Gc(ctx_, {});
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_TRUE(gc->ToJson().contains("bytes_reclaimed"));
}

TEST_F(AppTest, FromJsonReadsEveryFieldAndRefusesWrongTypesAndUnknownFields) {
  auto show = ShowRequest::FromJson({{"version", "m@2"}});
  ASSERT_TRUE(show.ok());
  EXPECT_EQ(show->version, "m@2");
  auto plan = PlanRequest::FromJson({{"version", "m"}, {"names", {"blk.0.*"}}, {"closure", false}});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->plan.names, std::vector<std::string>{"blk.0.*"});
  EXPECT_FALSE(plan->plan.closure);
  auto sql = SqlRequest::FromJson({{"sql", "SELECT 1"}, {"max_rows", 5}, {"timeout_seconds", 1.5}});
  ASSERT_TRUE(sql.ok());
  EXPECT_TRUE(sql->single_statement);
  EXPECT_FALSE(sql->write);
  EXPECT_EQ(sql->max_rows, 5);
  // A remote query is always capped.
  auto capped = SqlRequest::FromJson({{"sql", "SELECT 1"}});
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->max_rows, kDefaultMaxRows);
  EXPECT_EQ(capped->timeout_seconds, kDefaultTimeoutSeconds);
  EXPECT_EQ(PlanRequest::FromJson({{"version", "m"}})->plan.timeout_seconds, kDefaultTimeoutSeconds);
  auto ingest = IngestRequest::FromJson({{"model", "x"}, {"license", "mit"}, {"file_sha256", true}});
  ASSERT_TRUE(ingest.ok());
  EXPECT_EQ(ingest->license, "mit");
  EXPECT_TRUE(ingest->path.empty());
  // A request round-trips through its own JSON.
  auto again = PlanRequest::FromJson(plan->ToJson());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->ToJson(), plan->ToJson());

  struct Bad {
    absl::Status status;
    std::string field;
  };
  std::vector<Bad> bad = {
      {ShowRequest::FromJson({{"version", 3}}).status(), "'version'"},
      {ShowRequest::FromJson(json::object()).status(), "'version'"},
      {ShowRequest::FromJson({{"version", "m"}, {"verison", "m"}}).status(), "'verison'"},
      {ShowRequest::FromJson(json::array()).status(), "object"},
      {DiffRequest::FromJson({{"a", "m"}, {"b", json::array()}}).status(), "'b'"},
      {ListRequest::FromJson({{"model", true}}).status(), "'model'"},
      {SearchRequest::FromJson({{"query", "x"}, {"k", 0}}).status(), "'k'"},
      {SearchRequest::FromJson({{"query", "x"}, {"k", 2.5}}).status(), "'k'"},
      {SearchRequest::FromJson({{"query", "x"}, {"k", "5"}}).status(), "'k'"},
      {SimilarRequest::FromJson({{"target", "m"}, {"k", 1e30}}).status(), "'k'"},
      {SqlRequest::FromJson({{"sql", "DELETE FROM model"}, {"write", true}}).status(), "'write'"},
      {SqlRequest::FromJson({{"sql", "SELECT 1"}, {"max_rows", -1}}).status(), "'max_rows'"},
      {SqlRequest::FromJson({{"sql", "SELECT 1"}, {"max_rows", 0}}).status(), "'max_rows'"},
      {SqlRequest::FromJson({{"sql", "SELECT 1"}, {"timeout_seconds", 0}}).status(), "'timeout_seconds'"},
      {SqlRequest::FromJson({{"sql", "SELECT 1"}, {"timeout_seconds", 1e9}}).status(), "'timeout_seconds'"},
      {PlanRequest::FromJson({{"version", "m"}, {"names", {"a", 1}}}).status(), "'names'"},
      {LoadRequest::FromJson({{"version", "m"}, {"format", "onnx"}}).status(), "'format'"},
      {ExportRequest::FromJson({{"version", "m"}, {"verify", "yes"}}).status(), "'verify'"},
      {IngestRequest::FromJson({{"path", "/etc/passwd"}}).status(), "'path'"},
      {RemoveRequest::FromJson({{"version", "m@1"}, {"force", 1}}).status(), "'force'"},
      {EventsRequest::FromJson({{"after", -1}}).status(), "'after'"},
      {EventsRequest::FromJson({{"limit", 100000}}).status(), "'limit'"},
      {StatsRequest::FromJson({{"model", "m"}}).status(), "'model'"},
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(bad[i].status.code(), absl::StatusCode::kInvalidArgument) << bad[i].status;
    EXPECT_NE(std::string(bad[i].status.message()).find(bad[i].field), std::string::npos)
        << bad[i].status;
    EXPECT_EQ(HttpStatusFor(bad[i].status), 400);
    EXPECT_EQ(ErrorJson(bad[i].status)["error"]["type"], "invalid_request");
  }
}

TEST_F(AppTest, ErrorsMapToHttpStatusesNeverA500ForBadInput) {
  EXPECT_EQ(HttpStatusFor(absl::InvalidArgumentError("x")), 400);
  EXPECT_EQ(HttpStatusFor(absl::NotFoundError("x")), 404);
  EXPECT_EQ(HttpStatusFor(absl::DataLossError("x")), 422);
  EXPECT_EQ(HttpStatusFor(absl::ResourceExhaustedError("x")), 413);
  EXPECT_EQ(HttpStatusFor(absl::PermissionDeniedError("x")), 403);
  EXPECT_EQ(HttpStatusFor(absl::OutOfRangeError("x")), 416);
  EXPECT_EQ(HttpStatusFor(absl::CancelledError("x")), 499);
  EXPECT_EQ(HttpStatusFor(absl::InternalError("x")), 500);
  absl::Status busy = TooManyRequests("queue full", 3);
  ErrorInfo e = ClassifyError(busy);
  EXPECT_EQ(e.http_status, 429);
  EXPECT_EQ(e.type, "rate_limited");
  EXPECT_EQ(e.retry_after, 3);
  EXPECT_EQ(ErrorType(busy), "rate_limited");
  json j = ErrorJson(absl::NotFoundError("no model named 'x'"));
  EXPECT_EQ(j["error"]["code"], 404);
  EXPECT_EQ(j["error"]["message"], "no model named 'x'");

  // The store's own errors for bad requests are 4xx too.
  EXPECT_EQ(HttpStatusFor(Show(ctx_, {"nope"}).status()), 404);
  EXPECT_EQ(HttpStatusFor(Show(ctx_, {"m@x"}).status()), 400);
  EXPECT_EQ(HttpStatusFor(Show(ctx_, {""}).status()), 400);
  EXPECT_EQ(HttpStatusFor(Plan(ctx_, PlanRequest{}).status()), 400);
}

TEST_F(AppTest, NamesAreDataNeverSqlNorPaths) {
  Ingest("base.safetensors", "m");
  auto before = Snapshot(ctx_.st());
  const std::vector<std::string> evil = {
      "m'; DROP TABLE model; --", "m\" OR 1=1 --", "../../etc/passwd", "m@1'--", "%",
      "m'); DELETE FROM version; --", "m@1:blk.0.attn_q.weight' OR '1'='1"};
  for (const std::string& name : evil) {
    SCOPED_TRACE(name);
    for (absl::Status s : {List(ctx_, {name}).status(), Show(ctx_, {name}).status(),
                           Diff(ctx_, {name, "m"}).status(), Remove(ctx_, {name, true}).status(),
                           Similar(ctx_, {name, 3}).status(),
                           ExportFileReader::Open(ctx_, name).status(),
                           ExportFileReader::Open(ctx_, "m", name).status()}) {
      EXPECT_FALSE(s.ok());
      EXPECT_GE(HttpStatusFor(s), 400);
      EXPECT_LT(HttpStatusFor(s), 500) << s;
    }
    PlanRequest p;
    p.plan.version = "m";
    p.plan.names = {name};
    auto plan = Plan(ctx_, p);  // a GLOB that matches nothing, or an error; never a write
    if (plan.ok()) {
      EXPECT_EQ(plan->plan.selected, 0u);
    }
    auto found = Search(ctx_, {name, 5});
    if (!found.ok()) {
      EXPECT_EQ(HttpStatusFor(found.status()), 400) << found.status();
    }
  }
  // The file name of an export is matched, never opened as a path.
  EXPECT_EQ(ExportFileReader::Open(ctx_, "m", "../catalog.sqlite").status().code(),
            absl::StatusCode::kNotFound);
  // Scratch paths take no separators.
  EXPECT_FALSE(NewUploadPath(ctx_, "/../../x").ok());
  EXPECT_FALSE(ctx_.st().NewTempPath("../x", "").ok());
  EXPECT_EQ(Snapshot(ctx_.st()), before);
  EXPECT_EQ(List(ctx_, {"m"})->versions.size(), 1u);
}

TEST_F(AppTest, SqlIsReadOnlyOneStatementAndCapped) {
  Ingest("base.safetensors", "m");
  auto before = Snapshot(ctx_.st());
  auto req = SqlRequest::FromJson({{"sql", "SELECT name, shape FROM tensors ORDER BY name"}, {"max_rows", 3}});
  ASSERT_TRUE(req.ok());
  auto r = Sql(ctx_, *req);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows.size(), 3u);
  EXPECT_TRUE(r->truncated);
  json j = r->ToJson();
  EXPECT_EQ(j["columns"], json({"name", "shape"}));
  EXPECT_TRUE(j["rows"][0]["shape"].is_array()) << j;  // JSON text comes out as JSON

  req = SqlRequest::FromJson({{"sql", "SELECT COUNT(*) AS n FROM tensors"}, {"max_rows", 1}});
  r = Sql(ctx_, *req);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->truncated);
  EXPECT_GT(r->ToJson()["rows"][0]["n"].get<int>(), 10);

  for (const char* bad : {"DROP TABLE model", "DELETE FROM version", "ATTACH '/tmp/x.db' AS x",
                          "PRAGMA journal_mode = DELETE", "SELECT load_extension('x')"}) {
    auto s = Sql(ctx_, *SqlRequest::FromJson({{"sql", bad}}));
    EXPECT_FALSE(s.ok()) << bad;
    EXPECT_EQ(HttpStatusFor(s.status()) / 100, 4) << s.status();
  }
  auto two = Sql(ctx_, *SqlRequest::FromJson({{"sql", "SELECT 1; DROP TABLE model"}}));
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument) << two.status();
  auto syntax = Sql(ctx_, *SqlRequest::FromJson({{"sql", "SELEC 1"}}));
  EXPECT_EQ(syntax.status().code(), absl::StatusCode::kInvalidArgument);
  // The error names where it is (a byte offset, for the UI's console): the
  // second AND here; a query that prepares (an unknown view fails later) or
  // an error of the request itself names none.
  {
    const std::string sql = "SELECT name\nFROM tensors WHERE 1 AND AND name";
    auto at = Sql(ctx_, *SqlRequest::FromJson({{"sql", sql}}));
    ASSERT_FALSE(at.ok());
    EXPECT_EQ(ClassifyError(at.status()).offset, static_cast<int64_t>(sql.rfind("AND name"))) << at.status();
    EXPECT_EQ(ErrorJson(at.status())["error"]["offset"], sql.rfind("AND name"));
    auto none = Sql(ctx_, *SqlRequest::FromJson({{"sql", "SELECT 1; SELECT 2"}}));
    EXPECT_EQ(ClassifyError(none.status()).offset, -1);
    EXPECT_FALSE(ErrorJson(none.status())["error"].contains("offset"));
  }
  EXPECT_EQ(Snapshot(ctx_.st()), before);

  // A query that never ends stops when its caller goes away.
  CancelToken gone;
  gone.Cancel();
  Context c = ctx_;
  c.cancel = &gone;
  SqlRequest forever;
  forever.sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c";
  auto stopped = Sql(c, forever);
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled) << stopped.status();
  EXPECT_EQ(HttpStatusFor(stopped.status()), 499);

  // SQL values as JSON.
  EXPECT_EQ(SqlValueToJson(query::Value{}), nullptr);
  EXPECT_EQ(SqlValueToJson(query::Value{int64_t{7}}), 7);
  EXPECT_EQ(SqlValueToJson(query::Value{std::string("{\"a\":1}")}), json({{"a", 1}}));
  EXPECT_EQ(SqlValueToJson(query::Value{std::string("{not json")}), "{not json");
  EXPECT_EQ(SqlValueToJson(query::Value{std::vector<uint8_t>{0xab, 0x01}}), "x'ab01'");
}

TEST_F(AppTest, SearchSimilarAndPlanFindTheIngestedTensors) {
  Ingest("base.safetensors", "m");
  Ingest("ft1.safetensors", "f", "m@1");
  auto s = Search(ctx_, {"q_proj", 50});
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_FALSE(s->hits.empty());
  bool tensor_hit = false;
  for (const auto& h : s->hits) tensor_hit |= h.kind == "tensor" && h.name.find("q_proj") != std::string::npos;
  EXPECT_TRUE(tensor_hit) << s->ToJson().dump();

  auto sim = Similar(ctx_, {"f@1", 3});
  ASSERT_TRUE(sim.ok()) << sim.status();
  ASSERT_FALSE(sim->versions.empty());
  EXPECT_EQ(sim->ToJson()[0]["version"], "m@1");

  PlanRequest p;
  p.plan.version = "m@1";
  p.plan.names = {"*q_proj*"};
  auto plan = Plan(ctx_, p);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_GT(plan->plan.selected, 0u);
  EXPECT_EQ(plan->ToJson()["version"], "m@1");
}

TEST_F(AppTest, ExportRangesAreTheFileBytes) {
  Ingest("base.safetensors", "m");
  std::vector<uint8_t> want = FileBytes(Fixture("base.safetensors"));
  auto reader = ExportFileReader::Open(ctx_, "m");
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ(reader->size(), want.size());
  auto read = [&](uint64_t off, uint64_t len) {
    std::vector<uint8_t> got;
    absl::Status s = reader->Read(off, len, [&](std::span<const uint8_t> b) {
      got.insert(got.end(), b.begin(), b.end());
      return absl::OkStatus();
    });
    EXPECT_TRUE(s.ok()) << s;
    return got;
  };
  EXPECT_EQ(read(0, want.size()), want);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20; ++i) {
    uint64_t off = rng() % want.size();
    uint64_t len = 1 + rng() % (want.size() - off);
    ASSERT_EQ(read(off, len), std::vector<uint8_t>(want.begin() + off, want.begin() + off + len))
        << off << "+" << len;
  }
  auto none = [](std::span<const uint8_t>) { return absl::OkStatus(); };
  EXPECT_EQ(reader->Read(want.size(), 1, none).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(reader->Read(0, want.size() + 1, none).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(reader->Read(0, 0, none).code(), absl::StatusCode::kOutOfRange);
  // A sink's error stops the read.
  EXPECT_EQ(reader->Read(0, want.size(), [](std::span<const uint8_t>) {
              return absl::CancelledError("client gone");
            }).code(), absl::StatusCode::kCancelled);

  // A sharded version: a file is named, the only-file shortcut refused.
  Ingest("sharded", "s");
  EXPECT_EQ(ExportFileReader::Open(ctx_, "s").status().code(), absl::StatusCode::kInvalidArgument);
  auto cfg = ExportFileReader::Open(ctx_, "s", "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  std::vector<uint8_t> cfg_want = FileBytes(Fixture("sharded/config.json"));
  std::vector<uint8_t> got;
  ASSERT_TRUE(cfg->Read(0, cfg->size(), [&](std::span<const uint8_t> b) {
    got.insert(got.end(), b.begin(), b.end());
    return absl::OkStatus();
  }).ok());
  EXPECT_EQ(got, cfg_want);

  // Whole-file export to a path, as the CLI does.
  auto out = Export(ctx_, {"m", "original", true}, root_ + "/out.safetensors");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(FileBytes(root_ + "/out.safetensors"), want);
  EXPECT_EQ(out->ToJson()["bytes"], want.size());
  EXPECT_EQ(out->ToJson()["verified"], true);
}

TEST_F(AppTest, RangeHeaders) {
  auto r = ParseRangeHeader("bytes=0-99", 1000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->offset, 0u);
  EXPECT_EQ(r->length, 100u);
  r = ParseRangeHeader("bytes=900-", 1000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->length, 100u);
  r = ParseRangeHeader("bytes=-10", 1000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->offset, 990u);
  r = ParseRangeHeader("bytes=990-5000", 1000);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->length, 10u);
  EXPECT_EQ(ParseRangeHeader("bytes=1000-", 1000).status().code(), absl::StatusCode::kOutOfRange);
  for (const char* bad : {"bytes=5-1", "items=0-1", "bytes=a-b", "bytes=0-1,5-6", "bytes=-", "bytes=1"})
    EXPECT_EQ(ParseRangeHeader(bad, 1000).status().code(), absl::StatusCode::kInvalidArgument) << bad;
}

TEST_F(AppTest, UploadIngestsAllOrNothing) {
  auto path = NewUploadPath(ctx_, ".safetensors");
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(path->rfind(dir_ + "/tmp/upload-", 0), 0u) << *path;
  EXPECT_FALSE(fs::exists(*path));
  std::vector<uint8_t> bytes = FileBytes(Fixture("base.safetensors"));

  // Cut short: DataLoss (422), the store unchanged.
  auto before = Snapshot(ctx_.st());
  {
    std::ofstream f(*path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size() / 2));
  }
  IngestRequest req;
  req.path = *path;
  req.model = "up";
  req.license = "mit";
  auto r = app::Ingest(ctx_, req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(HttpStatusFor(r.status()), 422) << r.status();
  EXPECT_EQ(Snapshot(ctx_.st()), before);
  RemoveUpload(*path);

  // Cancelled before it starts: Cancelled, the store unchanged.
  {
    std::ofstream f(*path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  CancelToken cancel;
  cancel.Cancel();
  Context cctx = ctx_;
  cctx.cancel = &cancel;
  r = app::Ingest(cctx, req);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_EQ(Snapshot(ctx_.st()), before);

  // Whole: a version, progress reported to the sink, the actor recorded.
  struct Sink : ProgressSink {
    std::atomic<uint64_t> total = 0, done = 0;
    std::atomic<int> begun = 0, ended = 0;
    void Begin(std::string_view, uint64_t t, std::string_view) override { total = t, ++begun; }
    void Advance(uint64_t n) override { done += n; }  // from several threads
    void End() override { ++ended; }
  } sink;
  cctx.cancel = nullptr;
  cctx.progress = &sink;
  cctx.actor = "uploader";
  r = app::Ingest(cctx, req);
  ASSERT_TRUE(r.ok()) << r.status();
  RemoveUpload(*path);
  EXPECT_FALSE(fs::exists(*path));
  EXPECT_EQ(r->ToJson()["version"], "up@1");
  EXPECT_EQ(r->ToJson()["logical_bytes"], bytes.size());
  EXPECT_EQ(sink.begun, 1);
  EXPECT_EQ(sink.ended, 1);
  EXPECT_EQ(sink.done, sink.total);
  EXPECT_GT(sink.total, 0u);
  auto events = Events(ctx_, {0, 100});
  ASSERT_TRUE(events.ok());
  ASSERT_FALSE(events->events.empty());
  EXPECT_EQ(events->events.back().kind, "version.created");
  EXPECT_EQ(events->ToJson().back()["kind"], "version.created");
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(ctx_.st().catalog(), "SELECT actor FROM audit ORDER BY id DESC LIMIT 1", -1,
                               &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "uploader");
  sqlite3_finalize(st);
}

TEST_F(AppTest, LoadWritesThePlanToAFileOrASink) {
  Ingest("base.safetensors", "m");
  Ingest("model.gguf", "g");
  for (const char* model : {"m", "g"}) {
    SCOPED_TRACE(model);
    LoadRequest req;
    req.plan.plan.version = model;
    req.plan.plan.search = "output";
    std::string path = root_ + "/" + model + ".out";
    auto to_file = Load(ctx_, req, path);
    ASSERT_TRUE(to_file.ok()) << to_file.status();
    EXPECT_EQ(to_file->format, std::string(model) == "g" ? "gguf" : "safetensors");
    EXPECT_EQ(to_file->ToJson()["path"], path);
    std::vector<uint8_t> streamed;
    auto to_sink = LoadToSink(ctx_, req, [&](std::span<const uint8_t> b) {
      streamed.insert(streamed.end(), b.begin(), b.end());
      return absl::OkStatus();
    });
    ASSERT_TRUE(to_sink.ok()) << to_sink.status();
    EXPECT_EQ(streamed, FileBytes(path));
    EXPECT_EQ(to_sink->bytes, streamed.size());
  }
  // No scratch file is left behind.
  size_t left = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_ + "/tmp", ec)) left += e.is_regular_file();
  EXPECT_EQ(left, 0u);
}

TEST_F(AppTest, FollowEventsDeliversThenStopsWhenCancelled) {
  Ingest("base.safetensors", "m");
  Ingest("ft1.safetensors", "m", "m@1");
  CancelToken cancel;
  Context c = ctx_;
  c.cancel = &cancel;
  std::vector<int64_t> ids;
  absl::Status s = FollowEvents(c, 0, [&](const store::Event& e) {
    ids.push_back(e.id);
    if (ids.size() == 2) cancel.Cancel();  // the follower goes away
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_LT(ids[0], ids[1]);
  // on_event returning false stops too.
  int n = 0;
  s = FollowEvents(ctx_, ids[0], [&](const store::Event&) { return ++n < 1; });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(n, 1);
}


TEST_F(AppTest, ComponentsAnswerTheTreeItsEdgesAndSubtrees) {
  Ingest("base.safetensors", "m");
  auto all = Components(ctx_, *ComponentsRequest::FromJson({{"version", "m"}}));
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_FALSE(all->nodes.empty());
  EXPECT_FALSE(all->truncated);
  // Root first: the model node, no parent.
  EXPECT_EQ(all->nodes[0].kind, "model");
  EXPECT_FALSE(all->nodes[0].parent.has_value());
  EXPECT_EQ(all->root, all->nodes[0].id);
  std::map<int64_t, const ComponentNodeRow*> by_id;
  for (const auto& n : all->nodes) by_id[n.id] = &n;
  int tensors = 0;
  std::set<int64_t> layers;
  for (const auto& n : all->nodes) {
    if (n.id != all->root) {
      ASSERT_TRUE(n.parent.has_value()) << n.name;
      EXPECT_TRUE(by_id.count(*n.parent)) << n.name << " has a parent outside the tree";
    }
    if (n.kind == "tensor") {
      ++tensors;
      EXPECT_TRUE(n.dtype.has_value()) << n.name;
      EXPECT_TRUE(n.shape.is_array()) << n.name;
      EXPECT_GT(n.nbytes, 0u) << n.name;
    }
    if (n.kind == "block" && n.layer) layers.insert(*n.layer);
  }
  EXPECT_EQ(tensors, 39);  // make_models.py: embed + 4 x 9 + norm + head
  EXPECT_EQ(layers, (std::set<int64_t>{0, 1, 2, 3}));
  // `contains` mirrors the tree; dataflow edges are there too.
  int contains = 0, feeds = 0;
  for (const auto& e : all->edges) {
    ASSERT_TRUE(by_id.count(e.src) && by_id.count(e.dst)) << e.src << "->" << e.dst;
    if (e.kind == "contains") {
      ++contains;
      EXPECT_EQ(by_id[e.dst]->parent, e.src);
    }
    if (e.kind == "feeds") ++feeds;
  }
  EXPECT_EQ(contains, static_cast<int>(all->nodes.size()) - 1);
  EXPECT_GT(feeds, 0);
  // The JSON names every field.
  json j = all->ToJson();
  EXPECT_EQ(j["version"], "m@1");
  EXPECT_EQ(j["nodes"][0]["kind"], "model");
  EXPECT_TRUE(j["nodes"][0]["parent"].is_null());
  EXPECT_EQ(j["edges"].size(), all->edges.size());

  // A subtree by name: layer 1's block and nothing outside it; by id the same.
  const ComponentNodeRow* blk1 = nullptr;
  for (const auto& n : all->nodes)
    if (n.kind == "block" && n.layer == 1 && (!blk1 || n.id < blk1->id)) blk1 = &n;
  ASSERT_NE(blk1, nullptr);
  auto sub = Components(ctx_, *ComponentsRequest::FromJson(
                                  {{"version", "m@1"}, {"under", blk1->name}, {"edges", {"feeds"}}}));
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_EQ(sub->root, blk1->id);
  EXPECT_EQ(sub->nodes[0].id, blk1->id);
  EXPECT_LT(sub->nodes.size(), all->nodes.size());
  int sub_tensors = 0;
  for (const auto& n : sub->nodes) {
    if (n.kind == "tensor") {
      ++sub_tensors;
      EXPECT_NE(n.name.find("layers.1."), std::string::npos) << n.name;
    }
  }
  EXPECT_EQ(sub_tensors, 9);
  EXPECT_FALSE(sub->edges.empty());
  for (const auto& e : sub->edges) EXPECT_EQ(e.kind, "feeds");
  auto by_num = Components(ctx_, *ComponentsRequest::FromJson(
                                     {{"version", "m"}, {"under", std::to_string(blk1->id)}, {"with_edges", false}}));
  ASSERT_TRUE(by_num.ok()) << by_num.status();
  EXPECT_EQ(by_num->nodes.size(), sub->nodes.size());
  EXPECT_TRUE(by_num->edges.empty());

  // The row cap cuts and says so.
  auto capped = Components(ctx_, *ComponentsRequest::FromJson({{"version", "m"}, {"max_rows", 5}}));
  ASSERT_TRUE(capped.ok());
  EXPECT_EQ(capped->nodes.size(), 5u);
  EXPECT_TRUE(capped->truncated);
  EXPECT_LE(capped->edges.size(), 5u);
}

TEST_F(AppTest, ComponentsRefuseBadInputAndUnknownNames) {
  Ingest("base.safetensors", "m");
  auto before = Snapshot(ctx_.st());
  for (auto [j, field] : std::vector<std::pair<json, std::string>>{
           {json{{"version", "m"}, {"depth", 2}}, "'depth'"},
           {json{{"version", 3}}, "'version'"},
           {json::object(), "'version'"},
           {json{{"version", "m"}, {"edges", "feeds"}}, "'edges'"},
           {json{{"version", "m"}, {"edges", {"flows"}}}, "'edges'"},
           {json{{"version", "m"}, {"max_rows", 0}}, "'max_rows'"},
           {json{{"version", "m"}, {"under", 7}}, "'under'"}}) {
    auto r = ComponentsRequest::FromJson(j);
    ASSERT_FALSE(r.ok()) << j.dump();
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << j.dump();
    EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status();
  }
  auto nover = Components(ctx_, *ComponentsRequest::FromJson({{"version", "nosuch@1"}}));
  EXPECT_EQ(nover.status().code(), absl::StatusCode::kNotFound) << nover.status();
  for (std::string under : {"nosuch", "999999", "x' OR '1'='1", "1; DELETE FROM component"}) {
    auto r = Components(ctx_, *ComponentsRequest::FromJson({{"version", "m"}, {"under", under}}));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << under << ": " << r.status();
  }
  EXPECT_EQ(Snapshot(ctx_.st()), before);
}

TEST_F(AppTest, TensorsWithStatsReadUpToTheByteCap) {
  Ingest("base.safetensors", "m");
  auto plain = Tensors(ctx_, *TensorsRequest::FromJson({{"version", "m"}}));
  ASSERT_TRUE(plain.ok()) << plain.status();
  auto show = Show(ctx_, *ShowRequest::FromJson({{"version", "m"}}));
  ASSERT_TRUE(show.ok());
  EXPECT_EQ(plain->ToJson(), show->ToJson()["tensors"]);  // without stats: show's tensors

  auto with = Tensors(ctx_, *TensorsRequest::FromJson({{"version", "m"}, {"stats", true}}));
  ASSERT_TRUE(with.ok()) << with.status();
  json j = with->ToJson();
  ASSERT_EQ(j.size(), 39u);
  for (const auto& t : j) {
    ASSERT_TRUE(t["stats"].is_object()) << t.dump();
    EXPECT_TRUE(t["stats"].contains("mean")) << t.dump();
    EXPECT_FALSE(t.contains("stats_skipped"));
    if (std::string(t["name"]).find("layernorm") != std::string::npos) {  // all ones
      EXPECT_EQ(t["stats"]["min"], 1.0);
      EXPECT_EQ(t["stats"]["max"], 1.0);
      EXPECT_EQ(t["stats"]["std"], 0.0);
    }
  }
  // A cap smaller than the first tensor: no bytes read, every stats null.
  auto none = Tensors(ctx_, *TensorsRequest::FromJson({{"version", "m"}, {"stats", true}, {"max_stats_bytes", 1}}));
  ASSERT_TRUE(none.ok());
  json n = none->ToJson();
  ASSERT_EQ(n.size(), 39u);
  EXPECT_TRUE(n[0]["stats"].is_null());
  EXPECT_EQ(n[0]["stats_skipped"], true);
  auto bad = TensorsRequest::FromJson({{"version", "m"}, {"stats", "yes"}});
  EXPECT_NE(bad.status().message().find("'stats'"), std::string::npos) << bad.status();
  bad = TensorsRequest::FromJson({{"version", "m"}, {"max_stats_bytes", -1}});
  EXPECT_NE(bad.status().message().find("'max_stats_bytes'"), std::string::npos) << bad.status();
}

}  // namespace
}  // namespace hart::app
