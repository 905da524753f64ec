// StoreWeightSource: weights of a NinaDB version. Fully resident, tensors
// are mapped from the packs (zero-copy where their chunks lie back to back).
// Streamed, nothing is mapped: the streamer's buffers are filled through a
// store::ExtentReader, O_DIRECT reads of the located pack extents straight
// into the buffer (PlanBuffer places each run at its pack alignment), so
// streamed bytes pass neither the page cache nor this process's maps.
#include <algorithm>
#include <mutex>
#include <tuple>

#include "core/file_util.h"
#include "core/status.h"
#include "runtime/weight_source.h"
#include "core/mapped_file.h"
#include "runtime/kernels.h"
#include "runtime/resident_cache.h"
#include "store/store.h"

namespace hart::runtime {
namespace {

class StoreWeightSource final : public WeightSource {
 public:
  static absl::StatusOr<std::unique_ptr<WeightSource>> Open(std::shared_ptr<store::Store> st,
                                                            const std::string& ref_text,
                                                            const StoreWeightOptions& opts) {
    auto src = std::unique_ptr<StoreWeightSource>(new StoreWeightSource());
    src->store_ = std::move(st);
    ASSIGN_OR_RETURN(auto ref, store::ParseVersionRef(ref_text));
    ASSIGN_OR_RETURN(src->version_, src->store_->Resolve(ref));
    src->origin_ = src->version_.ref();
    ASSIGN_OR_RETURN(auto rows, src->store_->ListTensors(src->version_.id));
    for (auto& r : rows) {
      src->infos_.push_back(WeightInfo{r.name, r.dtype, r.shape, r.nbytes});
      src->digests_.push_back(std::move(r.sha256));
    }
    src->bytes_.resize(src->infos_.size());
    src->cache_ = opts.cache;
    store::ExtentReaderOptions ro;
    ro.direct = opts.direct_io;
    if (opts.on_evict) ro.on_evict = [f = opts.on_evict](const store::Extent& e) { f(e.pack, e.offset, e.size); };
    src->reader_ = src->store_->OpenExtentReader(std::move(ro));
    for (const auto& t : src->infos_) {
      ASSIGN_OR_RETURN(auto ext, src->store_->LocateTensor(src->version_.id, t.name));
      for (const auto& e : ext) {
        // Opened now: a gc later cannot swap the files under the located offsets.
        RETURN_IF_ERROR(src->reader_->Prepare(e.pack));
        src->direct_ = src->direct_ || src->reader_->Direct(e.pack);
      }
      src->extents_.push_back(std::move(ext));
    }
    ASSIGN_OR_RETURN(src->files_, src->store_->ListFiles(src->version_.id));
    if (src->version_.format == formats::Format::kGguf) RETURN_IF_ERROR(src->LoadGgufHeader());
    src->Index();
    return std::unique_ptr<WeightSource>(std::move(src));
  }

  const std::string& origin() const override { return origin_; }
  const std::vector<WeightInfo>& tensors() const override { return infos_; }
  const formats::GgufMetadata* gguf_metadata() const override { return is_gguf_ ? &gguf_ : nullptr; }
  uint64_t ReleaseTokenizerArrays() override { return is_gguf_ ? EraseTokenizerArrays(&gguf_) : 0; }

  std::optional<formats::Format> format() const override { return version_.format; }
  const nlohmann::json& metadata() const override { return version_.metadata; }

  absl::StatusOr<ModelConfig> Config() const override {
    if (is_gguf_) return ConfigFromGguf(gguf_, origin_);
    const auto& md = version_.metadata;
    if (version_.format == formats::Format::kLlama2c) return ConfigFromLlama2c(md, origin_);
    if (md.is_object() && md.contains("config") && md["config"].is_object())
      return ConfigFromHf(md["config"], origin_);
    if (md.is_object() && md.contains("hidden_size")) return ConfigFromHf(md, origin_);
    ASSIGN_OR_RETURN(std::string text, ReadCompanionFile("config.json"));
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded())
      return absl::InvalidArgumentError(fmt::format("{}: config.json: not valid JSON", origin_));
    return ConfigFromHf(j, origin_);
  }

