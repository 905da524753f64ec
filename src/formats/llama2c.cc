// Reading llama2.c checkpoints and tokenizer files (see llama2c.h).
#include "formats/llama2c.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/status.h"
#include "fmt/format.h"
#include "fmt/ranges.h"

namespace hart::formats {
namespace {

namespace fs = std::filesystem;

// Bounds far above any llama2.c model that keep every product below 2^63.
constexpr int64_t kMaxDim = int64_t{1} << 16;
constexpr int64_t kMaxHidden = int64_t{1} << 18;
constexpr int64_t kMaxLayers = int64_t{1} << 10;
constexpr int64_t kMaxVocab = int64_t{1} << 22;
constexpr int64_t kMaxSeqLen = int64_t{1} << 22;
constexpr int32_t kMaxTokenLength = 1 << 16;
constexpr uint64_t kMaxTokenizerBytes = uint64_t{1} << 30;

constexpr const char* kFieldNames[7] = {"dim", "hidden_dim", "n_layers", "n_heads",
                                        "n_kv_heads", "vocab_size", "max_seq_len"};

int32_t LoadI32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

float LoadF32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

// One stacked array of the file: `per_layer` floats for each of `count`
// slices (layers, or 1 for the global tensors).
struct Array {
  const char* name;  // GGUF name, "{}" is the layer
  int64_t count;
  std::vector<int64_t> shape;
};

std::vector<Array> Arrays(const Llama2cHeader& h) {
  const int64_t L = h.n_layers, d = h.dim, f = h.hidden_dim, kv = h.kv_dim();
  std::vector<Array> a = {
      {"token_embd.weight", 1, {h.vocab_size, d}},
      {"blk.{}.attn_norm.weight", L, {d}},
      {"blk.{}.attn_q.weight", L, {d, d}},
      {"blk.{}.attn_k.weight", L, {kv, d}},
      {"blk.{}.attn_v.weight", L, {kv, d}},
      {"blk.{}.attn_output.weight", L, {d, d}},
      {"blk.{}.ffn_norm.weight", L, {d}},
      {"blk.{}.ffn_gate.weight", L, {f, d}},  // w1
      {"blk.{}.ffn_down.weight", L, {d, f}},  // w2
      {"blk.{}.ffn_up.weight", L, {f, d}},    // w3
      {"output_norm.weight", 1, {d}},
      {"freq_cis_real", 1, {h.max_seq_len, h.head_size() / 2}},
      {"freq_cis_imag", 1, {h.max_seq_len, h.head_size() / 2}},
  };
  if (!h.shared_classifier) a.push_back({"output.weight", 1, {h.vocab_size, d}});
  return a;
}

// Bytes the header implies (header included); the bounds above keep it
// far below 2^63.
uint64_t ImpliedSize(const Llama2cHeader& h) {
  uint64_t n = kLlama2cHeaderBytes;
  for (const Array& a : Arrays(h)) {
    uint64_t e = 4 * static_cast<uint64_t>(a.count);
    for (int64_t d : a.shape) e *= static_cast<uint64_t>(d);
    n += e;
  }
  return n;
}

}  // namespace

absl::StatusOr<Llama2cHeader> ParseLlama2cFields(std::span<const uint8_t> bytes, std::string_view name) {
  if (bytes.size() < kLlama2cHeaderBytes)
    return DataError(name, 0, "header", fmt::format("{} bytes, a llama2.c header is {}", bytes.size(),
                                                    kLlama2cHeaderBytes));
  int64_t v[7];
  for (int i = 0; i < 7; ++i) v[i] = LoadI32(bytes.data() + 4 * i);
  const int64_t bounds[7] = {kMaxDim, kMaxHidden, kMaxLayers, kMaxDim, kMaxDim, kMaxVocab, kMaxSeqLen};
  for (int i = 0; i < 7; ++i) {
    const int64_t x = i == 5 ? (v[i] < 0 ? -v[i] : v[i]) : v[i];
    if (x < 1 || x > bounds[i])
      return DataError(name, 4 * i, kFieldNames[i],
                       fmt::format("{} is out of range [1, {}]{}", v[i], bounds[i], i == 5 ? " (absolute value)" : ""));
  }
  Llama2cHeader h;
  h.dim = v[0];
  h.hidden_dim = v[1];
  h.n_layers = v[2];
  h.n_heads = v[3];
  h.n_kv_heads = v[4];
  h.shared_classifier = v[5] > 0;
  h.vocab_size = v[5] < 0 ? -v[5] : v[5];
  h.max_seq_len = v[6];
  if (h.dim % h.n_heads != 0)
    return DataError(name, 12, "n_heads", fmt::format("{} does not divide dim {}", h.n_heads, h.dim));
  if (h.head_size() % 2 != 0)
    return DataError(name, 12, "n_heads",
                     fmt::format("head size dim/n_heads = {} is odd (RoPE rotates pairs)", h.head_size()));
  if (h.n_kv_heads > h.n_heads || h.n_heads % h.n_kv_heads != 0)
    return DataError(name, 16, "n_kv_heads", fmt::format("{} does not divide n_heads {}", h.n_kv_heads, h.n_heads));
  return h;
}

absl::StatusOr<Llama2cHeader> ParseLlama2cHeader(std::span<const uint8_t> bytes, uint64_t file_size,
                                                 std::string_view name) {
  if (file_size < bytes.size()) bytes = bytes.first(file_size);
  ASSIGN_OR_RETURN(Llama2cHeader h, ParseLlama2cFields(bytes, name));
  const uint64_t want = ImpliedSize(h);
  if (want != file_size)
    return DataError(name, std::min(want, file_size), "header",
                     fmt::format("the llama2.c header (dim={} hidden_dim={} n_layers={} n_heads={} n_kv_heads={} "
                                 "vocab_size={} max_seq_len={}) describes {} bytes, the file has {}{}",
                                 h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads,
                                 h.shared_classifier ? h.vocab_size : -h.vocab_size, h.max_seq_len, want,
                                 file_size, file_size < want ? " (truncated?)" : ""));
  return h;
}

bool LooksLikeLlama2c(std::span<const uint8_t> head, uint64_t file_size) {
  return ParseLlama2cHeader(head, file_size, "").ok();
}

std::vector<TensorDesc> Llama2cTensors(const Llama2cHeader& h, uint32_t file_index) {
  std::vector<TensorDesc> out;
  uint64_t off = kLlama2cHeaderBytes;
  for (const Array& a : Arrays(h)) {
    Shape shape;
    uint64_t nbytes = 4;
    for (int64_t d : a.shape) {
      shape.push_back(static_cast<uint64_t>(d));
      nbytes *= static_cast<uint64_t>(d);
    }
    for (int64_t l = 0; l < a.count; ++l) {
      TensorDesc t;
      t.name = fmt::format(fmt::runtime(a.name), l);
      t.dtype = DType::kF32;
      t.shape = shape;
      t.file = file_index;
      t.offset = off;
      t.nbytes = nbytes;
      off += nbytes;
      out.push_back(std::move(t));
    }
  }
  return out;
}

absl::StatusOr<Llama2cVocab> ParseLlama2cTokenizer(std::span<const uint8_t> bytes, int64_t vocab_size,
                                                   std::string_view name) {
  Llama2cVocab v;
  if (bytes.size() < 4)
    return DataError(name, 0, "max_token_length", "the file ends before it");
  v.max_token_length = LoadI32(bytes.data());
  if (v.max_token_length < 1 || v.max_token_length > kMaxTokenLength)
    return DataError(name, 0, "max_token_length",
                     fmt::format("{} is out of range [1, {}]", v.max_token_length, kMaxTokenLength));
  uint64_t off = 4;
  v.tokens.reserve(static_cast<size_t>(std::min<int64_t>(vocab_size, int64_t{1} << 20)));
  for (int64_t i = 0; i < vocab_size; ++i) {
    if (bytes.size() - off < 8)
      return DataError(name, off, fmt::format("token {}", i),
                       fmt::format("the file ends after {} of {} tokens (the checkpoint's vocab_size)", i, vocab_size));
    const float score = LoadF32(bytes.data() + off);
    const int32_t len = LoadI32(bytes.data() + off + 4);
    if (!std::isfinite(score))
      return DataError(name, off, fmt::format("token {}: score", i), "not a finite number");
    if (len < 0 || len > v.max_token_length)
      return DataError(name, off + 4, fmt::format("token {}: length", i),
                       fmt::format("{} is out of range [0, max_token_length {}]", len, v.max_token_length));
    off += 8;
    if (bytes.size() - off < static_cast<uint64_t>(len))
      return DataError(name, off, fmt::format("token {}: bytes", i),
                       fmt::format("{} bytes run past the end of the file", len));
    v.scores.push_back(score);
    v.tokens.emplace_back(reinterpret_cast<const char*>(bytes.data() + off), static_cast<size_t>(len));
    off += static_cast<uint64_t>(len);
  }
  if (off != bytes.size())
    return DataError(name, off, "end",
                     fmt::format("{} bytes after the {} tokens the checkpoint's vocab_size names",
                                 bytes.size() - off, vocab_size));
  return v;
}

absl::StatusOr<std::string> FindLlama2cTokenizer(const std::string& checkpoint, int64_t vocab_size) {
  fs::path dir = fs::path(checkpoint).parent_path();
  if (dir.empty()) dir = ".";
  const std::string self = fs::path(checkpoint).filename().string();
  auto fits = [&](const fs::path& p) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec) || fs::file_size(p, ec) > kMaxTokenizerBytes || ec) return false;
    auto map = MappedFile::Open(p.string());
    return map.ok() && ParseLlama2cTokenizer((*map)->bytes(), vocab_size, p.string()).ok();
  };
  if (self != "tokenizer.bin" && fits(dir / "tokenizer.bin")) return (dir / "tokenizer.bin").string();
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n == self || n == "tokenizer.bin" || !n.starts_with("tok") || !n.ends_with(".bin")) continue;
    if (fits(e.path())) found.push_back(e.path().string());
  }
  std::sort(found.begin(), found.end());
  if (found.size() == 1) return found[0];
  if (found.size() > 1)
    return absl::InvalidArgumentError(fmt::format(
        "{}: several tokenizer files beside the llama2.c checkpoint fit its {} tokens ({}); name one with --tokenizer",
        checkpoint, vocab_size, fmt::join(found, ", ")));
  return absl::NotFoundError(fmt::format(
      "{}: a llama2.c checkpoint, but no tokenizer file of {} tokens beside it (looked for tokenizer.bin and "
      "tok*.bin); name one with --tokenizer",
      checkpoint, vocab_size));
}

