#include "query/similarity.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <unordered_map>

#include "core/status.h"
#include "core/thread_pool.h"
#include "fmt/format.h"
#include "hnswlib/hnswlib.h"
#include "store/db.h"

namespace hart::query {
namespace {

constexpr int kM = 16;                // graph degree: hnswlib's default
constexpr int kEfConstruction = 100;  // build breadth: recall vs build time
constexpr int kVersionNeighbours = 10;  // neighbours per tensor when ranking versions

struct Signature {
  int64_t count = 0;
  int64_t max_id = 0;
  bool operator==(const Signature&) const = default;
};

absl::StatusOr<Signature> CurrentSignature(sqlite3* db) {
  ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(db,
      "SELECT COUNT(*), COALESCE(MAX(component_id), 0) FROM main.embedding WHERE kind = ?"));
  q.Bind(1, store::kFingerprintKind);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return Signature{};
  return Signature{q.Int(0), q.Int(1)};
}

int64_t PragmaInt(sqlite3* db, const char* sql) {
  auto q = store::Stmt::Prepare(db, sql);
  if (!q.ok()) return -1;
  auto row = q->Step();
  return row.ok() && *row ? q->Int(0) : -1;
}

}  // namespace

struct Similarity::Index {
  hnswlib::InnerProductSpace space{store::kFingerprintDims};
  std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;
  Signature sig;
  // Every fingerprint, for exact search and the label -> version map.
  std::vector<int64_t> ids;
  std::vector<int64_t> versions;
  std::vector<float> vectors;  // ids.size() * kFingerprintDims
  std::unordered_map<int64_t, size_t> slot;  // component id -> index in ids
};

namespace {

// Adds idx.ids[slots] to the graph in a fixed pseudo-random order, on every
// core (hnswlib's addPoint is thread-safe). The order matters: fine-tunes
// of one base have near-identical fingerprints, and inserted one after
// another each links mostly to its twins (the neighbour heuristic prunes
// outside links that lie as near the twin), leaving islands the search
// cannot reach: in catalog order recall@10 was 0.74 at ef 128 on the
// benchmark, shuffled 0.998.
void AddPoints(hnswlib::HierarchicalNSW<float>& hnsw, const std::vector<float>& vectors,
               const std::vector<int64_t>& ids, std::vector<size_t> slots) {
  std::mt19937_64 rng(0x5eed);
  std::shuffle(slots.begin(), slots.end(), rng);
  ThreadPool::Default().ParallelFor(slots.size(), [&](size_t i) {
    size_t s = slots[i];
    hnsw.addPoint(vectors.data() + s * store::kFingerprintDims, static_cast<hnswlib::labeltype>(ids[s]));
  });
}

}  // namespace

Similarity::Similarity(store::Store& store) : store_(store) {}

absl::StatusOr<sqlite3*> Similarity::Db() {
  if (!conn_) {
    ASSIGN_OR_RETURN(conn_, store_.OpenConnection());
  }
  return conn_.get();
}
Similarity::~Similarity() = default;

void Similarity::set_ef(int ef) {
  ef_ = std::max(ef, 1);
  if (index_ && index_->hnsw) index_->hnsw->setEf(static_cast<size_t>(ef_));
}

