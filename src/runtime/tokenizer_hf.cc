// Tokenizer from a Hugging Face tokenizer.json, mapped onto the encoders the
// GGUF vocabularies use:
//  - byte-level BPE (gpt2, llama-3, qwen2, deepseek: a ByteLevel
//    pre-tokenizer, usually after Split expressions) -> BpeEncoder with the
//    merge ranks and the family's PreTokenizer, recognized from the Split
//    expressions (any other list runs as given);
//  - SentencePiece-style BPE (llama-2, mistral: byte_fallback, spaces as
//    U+2581 through a Metaspace pre-tokenizer or Replace/Prepend normalizers)
//    -> EncodeSpm, whose scores are the merge ranks negated: HF's converter
//    lists a SentencePiece vocabulary's merges in the order of the merged
//    pieces' scores, so "best score first" and "lowest rank first" agree.
// Token types, which tokenizer.json lacks, come from added_tokens (special ->
// CONTROL, others USER_DEFINED), model.unk_token (UNKNOWN) and <0xHH> pieces
// of byte_fallback vocabularies (BYTE).
#include <algorithm>
#include <cctype>
#include <optional>

#include "core/sha256.h"
#include "core/status.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer.h"
#include "runtime/tokenizer_internal.h"
#include "runtime/weight_source.h"

