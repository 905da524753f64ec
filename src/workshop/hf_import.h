// HF (safetensors + config.json) versions as workshop inputs: `hart convert
// REF` derives, inside the store, the GGUF-layout version of a llama,
// mistral, qwen2 or qwen3 checkpoint ingested from a Hugging Face directory,
// which quantize, compose and merge then take like any GGUF version.
//
// Why a stored conversion rather than a view inside each method: every
// method (compose's and merge's block ranges, block_count, the runtime's
// loader, `hart export` of the result) speaks GGUF names and metadata, and a
// derived version must carry its tokenizer in its own metadata to run. The
// conversion costs almost nothing: every tensor is *taken* (its chunks are
// the HF version's), except llama/mistral Q and K, whose rows are permuted
// into llama.cpp's rotary order (the same permutation as its converter;
// rows are moved as bytes, nothing is rounded) and stored once. It is
// recorded as a derivation (method "convert-hf"), so `hart rebuild` re-runs
// it, the lineage leads back to the HF version, and `hart export --format hf`
// of anything derived from it copies the original tokenizer.json.
//
// Metadata from config.json (hyper-parameters; rope scaling: linear as
// keys, llama3 as the rope_freqs.weight tensor, as llama.cpp writes them);
// the tokenizer from tokenizer.json (+ tokenizer_config.json): SentencePiece-
// style BPE (byte_fallback / U+2581 spaces) as tokenizer.ggml.model "llama"
// with scores from merge ranks, byte-level BPE as "gpt2" with its merges and
// the pre-tokenizer family recognized from its Split expressions. Anything
// else is refused before a byte is written.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "store/store.h"
#include "workshop/derive.h"

namespace hart::workshop {

// The conversion of version `version_id` (see above). FailedPrecondition for
// a GGUF version (nothing to convert); InvalidArgument / Unimplemented naming
// the file and field for what cannot be converted.
absl::StatusOr<Derivation> BuildConvertHf(store::Store& store, int64_t version_id);

// tokenizer.json (+ tokenizer_config.json, "" when absent) as the
// tokenizer.ggml.* keys of `md` (see above); `origin` names them in errors.
absl::Status TokenizerGgufMetadata(const std::string& tokenizer_json, const std::string& tokenizer_config_json,
                                   std::string_view origin, formats::GgufMetadata* md);

// The GGUF name of an HF tensor name of a llama-family model ("" when none).
std::string GgufTensorName(std::string_view hf_name);

}  // namespace hart::workshop