absl::StatusOr<bool> Similarity::Refresh() {
  ASSIGN_OR_RETURN(sqlite3 * db, Db());
  // data_version moves on another connection's commit, total_changes on
  // ours: when neither moved, the index is current without a count.
  int64_t dv = PragmaInt(db, "PRAGMA main.data_version");
  int64_t ch = sqlite3_total_changes64(db);
  if (index_ && dv == seen_data_version_ && ch == seen_changes_) return false;
  ASSIGN_OR_RETURN(Signature sig, CurrentSignature(db));
  seen_data_version_ = dv;
  seen_changes_ = ch;
  if (index_ && index_->sig == sig) return false;

  auto idx = std::make_unique<Index>();
  idx->sig = sig;
  ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(db,
      "SELECT e.component_id, c.version_id, e.vector FROM main.embedding e "
      "JOIN main.component c ON c.id = e.component_id WHERE e.kind = ? ORDER BY e.component_id"));
  q.Bind(1, store::kFingerprintKind);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(store::Fingerprint fp, store::FingerprintFromBlob(q.Blob(2)));
    idx->slot[q.Int(0)] = idx->ids.size();
    idx->ids.push_back(q.Int(0));
    idx->versions.push_back(q.Int(1));
    idx->vectors.insert(idx->vectors.end(), fp.begin(), fp.end());
  }
  // The join may drop rows whose component is gone; the signature is of the
  // embedding table, which is what the saved index is checked against.
  std::string dir = store_.index_dir();
  std::string path = dir + "/fingerprint.hnsw", meta = dir + "/fingerprint.meta";
  bool rebuilt = false;
  try {
    // Any saved index is brought up to date rather than rebuilt: ids are
    // never reused (v5 tombstones), so a label present in both is the same
    // fingerprint; labels gone from the catalog are marked deleted, new ones
    // added. A full build costs about a minute at 300,000 tensors, an
    // update after one ingest a fraction of a second.
    if (index_ && index_->hnsw) {
      idx->hnsw = std::move(index_->hnsw);  // the one in memory, if this object has one
      index_.reset();
    } else {
      std::ifstream m(meta);
      Signature saved;
      int dims = 0;
      if ((m >> saved.count >> saved.max_id >> dims) && dims == store::kFingerprintDims &&
          std::filesystem::exists(path))
        idx->hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(&idx->space, path);
    }
    if (idx->hnsw) {
      auto& h = *idx->hnsw;
      std::vector<size_t> fresh;
      for (size_t i = 0; i < idx->ids.size(); ++i)
        if (!h.label_lookup_.count(static_cast<hnswlib::labeltype>(idx->ids[i]))) fresh.push_back(i);
      // (Counted here: hnswlib 0.6 leaves num_deleted_ unset on load.)
      std::vector<hnswlib::labeltype> gone;
      size_t dead = 0;
      for (const auto& [label, internal] : h.label_lookup_) {
        if (h.isMarkedDeleted(internal)) ++dead;
        else if (!idx->slot.count(static_cast<int64_t>(label))) gone.push_back(label);
      }
      for (hnswlib::labeltype label : gone) h.markDelete(label);
      dead += gone.size();
      if (dead * 4 > h.cur_element_count) {
        idx->hnsw.reset();  // mostly dead weight: build afresh
      } else if (!fresh.empty() || !gone.empty()) {
        rebuilt = true;
        if (h.cur_element_count + fresh.size() > h.max_elements_)
          h.resizeIndex(std::max(h.cur_element_count + fresh.size(), h.max_elements_ * 5 / 4));
        AddPoints(h, idx->vectors, idx->ids, fresh);
      }
    }
    if (!idx->hnsw) {
      rebuilt = true;
      idx->hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(
          &idx->space, std::max<size_t>(idx->ids.size(), 1), kM, kEfConstruction);
      std::vector<size_t> all(idx->ids.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = i;
      AddPoints(*idx->hnsw, idx->vectors, idx->ids, all);
    }
    if (rebuilt) {
      // Saving is a cache: a read-only store directory only costs a rebuild.
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      if (!ec) {
        idx->hnsw->saveIndex(path + ".tmp");
        std::ofstream m(meta + ".tmp", std::ios::trunc);
        m << sig.count << ' ' << sig.max_id << ' ' << store::kFingerprintDims << '\n';
        m.close();
        std::filesystem::rename(path + ".tmp", path, ec);
        if (!ec) std::filesystem::rename(meta + ".tmp", meta, ec);
      }
    }
  } catch (const std::exception& e) {
    return absl::InternalError(fmt::format("fingerprint index under {}: {}", dir, e.what()));
  }
  idx->hnsw->setEf(static_cast<size_t>(ef_));
  index_ = std::move(idx);
  return rebuilt;
}

absl::StatusOr<std::vector<std::pair<int64_t, float>>> Similarity::Search(
    const store::Fingerprint& q, int k, bool exact) {
  RETURN_IF_ERROR(Refresh().status());
  std::vector<std::pair<int64_t, float>> out;
  if (k <= 0 || index_->ids.empty()) return out;
  if (exact) {
    const size_t n = index_->ids.size();
    std::vector<std::pair<float, int64_t>> all(n);
    for (size_t i = 0; i < n; ++i) {
      const float* v = index_->vectors.data() + i * store::kFingerprintDims;
      float dot = 0;
      for (int d = 0; d < store::kFingerprintDims; ++d) dot += v[d] * q[d];
      all[i] = {1.0f - dot, index_->ids[i]};
    }
    size_t kk = std::min<size_t>(static_cast<size_t>(k), n);
    std::partial_sort(all.begin(), all.begin() + static_cast<ptrdiff_t>(kk), all.end());
    for (size_t i = 0; i < kk; ++i) out.push_back({all[i].second, all[i].first});
    return out;
  }
  try {
    auto pq = index_->hnsw->searchKnn(q.data(), static_cast<size_t>(k));
    while (!pq.empty()) {
      out.push_back({static_cast<int64_t>(pq.top().second), pq.top().first});
      pq.pop();
    }
  } catch (const std::exception& e) {
    return absl::InternalError(fmt::format("fingerprint search: {}", e.what()));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

absl::StatusOr<store::Fingerprint> Similarity::FingerprintOf(int64_t tensor_id) {
  ASSIGN_OR_RETURN(sqlite3 * cat, Db());
  ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(cat,
      "SELECT c.kind, e.vector, c.dtype FROM main.component c LEFT JOIN main.embedding e "
      "ON e.component_id = c.id AND e.kind = ? WHERE c.id = ?"));
  q.Bind(1, store::kFingerprintKind).Bind(2, tensor_id);
  ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row) return absl::NotFoundError(fmt::format("no tensor with id {}", tensor_id));
  if (q.Text(0) != "tensor")
    return absl::InvalidArgumentError(fmt::format("component {} is a {}, not a tensor", tensor_id,
                                                  q.Text(0)));
  if (q.IsNull(1))
    return absl::NotFoundError(fmt::format(
        "tensor {} has no fingerprint (dtype {} cannot be decoded)", tensor_id, q.Text(2)));
  return store::FingerprintFromBlob(q.Blob(1));
}

