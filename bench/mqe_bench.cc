// MQE benchmark (plain main, no Google Benchmark needed). Builds a synthetic
// store of 1,000 versions x 300 tensors (catalog rows inserted directly in
// one transaction: 100 base models, each with 9 fine-tunes = base + 1% noise,
// fingerprints computed by the real ComputeFingerprint from 256-value tiny
// tensors), then reports p50/p90 of graph_walk depth 64, a full-text search
// and a name-and-role filter; similar_tensors recall@10 and speedup against
// exact search in the same run; tensor_stats throughput on a 64 MiB F16
// tensor against a plain read of the same bytes.
//   build-x/mqe_bench [versions=1000] [tensors=300]
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>

#include "core/progress.h"
#include "core/status.h"
#include "fmt/format.h"
#include "query/engine.h"
#include "query/similarity.h"
#include "store/db.h"
#include "store/fingerprint.h"

using Clock = std::chrono::steady_clock;
using namespace hart;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void Die(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  fmt::print(stderr, "{}: {}\n", what, Msg(s));
  std::exit(1);
}

struct Pct {
  double p50, p90;
};
Pct Percentiles(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[v.size() * 9 / 10]};
}

const char* kRoles[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_out",
                        "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"};

}  // namespace

int main(int argc, char** argv) {
  const int versions = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int tensors = argc > 2 ? std::atoi(argv[2]) : 300;
  const int family_size = 10;
  Progress::SetEnabled(false);
  char tmpl[] = "/tmp/hart_mqe_bench_XXXXXX";
  std::string root = mkdtemp(tmpl);
  std::string dir = root + "/store";
  Die(store::Store::Init(dir), "init");
  auto st = store::Store::Open(dir);
  Die(st.status(), "open");
  sqlite3* db = (*st)->catalog();

  auto t0 = Clock::now();
  {
    auto txn = store::WriteTxn::Begin(db);
    Die(txn.status(), "begin");
    auto im = store::Stmt::Prepare(db, "INSERT INTO model(name, created_at) VALUES(?, 0)");
    auto iv = store::Stmt::Prepare(db,
        "INSERT INTO version(model_id, number, format, license, architecture, metadata, "
        "logical_bytes, tensor_count, created_at) VALUES(?, ?, 'safetensors', 'mit', 'llama', ?, ?, ?, 0)");
    auto ic = store::Stmt::Prepare(db,
        "INSERT INTO component(version_id, parent_id, kind, name, role, layer, dtype, shape, nbytes, "
        "sha256) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    auto ie = store::Stmt::Prepare(db, "INSERT INTO edge(src, dst, kind) VALUES(?, ?, 'feeds')");
    auto iemb = store::Stmt::Prepare(db,
        "INSERT INTO embedding(component_id, kind, vector) VALUES(?, 'fingerprint', ?)");
    Die(im.status(), "prep");
    Die(iv.status(), "prep");
    Die(ic.status(), "prep");
    Die(ie.status(), "prep");
    Die(iemb.status(), "prep");
    std::mt19937_64 rng(42);
    std::vector<std::vector<float>> base(static_cast<size_t>(tensors), std::vector<float>(256));
    int64_t model_id = 0;
    for (int v = 0; v < versions; ++v) {
      int family = v / family_size, member = v % family_size;
      std::normal_distribution<float> normal(0.0f, 0.02f), noise(0.0f, 0.0002f);
      if (member == 0) {
        Die(im->Bind(1, fmt::format("m{}", family)).Run(), "model");
        model_id = sqlite3_last_insert_rowid(db);
        for (auto& t : base)
          for (float& x : t) x = normal(rng);
      }
      std::string meta = fmt::format(
          R"({{"general.name":"family {}","model_card":"A word{} model for topic{} tasks"}})",
          family, family % 97, family % 13);
      iv->Bind(1, model_id).Bind(2, int64_t{member + 1}).Bind(3, meta);
      Die(iv->Bind(4, int64_t{tensors} * 1024).Bind(5, int64_t{tensors}).Run(), "version");
      int64_t vid = sqlite3_last_insert_rowid(db);
      ic->Bind(1, vid).BindNull(2).Bind(3, "model").Bind(4, fmt::format("m{}", family)).BindNull(5);
      Die(ic->BindNull(6).BindNull(7).BindNull(8).Bind(9, int64_t{tensors} * 1024).BindNull(10).Run(), "c");
      int64_t root_id = sqlite3_last_insert_rowid(db);
      int64_t prev = -1;
      for (int i = 0; i < tensors; ++i) {
        std::vector<float> w = base[static_cast<size_t>(i)];
        if (member > 0)
          for (float& x : w) x += noise(rng);
        std::vector<uint8_t> bytes(w.size() * 4);
        std::memcpy(bytes.data(), w.data(), bytes.size());
        std::vector<uint8_t> sha(32);
        for (auto& b : sha) b = static_cast<uint8_t>(rng());
        int layer = i / 9;
        const char* role = kRoles[i % 9];
        ic->Bind(1, vid).Bind(2, root_id).Bind(3, "tensor");
        ic->Bind(4, fmt::format("blk.{}.{}.weight", layer, role)).Bind(5, role).Bind(6, int64_t{layer});
        Die(ic->Bind(7, "F32").Bind(8, "[256]").Bind(9, int64_t{1024}).BindBlob(10, sha).Run(), "t");
        int64_t id = sqlite3_last_insert_rowid(db);
        if (prev >= 0) Die(ie->Bind(1, prev).Bind(2, id).Run(), "edge");
        prev = id;
        auto fp = store::ComputeFingerprint(DType::kF32, 256, bytes);
        Die(fp.status(), "fingerprint");
        Die(iemb->Bind(1, id).BindBlob(2, store::FingerprintToBlob(*fp)).Run(), "emb");
      }
    }
    Die(store::Exec(db, "INSERT INTO fts_doc(kind, ref, component_id, version_id, name, body) "
                        "SELECT * FROM fts_version_source; "
                        "INSERT INTO fts_doc(kind, ref, component_id, version_id, name, body) "
                        "SELECT * FROM fts_tensor_source;"), "fts");
    Die(txn->Commit(), "commit");
  }
  fmt::print("store: {} versions x {} tensors = {} tensor rows, generated in {:.1f} s\n", versions,
             tensors, int64_t{versions} * tensors, Ms(Clock::now() - t0) / 1000);

  auto engine = query::Engine::Attach(**st);
  Die(engine.status(), "attach");
  std::mt19937 rng(7);
  auto first_tensor = [&](int v) {
    auto r = (*engine)->Query(fmt::format(
        "SELECT MIN(id) FROM main.component WHERE version_id = {} AND kind = 'tensor'", v + 1));
    return std::get<int64_t>(r->rows[0][0]);
  };
  const int kRuns = 200;
  auto time_sql = [&](const char* label, auto make_sql) {
    std::vector<double> ms;
    size_t rows = 0;
    std::string example;
    for (int i = 0; i < kRuns; ++i) {
      std::string sql = make_sql();
      if (example.empty()) example = sql;
      auto t = Clock::now();
      auto r = (*engine)->Query(sql);
      ms.push_back(Ms(Clock::now() - t));
      Die(r.status(), label);
      rows += r->rows.size();
    }
    Pct p = Percentiles(ms);
    fmt::print("{:<24} p50 {:7.3f} ms  p90 {:7.3f} ms  ({:.0f} rows/query)  e.g. {}\n", label, p.p50,
               p.p90, static_cast<double>(rows) / kRuns, example);
  };
  time_sql("graph_walk depth 64", [&] {
    return fmt::format("SELECT id, depth FROM graph_walk({}, 'down', 64)",
                       first_tensor(static_cast<int>(rng() % versions)));
  });
  time_sql("full-text search", [&] {
    return fmt::format("SELECT ref, name FROM search_text('word{}', 10)", rng() % 97);
  });
  time_sql("name-and-role filter", [&] {
    int v = static_cast<int>(rng() % versions);
    return fmt::format("SELECT id, name FROM tensors WHERE model = 'm{}' AND version = {} AND "
                       "role = 'attn_q' AND name GLOB 'blk.1*'", v / family_size, v % family_size + 1);
  });
  time_sql("cross-store name+role", [&] {
    return fmt::format("SELECT id, ref FROM tensors WHERE name = 'blk.{}.attn_q.weight' AND role = "
                       "'attn_q'", rng() % 33);
  });

  // Similarity: recall@10 of the HNSW index against exact search.
  query::Similarity sim(**st);
  auto tb = Clock::now();
  auto rebuilt = sim.Refresh();
  Die(rebuilt.status(), "index");
  fmt::print("fingerprint index: {} in {:.1f} s\n", *rebuilt ? "built" : "loaded",
             Ms(Clock::now() - tb) / 1000);
  int64_t total = int64_t{versions} * tensors;
  for (int ef : {32, 64, 128, 256}) {
  sim.set_ef(ef);
  std::mt19937 qrng(11);  // the same queries for every ef
  std::vector<double> approx_ms, exact_ms;
  double hit = 0;
  const int kQueries = 200;
  for (int i = 0; i < kQueries; ++i) {
    int64_t id = first_tensor(static_cast<int>(qrng() % versions)) + static_cast<int64_t>(qrng() % tensors);
    auto fp = sim.FingerprintOf(id);
    Die(fp.status(), "fp");
    auto t = Clock::now();
    auto a = sim.Search(*fp, 10);
    approx_ms.push_back(Ms(Clock::now() - t));
    t = Clock::now();
    auto e = sim.Search(*fp, 10, /*exact=*/true);
    exact_ms.push_back(Ms(Clock::now() - t));
    Die(a.status(), "search");
    Die(e.status(), "exact");
    std::set<int64_t> truth;
    for (auto& [cid, d] : *e) truth.insert(cid);
    for (auto& [cid, d] : *a) hit += truth.count(cid);
  }
  Pct pa = Percentiles(approx_ms), pe = Percentiles(exact_ms);
  fmt::print("similar_tensors ef {:3}: recall@10 {:.3f} over {} queries of {} vectors; HNSW p50 "
             "{:.3f} ms, exact p50 {:.3f} ms, speedup {:.1f}x\n",
             ef, hit / (10.0 * kQueries), kQueries, total, pa.p50, pe.p50, pe.p50 / pa.p50);
  }
  // Keeping the index current: one more version (300 fingerprints) added
  // to the saved index, against the full build above.
  {
    query::SqlOptions w;
    w.write = true;
    Die((*engine)->Query(
        "INSERT INTO main.version(model_id, number, format, license, architecture, metadata, "
        "logical_bytes, tensor_count, created_at) SELECT model_id, 1000, format, license, "
        "architecture, metadata, logical_bytes, tensor_count, 0 FROM main.version WHERE id = 1", w).status(),
        "copy version");
    Die((*engine)->Query(
        "INSERT INTO main.component(version_id, kind, name, role, layer, dtype, shape, nbytes, sha256) "
        "SELECT (SELECT MAX(id) FROM main.version), kind, name, role, layer, dtype, shape, nbytes, "
        "sha256 FROM main.component WHERE version_id = 1 AND kind = 'tensor'", w).status(),
        "copy components");
    Die((*engine)->Query(
        "INSERT INTO main.embedding(component_id, kind, vector) SELECT c2.id, e.kind, e.vector "
        "FROM main.component c2 JOIN main.component c1 ON c1.name = c2.name AND c1.version_id = 1 "
        "JOIN main.embedding e ON e.component_id = c1.id "
        "WHERE c2.version_id = (SELECT MAX(id) FROM main.version)", w).status(),
        "copy fingerprints");
    auto tu = Clock::now();
    auto upd = sim.Refresh();
    Die(upd.status(), "update index");
    fmt::print("fingerprint index: updated with one more version ({} tensors) in {:.3f} s\n", tensors,
               Ms(Clock::now() - tu) / 1000);
  }
  {
    int64_t id = first_tensor(3) + 5;
    std::vector<double> ms;
    for (int i = 0; i < 50; ++i) {
      auto t = Clock::now();
      auto r = (*engine)->Query(fmt::format("SELECT * FROM similar_tensors({}, 10)", id));
      ms.push_back(Ms(Clock::now() - t));
      Die(r.status(), "similar_tensors");
    }
    Pct p = Percentiles(ms);
    fmt::print("{:<24} p50 {:7.3f} ms  p90 {:7.3f} ms\n", "SQL similar_tensors", p.p50, p.p90);
  }

  // tensor_stats on 64 MiB of F16.
  {
    const size_t n = 32u << 20;
    auto owned = std::make_shared<std::vector<uint8_t>>(n * 2);
    std::mt19937 r2(1);
    for (size_t i = 0; i < n; ++i) {
      uint16_t h = static_cast<uint16_t>(r2() & 0x7BFF);  // finite halves
      std::memcpy(owned->data() + 2 * i, &h, 2);
    }
    formats::ModelSource src;
    src.name_hint = "f16";
    src.license = "mit";
    src.architecture = "llama";
    formats::TensorDesc d;
    d.name = "token_embd.weight";
    d.dtype = DType::kF16;
    d.shape = {n / 4096, 4096};
    d.nbytes = n * 2;
    d.owned = owned;
    src.tensors.push_back(d);
    store::IngestOptions io;
    io.model = "f16";
    io.progress = false;
    auto ing = (*st)->Ingest(src, io);
    Die(ing.status(), "ingest f16");
    auto tbytes = (*st)->ReadTensor(ing->version_id, "token_embd.weight");
    Die(tbytes.status(), "read");
    auto idr = (*engine)->Query(fmt::format(
        "SELECT id FROM main.component WHERE version_id = {} AND kind = 'tensor'", ing->version_id));
    int64_t id = std::get<int64_t>(idr->rows[0][0]);
    std::vector<double> stat_s, read_s;
    uint64_t sink = 0;
    query::SqlOptions w;
    w.write = true;
    for (int i = 0; i < 5; ++i) {
      Die((*engine)->Query("DELETE FROM main.tensor_stats", w).status(), "clear cache");
      auto t = Clock::now();
      auto r = (*engine)->Query(fmt::format("SELECT tensor_stats({})", id));
      stat_s.push_back(Ms(Clock::now() - t) / 1000);
      Die(r.status(), "tensor_stats");
      t = Clock::now();
      auto b = tbytes->bytes();
      for (size_t k = 0; k + 8 <= b.size(); k += 8) {
        uint64_t x;
        std::memcpy(&x, b.data() + k, 8);
        sink += x;
      }
      read_s.push_back(Ms(Clock::now() - t) / 1000);
    }
    double gb = static_cast<double>(n * 2) / 1e9;
    std::sort(stat_s.begin(), stat_s.end());
    std::sort(read_s.begin(), read_s.end());
    fmt::print("tensor_stats F16: {:.2f} GB/s (median of 5, one core; {} MiB, contiguous {}); plain "
               "read of the same bytes {:.2f} GB/s [{}]\n",
               gb / stat_s[2], n * 2 >> 20, tbytes->zero_copy(), gb / read_s[2], sink % 10);
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  return 0;
}
