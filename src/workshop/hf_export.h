// Export of a GGUF-layout version (ingested or derived: quantized, merged,
// composed) as a Hugging Face model directory that `transformers` loads:
//
//   model.safetensors        the tensors under HF names, in --dtype (BF16
//                            default, F16, F32): quantized blocks decoded by
//                            core's DecodeToF32 (ggml's reference values),
//                            then rounded to nearest even; Q and K rows of
//                            llama and mistral un-permuted from the order
//                            llama.cpp's converter gives them back to HF's
//                            (rotate_half RoPE); rope_freqs.weight folded
//                            into config.json's rope_scaling
//   config.json              from the GGUF metadata (architectures,
//                            model_type, hidden_size, num_hidden_layers as
//                            the version has it after compose/passthrough, …)
//   generation_config.json   bos/eos ids
//   tokenizer.json (+ tokenizer_config.json, special_tokens_map.json)
//                            copied byte for byte from the first version
//                            the lineage reaches (derivation inputs, then
//                            parents) that was ingested with one; else,
//                            for a byte-level BPE vocabulary, written from
//                            the GGUF metadata (TokenizerFilesFromGguf);
//                            otherwise none, and the result says why
//
// It streams: one tensor at a time, in pieces of whole rows (whole heads
// for Q and K) of about PieceBytes(), so memory is a few pieces, not a
// tensor (a 1B model's embedding is 1 GB in F32). Everything that can be
// refused (architecture, tensor names, types the decoder lacks, shapes, a
// non-empty output directory) is refused before a byte is written; a
// failure later removes what was written.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/cancel.h"
#include "core/dtype.h"
#include "core/progress.h"
#include "formats/gguf.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace hart::workshop {

struct HfExportOptions {
  DType dtype = DType::kBF16;  // kBF16, kF16 or kF32
  bool progress = false;       // a bar on stderr (a TTY)
  ProgressSink* progress_sink = nullptr;
  const CancelToken* cancel = nullptr;
};

struct HfExportResult {
  std::string dir;
  std::string arch;                  // GGUF general.architecture
  std::vector<std::string> files;    // names written inside dir
  uint64_t tensors = 0;              // in model.safetensors
  uint64_t tensor_bytes = 0;         // their data bytes
  uint64_t input_bytes = 0;          // tensor bytes read from the store
  uint64_t max_buffer_bytes = 0;     // largest piece held (bytes of floats)
  std::string tokenizer_from;        // "model@N" whose tokenizer.json was copied, "gguf" when
                                     // written from the vocabulary, "" when none was written
  std::string tokenizer_note;        // why no tokenizer was written ("" when one was)
  std::vector<std::string> dropped;  // GGUF tensors HF keeps elsewhere (rope_freqs → config)
  nlohmann::json config;             // config.json as written
};

// "bf16", "f16", "f32" (also "bfloat16", "float16", "float32").
absl::StatusOr<DType> HfExportDType(std::string_view name);

// Writes `dir` (created; refused when it exists and is not empty).
absl::StatusOr<HfExportResult> ExportHf(store::Store& store, int64_t version_id, const std::string& dir,
                                        const HfExportOptions& opts);

// tokenizer.json and tokenizer_config.json for a byte-level BPE vocabulary
// (tokenizer.ggml.model "gpt2") of a known pre-tokenizer family
// (tokenizer.ggml.pre): vocab, merges, control tokens as special
// added_tokens, the family's Split expressions + ByteLevel, bos/eos,
// add_bos_token and the chat template. Unimplemented, saying why, for any
// other vocabulary (SentencePiece's scores have no exact tokenizer.json
// form without the original model; unknown pre-tokenizers; duplicate
// token texts).
struct TokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};
absl::StatusOr<TokenizerFiles> TokenizerFilesFromGguf(const formats::GgufMetadata& md, int64_t context_length);

// The HF name of a GGUF tensor name of a llama-family model ("" when HF has
// none); exposed for tests.
std::string HfTensorName(std::string_view gguf_name);

}  // namespace hart::workshop
