// FileWeightSource: weights straight from a .gguf file or a safetensors
// checkpoint, mapped for zero-copy use and read with pread for the streamer.
#include "runtime/weight_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/file_util.h"
#include "core/status.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "core/mapped_file.h"

namespace hart::runtime {

const WeightInfo* WeightSource::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors()[it->second];
}

namespace {

uint64_t ValueHeapBytes(const formats::GgufValue& v) {
  if (const auto* s = std::get_if<std::string>(&v.value))
    return s->capacity() > std::string().capacity() ? s->capacity() + 1 : 0;
  const auto* a = std::get_if<formats::GgufArray>(&v.value);
  if (a == nullptr) return 0;
  uint64_t n = a->items.capacity() * sizeof(formats::GgufValue);
  for (const auto& item : a->items) n += ValueHeapBytes(item);
  return n;
}

}  // namespace

uint64_t GgufMetadataBytes(const formats::GgufMetadata& md) {
  uint64_t n = md.entries.capacity() * sizeof(formats::GgufKV);
  for (const auto& kv : md.entries) {
    if (kv.key.capacity() > std::string().capacity()) n += kv.key.capacity() + 1;
    n += ValueHeapBytes(kv.value);
  }
  return n;
}

uint64_t EraseTokenizerArrays(formats::GgufMetadata* md) {
  const uint64_t before = GgufMetadataBytes(*md);
  std::erase_if(md->entries, [](const formats::GgufKV& kv) {
    return std::find(std::begin(kTokenizerArrayKeys), std::end(kTokenizerArrayKeys), kv.key) !=
           std::end(kTokenizerArrayKeys);
  });
  const uint64_t after = GgufMetadataBytes(*md);
  return before > after ? before - after : 0;
}

const nlohmann::json& WeightSource::metadata() const {
  static const nlohmann::json kNull;
  return kNull;
}

void WeightSource::Index() {
  by_name_.clear();
  const auto& ts = tensors();
  for (size_t i = 0; i < ts.size(); ++i) by_name_.emplace(ts[i].name, i);
}

absl::StatusOr<BufferPlan> WeightSource::PlanBuffer(std::span<const WeightPiece> pieces, uint64_t max_op) {
  BufferPlan plan;
  uint64_t at = 0;
  for (const WeightPiece& p : pieces) {
    plan.piece_at.push_back(at);
    for (uint64_t c = 0; c < p.nbytes; c += max_op)
      plan.ops.push_back({0, p.info, 0, p.offset + c, std::min(max_op, p.nbytes - c), at + c});
    at += (p.nbytes + 63) / 64 * 64;
  }
  plan.bytes = (at + BufferPlan::kBufferAlign - 1) / BufferPlan::kBufferAlign * BufferPlan::kBufferAlign;
  return plan;
}

absl::Status WeightSource::RunOp(const BufferPlan::Op& op, uint8_t* base, bool drop_cache) {
  absl::Status st = Read(*op.info, op.offset, std::span<uint8_t>(base + op.at, op.size));
  if (drop_cache) Release(*op.info, op.offset, op.size, true);
  return st;
}


namespace {

namespace fs = std::filesystem;

// A file that is no GGUF or safetensors and whose first bytes are a
// plausible llama2.c header (ReadLlama2c then checks the size).
bool IsLlama2c(const std::string& path) {
  if (path.ends_with(".gguf") || path.ends_with(".safetensors") || path.ends_with(".json")) return false;
  auto fd = OpenFile(path, O_RDONLY | O_CLOEXEC);
  if (!fd.ok()) return false;
  uint8_t head[formats::kLlama2cHeaderBytes];
  if (!PReadAll(fd->get(), head, 0, path).ok()) return false;
  return formats::ParseLlama2cFields(head, path).ok();
}

class FileWeightSource final : public WeightSource {
 public:
  static absl::StatusOr<std::unique_ptr<WeightSource>> Open(const std::string& path, const std::string& tokenizer) {
    auto src = std::unique_ptr<FileWeightSource>(new FileWeightSource());
    src->origin_ = path;
    std::string target = path;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      src->dir_ = path;
      target.clear();
      for (const char* name : {"model.safetensors.index.json", "model.safetensors"})
        if (fs::exists(fs::path(path) / name, ec)) { target = (fs::path(path) / name).string(); break; }
      if (target.empty())
        for (const auto& e : fs::directory_iterator(path, ec)) {
          auto n = e.path().filename().string();
          if (n.ends_with(".gguf") || n.ends_with(".safetensors")) { target = e.path().string(); break; }
        }
      if (target.empty())
        return absl::NotFoundError(fmt::format("{}: no .gguf or .safetensors model in the directory", path));
    } else {
      src->dir_ = fs::path(path).parent_path().string();
      if (src->dir_.empty()) src->dir_ = ".";
    }
    if (!tokenizer.empty() || IsLlama2c(target)) {
      ASSIGN_OR_RETURN(src->model_, formats::ReadLlama2c(target, tokenizer));
    } else if (target.ends_with(".gguf")) {
      ASSIGN_OR_RETURN(src->model_, formats::ReadGguf(target));
      const auto& f0 = src->model_.files.at(0);
      ASSIGN_OR_RETURN(auto header, formats::ParseGgufHeader(f0.map->bytes(), f0.map->size(), target));
      src->gguf_ = std::move(header.metadata);
      src->is_gguf_ = true;
    } else {
      ASSIGN_OR_RETURN(src->model_, formats::ReadSafetensors(target));
    }
    for (const auto& t : src->model_.tensors)
      src->infos_.push_back(WeightInfo{t.name, t.dtype, t.shape, t.nbytes});
    for (const auto& f : src->model_.files) {
      auto fd = OpenFile(f.map->path(), O_RDONLY | O_CLOEXEC);
      src->fds_.push_back(fd.ok() ? std::move(*fd) : Fd());
    }
    src->Index();
    return std::unique_ptr<WeightSource>(std::move(src));
  }

