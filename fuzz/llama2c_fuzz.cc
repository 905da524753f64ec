// libFuzzer target: arbitrary bytes as a whole llama2.c checkpoint and as a
// tokenizer file. Errors must be DataErrors; a header that parses must give
// tensors that tile the file after the header exactly; a tokenizer that
// parses must hold exactly the tokens asked for, each within its bounds.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "formats/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace hart::formats;
  std::span<const uint8_t> bytes(data, size);
  auto h = ParseLlama2cHeader(bytes, size, "fuzz.bin");
  if (h.ok()) {
    uint64_t pos = kLlama2cHeaderBytes;
    for (const auto& t : Llama2cTensors(*h, 0)) {
      if (t.offset != pos || t.nbytes == 0) std::abort();
      pos += t.nbytes;
    }
    if (pos != size) std::abort();
  } else if (h.status().code() != absl::StatusCode::kDataLoss) {
    std::abort();
  }
  // The vocabulary size comes from the checkpoint; take it from the input
  // too so the fuzzer explores both short and long vocabularies.
  const int64_t vocab = size > 0 ? data[0] % 64 + 1 : 1;
  auto v = ParseLlama2cTokenizer(bytes, vocab, "fuzz.tok");
  if (v.ok()) {
    if (static_cast<int64_t>(v->tokens.size()) != vocab || v->scores.size() != v->tokens.size()) std::abort();
    for (const auto& t : v->tokens)
      if (t.size() > static_cast<size_t>(v->max_token_length)) std::abort();
  } else if (v.status().code() != absl::StatusCode::kDataLoss) {
    std::abort();
  }
  return 0;
}