  absl::StatusOr<std::string> ReadCompanionFile(const std::string& name) const override {
    for (const auto& f : files_) {
      if (f.name != name && !f.name.ends_with("/" + name)) continue;
      std::string out(f.size, '\0');
      RETURN_IF_ERROR(store_->ReadFileRange(
          version_.id, f.index, 0,
          std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size())));
      return out;
    }
    return absl::NotFoundError(fmt::format("{}: no file {} in the version", origin_, name));
  }

  // Everything-mapped mode: zero-copy spans of the pack maps; with a cache,
  // the one resident copy of the tensor's digest.
  absl::StatusOr<std::span<const uint8_t>> Map(const WeightInfo& t) override {
    size_t i = IndexOf(t);
    std::lock_guard<std::mutex> l(mu_);
    if (cache_ != nullptr && !digests_[i].empty() && t.nbytes > 0) {
      const bool packed = Packs(t);
      const std::string key = ResidentKey(digests_[i], packed);
      auto it = held_.find(key);
      if (it == held_.end()) {
        ASSIGN_OR_RETURN(auto h, cache_->Get(key, t.nbytes, [&]() -> absl::StatusOr<store::TensorBytes> {
          ASSIGN_OR_RETURN(auto tb, store_->ReadTensor(version_.id, t.name));
          if (!packed || tb.bytes().size() != t.nbytes) return tb;
          // One packed copy for every model that shares the digest, made
          // once at load: the pack map's pages are not ours to rewrite.
          std::vector<uint8_t> buf(tb.bytes().begin(), tb.bytes().end());
          // The pages the copy faulted in leave RSS again (the page cache
          // keeps them), so RSS counts the tensor once.
          if (tb.zero_copy()) Unpopulate(tb.bytes());
          PackRows(t.dtype, static_cast<int64_t>(t.shape[1]), buf.data(), static_cast<int64_t>(t.shape[0]));
          return store::TensorBytes::Owned(std::move(buf));
        }));
        it = held_.emplace(key, std::move(h)).first;
      }
      return it->second->bytes.bytes();
    }
    if (!bytes_[i]) {
      ASSIGN_OR_RETURN(auto tb, store_->ReadTensor(version_.id, t.name));
      if (tb.bytes().size() != t.nbytes)
        return absl::DataLossError(fmt::format("{}: {}: the store returned {} bytes, the catalog says {}",
                                               origin_, t.name, tb.bytes().size(), t.nbytes));
      bytes_[i] = std::make_unique<store::TensorBytes>(std::move(tb));
    }
    return bytes_[i]->bytes();
  }

  // Copies through the extent reader (direct into a bounce buffer): no map,
  // nothing left resident or cached. Safe from several threads at once.
  absl::Status Read(const WeightInfo& t, uint64_t offset, std::span<uint8_t> out) override {
    ASSIGN_OR_RETURN(auto parts, Slice(t, offset, out.size()));
    uint64_t done = 0;
    for (const store::Extent& e : parts) {
      RETURN_IF_ERROR(Named(t, reader_->ReadCopy(e, out.subspan(done, e.size))));
      done += e.size;
    }
    return absl::OkStatus();
  }

  // Evicts only what this source read through the page cache (nothing when
  // its reads are direct), within the given range.
  void Release(const WeightInfo& t, uint64_t offset, uint64_t n, bool drop_cache) override {
    if (!drop_cache) return;
    auto parts = Slice(t, offset, n);
    if (parts.ok())
      for (const store::Extent& e : *parts) reader_->Evict(e);
  }

  // The version's own tensor bytes, nothing else of the store.
  void DropPageCache() override {
    for (const auto& ext : extents_)
      for (const store::Extent& e : ext) reader_->Evict(e, /*force=*/true);
  }

  bool direct_io() const override { return direct_; }

  bool MapPacked(const WeightInfo& t) const override {
    const size_t i = IndexOf(t);
    return cache_ != nullptr && !digests_[i].empty() && t.nbytes > 0 && Packs(t);
  }