absl::StatusOr<ModelSource> ReadLlama2c(const std::string& path, const std::string& tokenizer) {
  ASSIGN_OR_RETURN(auto map, MappedFile::Open(path));
  ASSIGN_OR_RETURN(Llama2cHeader h, ParseLlama2cHeader(map->bytes(), map->size(), path));
  std::string tok_path = tokenizer;
  if (tok_path.empty()) {
    ASSIGN_OR_RETURN(tok_path, FindLlama2cTokenizer(path, h.vocab_size));
  }
  ASSIGN_OR_RETURN(auto tok_map, MappedFile::Open(tok_path));
  if (tok_map->size() > kMaxTokenizerBytes)
    return DataError(tok_path, 0, "size", fmt::format("{} bytes is not a tokenizer file", tok_map->size()));
  ASSIGN_OR_RETURN(Llama2cVocab vocab, ParseLlama2cTokenizer(tok_map->bytes(), h.vocab_size, tok_path));

  ModelSource src;
  src.format = Format::kLlama2c;
  src.path = path;
  const fs::path p(path);
  src.name_hint = p.stem().string();
  src.architecture = "llama";
  SourceFile f;
  f.name = p.filename().string();
  f.map = std::move(map);
  src.tensors = Llama2cTensors(h, 0);
  f.layout.push_back({0, kLlama2cHeaderBytes, -1});
  for (size_t i = 0; i < src.tensors.size(); ++i)
    f.layout.push_back({src.tensors[i].offset, src.tensors[i].nbytes, static_cast<int64_t>(i)});
  src.files.push_back(std::move(f));

  SourceFile t;
  t.name = fs::path(tok_path).filename().string();
  if (t.name == src.files[0].name)
    return absl::InvalidArgumentError(
        fmt::format("{}: the tokenizer file has the checkpoint's own name {}; rename one", tok_path, t.name));
  if (tok_map->size() > 0) t.layout.push_back({0, tok_map->size(), -1});
  t.map = std::move(tok_map);
  src.metadata["llama2c"] = {
      {"dim", h.dim},
      {"hidden_dim", h.hidden_dim},
      {"n_layers", h.n_layers},
      {"n_heads", h.n_heads},
      {"n_kv_heads", h.n_kv_heads},
      {"vocab_size", h.vocab_size},
      {"shared_classifier", h.shared_classifier},
      {"max_seq_len", h.max_seq_len},
  };
  src.metadata["tokenizer"] = {{"file", t.name},
                               {"max_token_length", vocab.max_token_length},
                               {"tokens", static_cast<int64_t>(vocab.tokens.size())}};
  src.files.push_back(std::move(t));
  RETURN_IF_ERROR(ValidateSource(src));
  return src;
}

}  // namespace hart::formats