namespace hart::runtime {
namespace {

using nlohmann::json;

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581

absl::Status FieldError(std::string_view file, std::string_view field, std::string_view what) {
  return absl::DataLossError(fmt::format("{}: {}: {}", file, field, what));
}

absl::Status Unsupported(std::string_view file, std::string_view field, std::string_view what) {
  return absl::UnimplementedError(fmt::format("{}: {}: {}", file, field, what));
}

// The components of a pre-tokenizer, normalizer or decoder, Sequences
// flattened, in order.
void Flatten(const json& j, std::vector<const json*>* out) {
  if (!j.is_object()) return;
  if (j.value("type", "") == "Sequence") {
    for (const char* key : {"pretokenizers", "normalizers", "decoders", "processors"}) {
      auto it = j.find(key);
      if (it == j.end() || !it->is_array()) continue;
      for (const json& e : *it) Flatten(e, out);
    }
    return;
  }
  out->push_back(&j);
}

std::vector<const json*> Components(const json& root, const char* key) {
  std::vector<const json*> out;
  auto it = root.find(key);
  if (it != root.end()) Flatten(*it, &out);
  return out;
}

// A token named in tokenizer_config.json: "<s>" or {"content": "<s>", ...}.
std::optional<std::string> ConfigTokenText(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return std::nullopt;
}

std::string RegexEscaped(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view(R"(\^$.|?*+()[]{}-)").find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

bool IsHexByteToken(const std::string& s) {
  return s.size() == 6 && s.starts_with("<0x") && s.back() == '>' &&
         std::isxdigit(static_cast<unsigned char>(s[3])) && std::isxdigit(static_cast<unsigned char>(s[4]));
}

absl::StatusOr<json> ParseJson(std::string_view text, std::string_view file) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return FieldError(file, "(document)", "not a JSON object");
  return j;
}

// "left right" merges from either form of model.merges.
absl::StatusOr<std::vector<std::string>> ReadMerges(const json& model, std::string_view file) {
  std::vector<std::string> merges;
  auto it = model.find("merges");
  if (it == model.end() || it->is_null()) return merges;
  if (!it->is_array()) return FieldError(file, "model.merges", "not an array");
  merges.reserve(it->size());
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      return FieldError(file, fmt::format("model.merges[{}]", i), "neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return merges;
}

// The Split expressions of a byte-level pre-tokenizer, in order.
absl::StatusOr<std::vector<std::string>> BytePatterns(const std::vector<const json*>& pre,
                                                      std::string_view file) {
  std::vector<std::string> patterns;
  for (const json* c : pre) {
    const std::string type = c->value("type", "");
    if (type == "Split") {
      const json& p = c->value("pattern", json::object());
      if (p.contains("Regex") && p["Regex"].is_string()) {
        patterns.push_back(p["Regex"].get<std::string>());
      } else if (p.contains("String") && p["String"].is_string()) {
        patterns.push_back(RegexEscaped(p["String"].get<std::string>()));
      } else {
        return FieldError(file, "pre_tokenizer.pattern", "neither Regex nor String");
      }
      if (c->value("behavior", "Isolated") != "Isolated" || c->value("invert", false))
        return Unsupported(file, "pre_tokenizer.behavior",
                           fmt::format("Split '{}' with behavior '{}'{} is not supported (Isolated is)",
                                       patterns.back(), c->value("behavior", ""),
                                       c->value("invert", false) ? " inverted" : ""));
    } else if (type == "ByteLevel") {
      if (c->value("add_prefix_space", false))
        return Unsupported(file, "pre_tokenizer.add_prefix_space", "true is not supported");
      if (c->value("use_regex", true)) patterns.push_back(PreTokenizer::PatternsForName("gpt-2")->front());
    } else if (type == "Digits") {
      patterns.push_back(c->value("individual_digits", false) ? "\\p{N}" : "\\p{N}+");
    } else {
      return Unsupported(file, "pre_tokenizer.type",
                         fmt::format("'{}' is not supported in a byte-level BPE (Split, ByteLevel, Digits are)",
                                     type));
    }
  }
  return patterns;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromHfJson(std::string_view tokenizer_json,
                                                                 std::string_view tokenizer_config_json,
                                                                 std::string_view generation_config_json,
                                                                 std::string_view dir) {
  const std::string file = fmt::format("{}: tokenizer.json", dir);
  const std::string cfg_file = fmt::format("{}: tokenizer_config.json", dir);
  ASSIGN_OR_RETURN(json root, ParseJson(tokenizer_json, file));
  json cfg = json::object(), gen = json::object();
  if (!tokenizer_config_json.empty()) {
    ASSIGN_OR_RETURN(cfg, ParseJson(tokenizer_config_json, cfg_file));
  }
  if (!generation_config_json.empty()) {
    ASSIGN_OR_RETURN(gen, ParseJson(generation_config_json, fmt::format("{}: generation_config.json", dir)));
  }

  if (!root.contains("model") || !root["model"].is_object()) return FieldError(file, "model", "missing");
  const json& model = root["model"];
  std::string type = model.value("type", "");
  if (type.empty() && model.contains("merges")) type = "BPE";  // old files leave BPE implicit
  if (type != "BPE")
    return Unsupported(file, "model.type",
                       fmt::format("'{}' is not supported (BPE is)", type.empty() ? "(missing)" : type));
  if (!model.contains("vocab") || !model["vocab"].is_object())
    return FieldError(file, "model.vocab", "missing or not an object");
  const json& vocab = model["vocab"];
  const json added = root.value("added_tokens", json::array());
  if (!added.is_array()) return FieldError(file, "added_tokens", "not an array");

  // Ids may have holes; the vocabulary is as long as the largest id.
  constexpr int64_t kMaxId = int64_t{1} << 30;
  int64_t max_id = -1;
  for (const auto& [text, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxId)
      return FieldError(file, "model.vocab", fmt::format("'{}' has no valid id", text));
    max_id = std::max(max_id, id.get<int64_t>());
  }
  for (size_t i = 0; i < added.size(); ++i) {
    const json& a = added[i];
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
        a["id"].get<int64_t>() >= kMaxId || !a.contains("content") || !a["content"].is_string())
      return FieldError(file, fmt::format("added_tokens[{}]", i), "needs an id and a content");
    max_id = std::max(max_id, a["id"].get<int64_t>());
  }
  if (max_id < 0) return FieldError(file, "model.vocab", "empty vocabulary");
  const int32_t n = static_cast<int32_t>(max_id + 1);

  auto t = std::make_unique<TokenizerImpl>();
  Vocab& v = t->vocab;
  v.text.assign(n, "");
  v.score.assign(n, 0.0f);
  v.type.assign(n, TokenType::kUndefined);
  for (const auto& [text, id] : vocab.items()) {
    v.text[id.get<int32_t>()] = text;
    v.type[id.get<int32_t>()] = TokenType::kNormal;
  }
  t->lstrip.assign(n, 0);
  t->rstrip.assign(n, 0);
  for (const json& a : added) {
    const int32_t id = a["id"].get<int32_t>();
    v.text[id] = a["content"].get<std::string>();
    v.type[id] = a.value("special", false) ? TokenType::kControl : TokenType::kUserDefined;
    t->lstrip[id] = a.value("lstrip", false);
    t->rstrip[id] = a.value("rstrip", false);
  }

  const auto pre = Components(root, "pre_tokenizer");
  const auto norm = Components(root, "normalizer");
  const auto dec = Components(root, "decoder");
  auto has_type = [](const std::vector<const json*>& cs, std::string_view type) {
    return std::any_of(cs.begin(), cs.end(), [&](const json* c) { return c->value("type", "") == type; });
  };
  bool metaspace = false, prepend = false, replace_space = false;
  for (const json* c : pre) {
    if (c->value("type", "") != "Metaspace") continue;
    metaspace = true;
    prepend = c->value("prepend_scheme", "always") != "never" && c->value("add_prefix_space", true);
  }
  for (const json* c : norm) {
    const std::string nt = c->value("type", "");
    if (nt == "Prepend" && c->value("prepend", "") == kSpace) prepend = true;
    if (nt == "Replace" && c->value("content", "") == kSpace) replace_space = true;
  }
  const bool byte_fallback = model.value("byte_fallback", false);
  const bool spm = byte_fallback || metaspace || replace_space;
  const bool byte_level = has_type(pre, "ByteLevel") || has_type(dec, "ByteLevel");
  if (!spm && !byte_level)
    return Unsupported(file, "pre_tokenizer",
                       "neither ByteLevel (byte-level BPE) nor Metaspace / byte_fallback (SentencePiece BPE)");

  std::string unk_text;
  if (model.contains("unk_token") && model["unk_token"].is_string()) unk_text = model["unk_token"].get<std::string>();
  ASSIGN_OR_RETURN(std::vector<std::string> merges, ReadMerges(model, file));

  if (spm) {
    t->kind = TokenizerKind::kSpm;
    t->add_space_prefix = prepend;
    t->add_bos = true;
    if (byte_fallback)
      for (int32_t id = 0; id < n; ++id)
        if (v.type[id] == TokenType::kNormal && IsHexByteToken(v.text[id])) v.type[id] = TokenType::kByte;
    // Score of a piece: minus the rank of the first merge producing it;
    // pieces no merge produces (single characters, unreachable ones) below
    // every merge.
    std::vector<bool> scored(n, false);
    const float floor = -static_cast<float>(merges.size()) - 1.0f;
    for (int32_t id = 0; id < n; ++id) v.score[id] = floor;
    IndexVocab(&v);
    std::string joined;
    for (size_t r = 0; r < merges.size(); ++r) {
      const std::string& m = merges[r];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;
      joined.assign(m, 0, sp);
      joined.append(m, sp + 1);
      const int32_t id = v.Find(joined);
      if (id == kNoToken || scored[id]) continue;
      scored[id] = true;
      v.score[id] = -static_cast<float>(r);
    }
  } else {
    t->kind = TokenizerKind::kBpe;
    for (const json* c : norm) {
      const std::string nt = c->value("type", "");
      // NFC: the text is taken as NFC already (llama.cpp does the same).
      if (nt != "NFC")
        return Unsupported(file, "normalizer.type",
                           fmt::format("'{}' is not supported for a byte-level BPE", nt));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> patterns, BytePatterns(pre, file));
    const std::string name = PreTokenizer::NameForPatterns(patterns);
    t->pre = name.empty() ? "tokenizer.json" : name;
    bool ignore_merges = false;
    if (!name.empty()) {
      ASSIGN_OR_RETURN(PreTokenizer family, PreTokenizer::ForName(name));
      ignore_merges = family.ignore_merges();
    }
    ignore_merges = model.value("ignore_merges", ignore_merges);
    auto p = PreTokenizer::FromPatterns(patterns, ignore_merges);
    if (!p.ok()) return Annotate(p.status(), fmt::format("{}: pre_tokenizer", file));
    t->bpe.emplace(std::move(*p), merges);
    t->add_bos = t->pre == "llama3";
  }
  if (!unk_text.empty()) {
    if (const int32_t id = v.Find(unk_text); id != kNoToken) {
      t->unk = id;
      v.type[id] = TokenType::kUnknown;
    }
  }
  IndexVocab(&v);

  // BOS / EOS: tokenizer_config.json names them by text; without it a
  // SentencePiece vocabulary has <s> and </s>.
  if (spm) {
    t->bos = v.Find("<s>");
    t->eos = v.Find("</s>");
  }
  struct Named { const char* key; int32_t* id; };
  for (const Named& k : {Named{"bos_token", &t->bos}, Named{"eos_token", &t->eos}, Named{"unk_token", &t->unk},
                         Named{"pad_token", &t->pad}}) {
    if (!cfg.contains(k.key) || cfg[k.key].is_null()) continue;
    auto text = ConfigTokenText(cfg[k.key]);
    if (!text) return FieldError(cfg_file, k.key, "neither a string nor {\"content\": ...}");
    const int32_t id = v.Find(*text);
    if (id == kNoToken)
      return FieldError(cfg_file, k.key, fmt::format("'{}' is not in the vocabulary of tokenizer.json", *text));
    *k.id = id;
  }
  // Whether BOS goes in front: add_bos_token when the config says, else the
  // post-processor's template (TemplateProcessing starting with a special
  // token: that token is BOS).
  std::optional<bool> add_bos;
  if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) add_bos = cfg["add_bos_token"].get<bool>();
  if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) t->add_eos = cfg["add_eos_token"].get<bool>();
  for (const json* c : Components(root, "post_processor")) {
    if (c->value("type", "") != "TemplateProcessing") continue;
    const json single = c->value("single", json::array());
    std::optional<std::string> first;
    if (single.is_array() && !single.empty() && single[0].contains("SpecialToken"))
      first = single[0]["SpecialToken"].value("id", "");
    if (first && t->bos == kNoToken) t->bos = v.Find(*first);
    if (!add_bos) add_bos = first.has_value() && v.Find(*first) == t->bos && t->bos != kNoToken;
  }
  if (add_bos) t->add_bos = *add_bos;

