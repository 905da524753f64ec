// llama2.c tokenizer files as a SentencePiece-style Tokenizer. llama2.c's
// exporter wrote SentencePiece's vocabulary with U+2581 turned back into
// spaces and <s>/</s> wrapped in newlines; undoing both gives the
// vocabulary llama.cpp's converter would write as GGUF metadata, so the one
// SentencePiece encoder (merges by score, byte fallback) serves it. That is
// also run.c's algorithm: the best-scoring adjacent pair merged first, the
// leftmost on ties, unknown characters as <0xXX> byte tokens.
#include <string>

#include "core/status.h"
#include "formats/gguf.h"
#include "formats/llama2c.h"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_internal.h"
#include "runtime/weight_source.h"

namespace hart::runtime {
namespace {

bool IsByteToken(std::string_view s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return s.size() == 6 && s.starts_with("<0x") && s[5] == '>' && hex(s[3]) && hex(s[4]);
}

std::string Trimmed(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromLlama2c(std::span<const uint8_t> file,
                                                                  int64_t vocab_size, std::string_view source) {
  ASSIGN_OR_RETURN(formats::Llama2cVocab v, formats::ParseLlama2cTokenizer(file, vocab_size, source));
  if (v.tokens.size() < 3 || Trimmed(v.tokens[1]) != "<s>" || Trimmed(v.tokens[2]) != "</s>")
    return absl::DataLossError(fmt::format(
        "{}: not a llama2.c SentencePiece vocabulary: tokens 1 and 2 must be <s> and </s>", source));
  using formats::GgufType;
  using formats::GgufValue;
  formats::GgufArray tokens{GgufType::kString, {}}, scores{GgufType::kFloat32, {}}, types{GgufType::kInt32, {}};
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    std::string text = v.tokens[id];
    TokenType type = TokenType::kNormal;
    if (id == 0) {
      type = TokenType::kUnknown;
    } else if (id <= 2) {
      text = Trimmed(text);
      type = TokenType::kControl;
    } else if (IsByteToken(text)) {
      type = TokenType::kByte;
    } else {
      for (size_t p = 0; (p = text.find(' ', p)) != std::string::npos; p += 3) text.replace(p, 1, "\xE2\x96\x81");
    }
    tokens.items.push_back({GgufType::kString, std::move(text)});
    scores.items.push_back({GgufType::kFloat32, static_cast<double>(v.scores[id])});
    types.items.push_back({GgufType::kInt32, static_cast<int64_t>(type)});
  }
  formats::GgufMetadata md;
  md.entries.push_back({"tokenizer.ggml.model", {GgufType::kString, std::string("llama")}});
  md.entries.push_back({"tokenizer.ggml.tokens", {GgufType::kArray, std::move(tokens)}});
  md.entries.push_back({"tokenizer.ggml.scores", {GgufType::kArray, std::move(scores)}});
  md.entries.push_back({"tokenizer.ggml.token_type", {GgufType::kArray, std::move(types)}});
  md.entries.push_back({"tokenizer.ggml.unknown_token_id", {GgufType::kUint32, uint64_t{0}}});
  md.entries.push_back({"tokenizer.ggml.bos_token_id", {GgufType::kUint32, uint64_t{1}}});
  md.entries.push_back({"tokenizer.ggml.eos_token_id", {GgufType::kUint32, uint64_t{2}}});
  md.entries.push_back({"tokenizer.ggml.add_bos_token", {GgufType::kBool, true}});
  md.entries.push_back({"tokenizer.ggml.add_space_prefix", {GgufType::kBool, true}});
  return FromGguf(md, source);
}

// The tokenizer file the reader stored beside the checkpoint
// (metadata.tokenizer.file), sized by the checkpoint's vocabulary.
absl::Status ReadLlama2cTokenizerInputs(const WeightSource& source, TokenizerInputs* in) {
  const nlohmann::json& md = source.metadata();
  const nlohmann::json* name = nullptr;
  const nlohmann::json* vocab = nullptr;
  if (md.is_object() && md.contains("tokenizer") && md["tokenizer"].is_object() &&
      md["tokenizer"].contains("file") && md["tokenizer"]["file"].is_string())
    name = &md["tokenizer"]["file"];
  if (md.is_object() && md.contains("llama2c") && md["llama2c"].is_object() &&
      md["llama2c"].contains("vocab_size") && md["llama2c"]["vocab_size"].is_number_integer())
    vocab = &md["llama2c"]["vocab_size"];
  if (name == nullptr || vocab == nullptr)
    return absl::DataLossError(fmt::format(
        "{}: a llama2.c checkpoint without tokenizer.file or llama2c.vocab_size in its metadata", source.origin()));
  const std::string file = name->get<std::string>();
  ASSIGN_OR_RETURN(in->llama2c_file, source.ReadCompanionFile(file));
  in->llama2c_vocab_size = vocab->get<int64_t>();
  in->origin = fmt::format("{}: {}", source.origin(), file);
  return absl::OkStatus();
}

}  // namespace hart::runtime
