// StoreWeightSource: weights of a NinaDB version. Tensors whose chunks lie
// contiguously in a pack are mapped zero-copy; Read() copies out of that
// mapping and unmaps the touched pages again, so streamed bytes never stay
// in this process's resident set.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <mutex>

#include "core/file_util.h"
#include "core/status.h"
#include "runtime/weight_source.h"
#include "core/mapped_file.h"
#include "store/store.h"

namespace hart::runtime {
namespace {

class StoreWeightSource final : public WeightSource {
 public:
  static absl::StatusOr<std::unique_ptr<WeightSource>> Open(std::shared_ptr<store::Store> st,
                                                            const std::string& ref_text) {
    auto src = std::unique_ptr<StoreWeightSource>(new StoreWeightSource());
    src->store_ = std::move(st);
    ASSIGN_OR_RETURN(auto ref, store::ParseVersionRef(ref_text));
    ASSIGN_OR_RETURN(src->version_, src->store_->Resolve(ref));
    src->origin_ = src->version_.ref();
    ASSIGN_OR_RETURN(auto rows, src->store_->ListTensors(src->version_.id));
    for (auto& r : rows) {
      src->infos_.push_back(WeightInfo{r.name, r.dtype, r.shape, r.nbytes});
      src->contiguous_.push_back(r.contiguous);
    }
    src->bytes_.resize(src->infos_.size());
    ASSIGN_OR_RETURN(src->files_, src->store_->ListFiles(src->version_.id));
    if (src->version_.format == formats::Format::kGguf) RETURN_IF_ERROR(src->LoadGgufHeader());
    src->Index();
    return std::unique_ptr<WeightSource>(std::move(src));
  }

  const std::string& origin() const override { return origin_; }
  const std::vector<WeightInfo>& tensors() const override { return infos_; }
  const formats::GgufMetadata* gguf_metadata() const override { return is_gguf_ ? &gguf_ : nullptr; }

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

  absl::StatusOr<std::span<const uint8_t>> Map(const WeightInfo& t) override {
    size_t i = IndexOf(t);
    std::lock_guard<std::mutex> l(mu_);
    if (!bytes_[i]) {
      ASSIGN_OR_RETURN(auto tb, store_->ReadTensor(version_.id, t.name));
      if (tb.bytes().size() != t.nbytes)
        return absl::DataLossError(fmt::format("{}: {}: the store returned {} bytes, the catalog says {}",
                                               origin_, t.name, tb.bytes().size(), t.nbytes));
      bytes_[i] = std::make_unique<store::TensorBytes>(std::move(tb));
    }
    return bytes_[i]->bytes();
  }

  // Safe from several threads at once (the streamer reads a group in
  // chunks): a contiguous tensor's mapping is never dropped once made; an
  // assembled one is rebuilt and dropped per call, one call at a time, so it
  // never stays resident beside the streamer's buffers.
  absl::Status Read(const WeightInfo& t, uint64_t offset, std::span<uint8_t> out) override {
    const size_t i = IndexOf(t);
    std::unique_lock<std::mutex> assembling(assemble_mu_, std::defer_lock);
    if (!contiguous_[i]) assembling.lock();
    ASSIGN_OR_RETURN(auto span, Map(t));
    if (offset + out.size() > span.size())
      return absl::OutOfRangeError(fmt::format("{}: {}: read past the tensor's end", origin_, t.name));
    const uint8_t* p = span.data() + offset;
    AdviseRange(p, out.size(), MADV_WILLNEED);
    std::memcpy(out.data(), p, out.size());
    std::lock_guard<std::mutex> l(mu_);
    auto& tb = bytes_[i];
    if (tb->zero_copy()) {
      AdviseRange(p, out.size(), MADV_DONTNEED);
    } else if (!contiguous_[i]) {
      tb.reset();  // an assembled copy would hold the whole tensor resident
    }
    return absl::OkStatus();
  }

  void Prefetch(const WeightInfo& t, uint64_t offset, uint64_t n) override {
    if (!contiguous_[IndexOf(t)]) return;  // assembling it here would keep it resident
    auto span = Map(t);
    if (span.ok() && offset + n <= span->size()) AdviseRange(span->data() + offset, n, MADV_WILLNEED);
  }

  // Packs hold many versions' chunks; evicting whole pack files is coarse but
  // only pages this process copied into owned buffers were cached by it.
  void Release(const WeightInfo& t, uint64_t offset, uint64_t n, bool drop_cache) override {
    if (drop_cache) DropPageCache();
  }

  void DropPageCache() override {
    std::lock_guard<std::mutex> l(mu_);
    if (pack_fds_.empty()) {
      std::string dir = store_->dir() + "/packs";
      if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
          std::string n = e->d_name;
          if (!n.ends_with(".pack")) continue;
          auto fd = OpenFile(dir + "/" + n, O_RDONLY | O_CLOEXEC);
          if (fd.ok()) pack_fds_.push_back(std::move(*fd));
        }
        ::closedir(d);
      }
    }
    for (auto& fd : pack_fds_) ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
  }

 private:
  StoreWeightSource() = default;
  size_t IndexOf(const WeightInfo& t) const { return static_cast<size_t>(&t - infos_.data()); }

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
  std::vector<bool> contiguous_;  // parallel to infos_: readable zero-copy
  std::mutex mu_;
  std::mutex assemble_mu_;  // one assembled (non-contiguous) tensor at a time
  std::vector<std::unique_ptr<store::TensorBytes>> bytes_;  // parallel to infos_
  std::vector<Fd> pack_fds_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WeightSource>> OpenStoreWeights(std::shared_ptr<store::Store> store,
                                                               const std::string& ref) {
  return StoreWeightSource::Open(std::move(store), ref);
}

}  // namespace hart::runtime