  const std::string& origin() const override { return origin_; }
  const std::vector<WeightInfo>& tensors() const override { return infos_; }
  const formats::GgufMetadata* gguf_metadata() const override { return is_gguf_ ? &gguf_ : nullptr; }
  uint64_t ReleaseTokenizerArrays() override { return is_gguf_ ? EraseTokenizerArrays(&gguf_) : 0; }

  std::optional<formats::Format> format() const override { return model_.format; }
  const nlohmann::json& metadata() const override { return model_.metadata; }

  absl::StatusOr<ModelConfig> Config() const override {
    if (is_gguf_) return ConfigFromGguf(gguf_, origin_);
    if (model_.format == formats::Format::kLlama2c) return ConfigFromLlama2c(model_.metadata, origin_);
    const auto& md = model_.metadata;
    if (md.is_object() && md.contains("config") && md["config"].is_object())
      return ConfigFromHf(md["config"], origin_);
    ASSIGN_OR_RETURN(std::string text, ReadCompanionFile("config.json"));
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::InvalidArgumentError(fmt::format("{}: config.json: not valid JSON", dir_));
    return ConfigFromHf(j, origin_);
  }

  absl::StatusOr<std::string> ReadCompanionFile(const std::string& name) const override {
    // A llama2.c tokenizer may come from anywhere (--tokenizer): the source's own file.
    for (const auto& f : model_.files)
      if (model_.format == formats::Format::kLlama2c && f.name == name)
        return std::string(reinterpret_cast<const char*>(f.map->bytes().data()), f.map->size());
    auto p = fs::path(dir_) / name;
    std::error_code ec;
    if (!fs::exists(p, ec)) return absl::NotFoundError(fmt::format("{}: no {}", dir_, name));
    return ReadFile(p.string());
  }

  absl::StatusOr<std::span<const uint8_t>> Map(const WeightInfo& t) override {
    return model_.TensorBytes(IndexOf(t));
  }

  absl::Status Read(const WeightInfo& t, uint64_t offset, std::span<uint8_t> out) override {
    size_t i = IndexOf(t);
    const auto& d = model_.tensors[i];
    if (offset + out.size() > d.nbytes)
      return absl::OutOfRangeError(fmt::format("{}: {}: read past the tensor's end", origin_, t.name));
    if (d.owned || !fds_[d.file].valid()) {
      std::memcpy(out.data(), model_.TensorBytes(i).data() + offset, out.size());
      return absl::OkStatus();
    }
    return PReadAll(fds_[d.file].get(), out, d.offset + offset, model_.files[d.file].map->path());
  }

  void Prefetch(const WeightInfo& t, uint64_t offset, uint64_t n) override {
    const auto& d = model_.tensors[IndexOf(t)];
    if (!d.owned && fds_[d.file].valid())
      ::posix_fadvise(fds_[d.file].get(), static_cast<off_t>(d.offset + offset), static_cast<off_t>(n),
                      POSIX_FADV_WILLNEED);
  }

  void Release(const WeightInfo& t, uint64_t offset, uint64_t n, bool drop_cache) override {
    const auto& d = model_.tensors[IndexOf(t)];
    if (d.owned) return;
    if (drop_cache && fds_[d.file].valid())
      ::posix_fadvise(fds_[d.file].get(), static_cast<off_t>(d.offset + offset), static_cast<off_t>(n),
                      POSIX_FADV_DONTNEED);
  }

  void DropPageCache() override {
    for (size_t f = 0; f < fds_.size(); ++f) {
      AdviseRange(model_.files[f].map->bytes().data(), model_.files[f].map->size(), MADV_DONTNEED);
      if (fds_[f].valid()) ::posix_fadvise(fds_[f].get(), 0, 0, POSIX_FADV_DONTNEED);
    }
  }

 private:
  FileWeightSource() = default;
  size_t IndexOf(const WeightInfo& t) const { return static_cast<size_t>(&t - infos_.data()); }

  std::string origin_, dir_;
  formats::ModelSource model_;
  formats::GgufMetadata gguf_;
  bool is_gguf_ = false;
  std::vector<WeightInfo> infos_;  // parallel to model_.tensors
  std::vector<Fd> fds_;            // parallel to model_.files
};

}  // namespace

absl::StatusOr<std::unique_ptr<WeightSource>> OpenFileWeights(const std::string& path, const std::string& tokenizer) {
  return FileWeightSource::Open(path, tokenizer);
}

}  // namespace hart::runtime