  // generation_config.json: eos_token_id, a number or a list (llama-3
  // instruct ends turns with several).
  if (gen.contains("eos_token_id")) {
    std::vector<int64_t> ids;
    const json& e = gen["eos_token_id"];
    if (e.is_number_integer()) ids.push_back(e.get<int64_t>());
    else if (e.is_array())
      for (const json& x : e)
        if (x.is_number_integer()) ids.push_back(x.get<int64_t>());
    for (int64_t id : ids) {
      if (id < 0 || id >= n) continue;
      if (t->eos == kNoToken) t->eos = static_cast<int32_t>(id);
      t->eog.insert(static_cast<int32_t>(id));
    }
  }

  if (cfg.contains("chat_template")) {
    const json& ct = cfg["chat_template"];
    if (ct.is_string()) {
      t->chat_template = ct.get<std::string>();
    } else if (ct.is_array()) {  // [{"name": "default", "template": "..."}, ...]
      for (const json& e : ct) {
        if (!e.is_object() || !e.contains("template") || !e["template"].is_string()) continue;
        if (t->chat_template.empty() || e.value("name", "") == "default")
          t->chat_template = e["template"].get<std::string>();
      }
    }
  }

  FinishTokenizer(t.get());
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(t)));
}

absl::StatusOr<TokenizerInputs> ReadTokenizerInputs(const WeightSource& source) {
  TokenizerInputs in;
  in.origin = source.origin();
  Sha256Stream h;
  auto text = [&h](std::string_view s) {
    const uint64_t n = s.size();
    h.Update({reinterpret_cast<const uint8_t*>(&n), sizeof n});
    h.Update({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  };
  if (const auto* md = source.gguf_metadata()) {
    in.kind = TokenizerInputs::Kind::kGguf;
    in.gguf = md;
    text("gguf");
    text(GgufTokenizerDigest(*md));
  } else if (source.format() == formats::Format::kLlama2c) {
    in.kind = TokenizerInputs::Kind::kLlama2c;
    RETURN_IF_ERROR(ReadLlama2cTokenizerInputs(source, &in));
    text("llama2c");
    text(std::to_string(in.llama2c_vocab_size));
    text(in.llama2c_file);
  } else {
    in.kind = TokenizerInputs::Kind::kHfJson;
    auto tj = source.ReadCompanionFile("tokenizer.json");
    if (!tj.ok()) {
      if (absl::IsNotFound(tj.status()))
        return absl::UnimplementedError(fmt::format(
            "{}: no tokenizer: neither GGUF metadata nor a tokenizer.json beside the weights", source.origin()));
      return tj.status();
    }
    in.tokenizer_json = std::move(*tj);
    for (auto [name, out] : {std::pair{"tokenizer_config.json", &in.tokenizer_config_json},
                             std::pair{"generation_config.json", &in.generation_config_json}}) {
      auto t = source.ReadCompanionFile(name);
      if (t.ok()) *out = std::move(*t);
      else if (!absl::IsNotFound(t.status())) return t.status();
    }
    text("hf");
    text(in.tokenizer_json);
    text(in.tokenizer_config_json);
    text(in.generation_config_json);
  }
  in.digest = ToHex(h.Finish());
  return in;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> BuildTokenizer(const TokenizerInputs& in) {
  switch (in.kind) {
    case TokenizerInputs::Kind::kGguf:
      if (in.gguf == nullptr) return absl::InvalidArgumentError(fmt::format("{}: no GGUF metadata", in.origin));
      return Tokenizer::FromGguf(*in.gguf, in.origin);
    case TokenizerInputs::Kind::kLlama2c:
      return Tokenizer::FromLlama2c(
          {reinterpret_cast<const uint8_t*>(in.llama2c_file.data()), in.llama2c_file.size()},
          in.llama2c_vocab_size, in.origin);
    case TokenizerInputs::Kind::kHfJson:
      return Tokenizer::FromHfJson(in.tokenizer_json, in.tokenizer_config_json, in.generation_config_json,
                                   in.origin);
  }
  return absl::InternalError("unknown tokenizer kind");
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadTokenizer(const WeightSource& source) {
  ASSIGN_OR_RETURN(TokenizerInputs in, ReadTokenizerInputs(source));
  return BuildTokenizer(in);
}

}  // namespace hart::runtime