  bool resident_cached() const override { return cache_ != nullptr; }
  // use_count counts holders: each source keeps one handle per digest.
  ResidentUsage resident_usage() const override {
    std::lock_guard<std::mutex> l(mu_);
    ResidentUsage u;
    for (const auto& [d, h] : held_) {
      u.bytes += h->nbytes;
      u.tensors++;
      if (h.use_count() > 1) u.shared_bytes += h->nbytes;
    }
    return u;
  }
  // Direct reads have no kernel readahead behind them: each op is one
  // device request, so they are cut larger than buffered ones. On the
  // 1B-shaped Q8_0 at a 25% budget (a loaded machine, interleaved runs),
  // 8 x 4-8 MiB gave 1.1-1.9 tok/s against 1.1-1.3 for 8 x 1 MiB.
  uint64_t preferred_read_op() const override { return direct_ ? uint64_t{4} << 20 : 0; }

  // Pieces with one extent each are sorted by pack offset and merged into
  // runs where they lie at most one block apart (a layer's tensors follow
  // each other in the pack: ingest writes them in file order). A run lands
  // in the buffer at its pack offset's alignment, so its ops read the
  // aligned superset in place. Pieces whose bytes are split over several
  // extents (dedup with another version, a pack boundary) get a region of
  // their own filled through a bounce buffer.
  absl::StatusOr<BufferPlan> PlanBuffer(std::span<const WeightPiece> pieces, uint64_t max_op) override {
    constexpr uint64_t kA = BufferPlan::kBufferAlign;
    auto down = [](uint64_t x) { return x / kA * kA; };
    auto up = [](uint64_t x) { return (x + kA - 1) / kA * kA; };
    BufferPlan plan;
    plan.piece_at.assign(pieces.size(), 0);
    std::vector<std::vector<store::Extent>> parts(pieces.size());
    std::vector<size_t> single;
    for (size_t i = 0; i < pieces.size(); ++i) {
      ASSIGN_OR_RETURN(parts[i], Slice(*pieces[i].info, pieces[i].offset, pieces[i].nbytes));
      if (parts[i].size() == 1) single.push_back(i);
    }
    std::sort(single.begin(), single.end(), [&](size_t a, size_t b) {
      const auto &x = parts[a][0], &y = parts[b][0];
      return std::tie(x.pack, x.offset) < std::tie(y.pack, y.offset);
    });
    uint64_t end = 0;  // of the buffer so far
    for (size_t k = 0; k < single.size();) {
      const store::Extent& first = parts[single[k]][0];
      const uint64_t run0 = first.offset;
      uint64_t run1 = first.offset + first.size;
      size_t k1 = k + 1;
      while (k1 < single.size()) {
        const store::Extent& e = parts[single[k1]][0];
        if (e.pack != first.pack || e.offset > run1 + kA) break;
        run1 = std::max(run1, e.offset + e.size);
        ++k1;
      }
      // Buffer byte b + (x - down(run0)) holds pack byte x.
      const uint64_t b = up(end);
      for (size_t j = k; j < k1; ++j) plan.piece_at[single[j]] = b + (parts[single[j]][0].offset - down(run0));
      for (uint64_t c = down(run0); c < run1; c += max_op) {
        const uint64_t o0 = std::max(c, run0), o1 = std::min(c + max_op, run1);
        plan.ops.push_back({kInPlace, nullptr, first.pack, o0, o1 - o0, b + (o0 - down(run0))});
      }
      end = b + (up(run1) - down(run0));
      k = k1;
    }
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (parts[i].size() == 1 || pieces[i].nbytes == 0) continue;
      const uint64_t b = up(end);
      plan.piece_at[i] = b;
      uint64_t at = b;
      for (const store::Extent& e : parts[i])
        for (uint64_t c = 0; c < e.size; c += store::ExtentReader::kBounce) {
          const uint64_t n = std::min(store::ExtentReader::kBounce, e.size - c);
          plan.ops.push_back({kCopy, nullptr, e.pack, e.offset + c, n, at});
          at += n;
        }
      end = at;
    }
    plan.bytes = up(end);
    return plan;
  }

  absl::Status RunOp(const BufferPlan::Op& op, uint8_t* base, bool drop_cache) override {
    const store::Extent e{op.file, op.offset, op.size};
    absl::Status st = op.kind == kInPlace ? reader_->ReadInPlace(e, base + op.at)
                                          : reader_->ReadCopy(e, {base + op.at, op.size});
    if (drop_cache) reader_->Evict(e);
    if (!st.ok()) return absl::Status(st.code(), fmt::format("{}: {}", origin_, std::string(st.message())));
    return st;
  }

 private:
  StoreWeightSource() = default;
  size_t IndexOf(const WeightInfo& t) const { return static_cast<size_t>(&t - infos_.data()); }
  // Whether the cache holds t packed: a matrix of a type whose packed rows
  // the kernels read faster.
  static bool Packs(const WeightInfo& t) {
    return t.shape.size() == 2 && PackedLayoutHelps(t.dtype, static_cast<int64_t>(t.shape[1]));
  }
  static constexpr int kInPlace = 1, kCopy = 2;

  absl::Status Named(const WeightInfo& t, absl::Status st) const {
    if (st.ok()) return st;
    return absl::Status(st.code(), fmt::format("{}: {}: {}", origin_, t.name, std::string(st.message())));
  }

  // The extents holding bytes [offset, offset + n) of tensor t.
  absl::StatusOr<std::vector<store::Extent>> Slice(const WeightInfo& t, uint64_t offset, uint64_t n) const {
    if (offset > t.nbytes || n > t.nbytes - offset)
      return absl::OutOfRangeError(fmt::format("{}: {}: read past the tensor's end", origin_, t.name));
    std::vector<store::Extent> out;
    uint64_t pos = 0;
    for (const store::Extent& e : extents_[IndexOf(t)]) {
      const uint64_t e1 = pos + e.size;
      const uint64_t lo = std::max(pos, offset), hi = std::min(e1, offset + n);
      if (lo < hi) out.push_back({e.pack, e.offset + (lo - pos), hi - lo});
      pos = e1;
    }
    return out;
  }

  // The GGUF header (metadata with full tokenizer arrays) is the first bytes
  // of the version's original file; read growing prefixes until it parses.
  absl::Status LoadGgufHeader() {
    if (files_.empty()) return absl::DataLossError(fmt::format("{}: a GGUF version without files", origin_));
    const auto& f = files_[0];
    absl::Status last;
    for (uint64_t n = uint64_t{1} << 20;; n *= 4) {
      uint64_t len = std::min(n, f.size);
      std::vector<uint8_t> buf(len);
      RETURN_IF_ERROR(store_->ReadFileRange(version_.id, f.index, 0, buf));
      auto h = formats::ParseGgufHeader(buf, f.size, fmt::format("{}:{}", origin_, f.name));
      if (h.ok()) {
        gguf_ = std::move(h->metadata);
        is_gguf_ = true;
        return absl::OkStatus();
      }
      last = h.status();
      if (len == f.size) return last;
    }
  }

  std::shared_ptr<store::Store> store_;
  store::VersionRow version_;
  std::string origin_;
  std::vector<store::FileRow> files_;
  formats::GgufMetadata gguf_;
  bool is_gguf_ = false;
  std::vector<WeightInfo> infos_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<store::TensorBytes>> bytes_;  // parallel to infos_, when mapped
  std::vector<std::string> digests_;                        // parallel to infos_ (hex)
  std::shared_ptr<ResidentCache> cache_;
  std::map<std::string, std::shared_ptr<const ResidentTensor>> held_;  // by digest, when cached
  std::vector<std::vector<store::Extent>> extents_;         // parallel to infos_
  std::unique_ptr<store::ExtentReader> reader_;
  bool direct_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WeightSource>> OpenStoreWeights(std::shared_ptr<store::Store> store,
                                                               const std::string& ref,
                                                               const StoreWeightOptions& opts) {
  return StoreWeightSource::Open(std::move(store), ref, opts);
}

}  // namespace hart::runtime
