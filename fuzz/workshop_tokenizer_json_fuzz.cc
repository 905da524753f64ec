// libFuzzer target: arbitrary bytes as a tokenizer.json (and, split at the
// first NUL byte, a tokenizer_config.json) converted to GGUF tokenizer
// metadata by `hart convert` (workshop/hf_import.h). The answer is metadata
// or an error, never a crash or an exception; accepted metadata names a
// tokenizer model and holds as many token types as tokens.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "workshop/hf_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string all(reinterpret_cast<const char*>(data), size);
  std::string cfg;
  if (size_t nul = all.find('\0'); nul != std::string::npos) {
    cfg = all.substr(nul + 1);
    all.resize(nul);
  }
  hart::formats::GgufMetadata md;
  if (!hart::workshop::TokenizerGgufMetadata(all, cfg, "fuzz", &md).ok()) return 0;
  if (!md.GetString("tokenizer.ggml.model")) std::abort();
  auto tokens = md.GetStringArray("tokenizer.ggml.tokens");
  auto types = md.GetIntArray("tokenizer.ggml.token_type");
  if (!tokens || !types || tokens->size() != types->size()) std::abort();
  return 0;
}
