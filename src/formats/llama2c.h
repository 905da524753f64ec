// llama2.c checkpoints (Karpathy's run.c format) and their tokenizer files.
//
// A checkpoint has no magic: seven little-endian int32 (dim, hidden_dim,
// n_layers, n_heads, n_kv_heads, vocab_size, max_seq_len; a negative
// vocab_size means the classifier is stored apart from the embedding), then
// float32 weights: token_embedding [vocab, dim], rms_att [layers, dim],
// wq [layers, dim, dim], wk and wv [layers, kv_dim, dim], wo [layers, dim,
// dim], rms_ffn [layers, dim], w1 [layers, hidden, dim], w2 [layers, dim,
// hidden], w3 [layers, hidden, dim], rms_final [dim], freq_cis_real and
// freq_cis_imag [max_seq_len, head_size/2] (unused: RoPE is recomputed), and
// wcls [vocab, dim] when not shared. The file's size must be exactly what
// the header implies; that equation is how a checkpoint is recognized.
//
// Tensors get GGUF names (token_embd.weight, blk.N.attn_q.weight, ...;
// per-layer slices of the stacked arrays), so the runtime and the MQE treat
// them as any llama; the layout covers every byte, so export is exact.
//
// The tokenizer file: max_token_length (int32), then per token its score
// (float32), byte length (int32) and bytes; exactly vocab_size tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "formats/model_source.h"

namespace hart::formats {

inline constexpr uint64_t kLlama2cHeaderBytes = 28;

struct Llama2cHeader {
  int64_t dim = 0;
  int64_t hidden_dim = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t vocab_size = 0;  // |vocab_size| of the file
  int64_t max_seq_len = 0;
  bool shared_classifier = true;  // the file's vocab_size was positive

  int64_t head_size() const { return dim / n_heads; }
  int64_t kv_dim() const { return dim * n_kv_heads / n_heads; }
};

// Parses and checks the header against `file_size`: every field in range,
// heads dividing dim and kv heads dividing heads, and the weights filling
// the file exactly. Errors are DataErrors naming `name`, offset and field.
absl::StatusOr<Llama2cHeader> ParseLlama2cHeader(std::span<const uint8_t> bytes, uint64_t file_size,
                                                 std::string_view name);

// The header's fields alone (ranges, heads dividing dim, ...), not the size:
// a file whose first bytes pass is a llama2.c checkpoint of the wrong size
// rather than an unknown format.
absl::StatusOr<Llama2cHeader> ParseLlama2cFields(std::span<const uint8_t> bytes, std::string_view name);

// Whether `head` (the file's first bytes) is a valid llama2.c header for a
// file of exactly `file_size` bytes.
bool LooksLikeLlama2c(std::span<const uint8_t> head, uint64_t file_size);

// The tensors in file order, offsets absolute, `file` = file_index.
std::vector<TensorDesc> Llama2cTensors(const Llama2cHeader& h, uint32_t file_index);

struct Llama2cVocab {
  int32_t max_token_length = 0;
  std::vector<std::string> tokens;  // raw bytes, as in the file
  std::vector<float> scores;
};

// Parses a tokenizer file of exactly `vocab_size` tokens ending at the end
// of `bytes`. Errors are DataErrors naming `name`, offset and token.
absl::StatusOr<Llama2cVocab> ParseLlama2cTokenizer(std::span<const uint8_t> bytes, int64_t vocab_size,
                                                   std::string_view name);

// The tokenizer beside a checkpoint: tokenizer.bin (llama2.c's default
// name), else the one tok*.bin file that parses with the checkpoint's
// vocabulary size. NotFound names what was looked for; several candidates
// are an InvalidArgument asking for --tokenizer.
absl::StatusOr<std::string> FindLlama2cTokenizer(const std::string& checkpoint, int64_t vocab_size);

// Reads a checkpoint with its tokenizer file (`tokenizer`, or "" to look
// beside it): two files in one ModelSource, the tokenizer a raw companion
// file named in metadata["tokenizer"]["file"].
absl::StatusOr<ModelSource> ReadLlama2c(const std::string& path, const std::string& tokenizer = "");

}  // namespace hart::formats