absl::StatusOr<std::vector<TensorMatch>> Similarity::NearestTensors(int64_t tensor_id, int k) {
  ASSIGN_OR_RETURN(store::Fingerprint fp, FingerprintOf(tensor_id));
  ASSIGN_OR_RETURN(auto hits, Search(fp, k + 1));
  std::vector<TensorMatch> out;
  ASSIGN_OR_RETURN(sqlite3 * cat, Db());
  ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(cat,
      "SELECT m.name || '@' || v.number, c.name FROM main.component c "
      "JOIN main.version v ON v.id = c.version_id JOIN main.model m ON m.id = v.model_id "
      "WHERE c.id = ?"));
  for (const auto& [id, dist] : hits) {
    if (id == tensor_id || static_cast<int>(out.size()) >= k) continue;
    q.Bind(1, id);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) out.push_back({id, q.Text(0), q.Text(1), std::max(0.0, static_cast<double>(dist))});
    q.Reset();
  }
  return out;
}

absl::StatusOr<std::vector<VersionMatch>> Similarity::NearestVersions(int64_t version_id, int k) {
  RETURN_IF_ERROR(Refresh().status());
  std::vector<size_t> mine;
  for (size_t i = 0; i < index_->ids.size(); ++i)
    if (index_->versions[i] == version_id) mine.push_back(i);
  if (mine.empty())
    return absl::NotFoundError(fmt::format("version {} has no fingerprinted tensors", version_id));
  struct Acc {
    double sum = 0;
    uint64_t matched = 0;
  };
  std::unordered_map<int64_t, Acc> score;
  for (size_t i : mine) {
    store::Fingerprint q;
    std::copy_n(index_->vectors.data() + i * store::kFingerprintDims, store::kFingerprintDims,
                q.begin());
    ASSIGN_OR_RETURN(auto hits, Search(q, kVersionNeighbours));
    std::unordered_map<int64_t, double> best;  // version -> best cosine for this tensor
    for (const auto& [id, dist] : hits) {
      auto it = index_->slot.find(id);
      if (it == index_->slot.end()) continue;
      int64_t v = index_->versions[it->second];
      if (v == version_id) continue;
      double cos = 1.0 - dist;
      auto [b, fresh] = best.emplace(v, cos);
      if (!fresh) b->second = std::max(b->second, cos);
    }
    for (const auto& [v, cos] : best) {
      score[v].sum += cos;
      score[v].matched++;
    }
  }
  std::vector<VersionMatch> out;
  for (const auto& [v, a] : score)
    out.push_back({v, "", a.sum / static_cast<double>(mine.size()), a.matched});
  std::sort(out.begin(), out.end(), [](const VersionMatch& a, const VersionMatch& b) {
    return a.similarity != b.similarity ? a.similarity > b.similarity : a.version_id < b.version_id;
  });
  if (static_cast<int>(out.size()) > k) out.resize(static_cast<size_t>(std::max(k, 0)));
  ASSIGN_OR_RETURN(sqlite3 * cat, Db());
  ASSIGN_OR_RETURN(store::Stmt q, store::Stmt::Prepare(cat,
      "SELECT m.name || '@' || v.number FROM main.version v JOIN main.model m ON m.id = v.model_id "
      "WHERE v.id = ?"));
  for (VersionMatch& m : out) {
    q.Bind(1, m.version_id);
    ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) m.ref = q.Text(0);
    q.Reset();
  }
  return out;
}

}  // namespace hart::query
