#include "runtime/pretokenize.h"

#include <unicode/regex.h>
#include <unicode/unistr.h>

#include "core/status.h"
#include "runtime/tokenizer_unicode.h"

namespace hart::runtime {

struct PreTokenizerImpl {
  std::vector<std::unique_ptr<icu::RegexPattern>> patterns;
};

namespace {

// The expressions below are the ones of each family's tokenizer.json (as
// llama.cpp's llama-vocab lists them), in HF syntax.

// GPT-2's ByteLevel split.
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (tiktoken cl100k style): contractions in any case, numbers in runs
// of at most three digits, a letter run takes one leading non-letter.
constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen 2: as Llama 3 but every digit alone.
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4o =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kTekken =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// CJK runs: CJK unified ideographs, U+0800..U+4E00, Hangul.
constexpr const char* kCjk = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+";

struct Family {
  const char* names[10];
  std::vector<std::string> patterns;
  bool ignore_merges;
};

const std::vector<Family>& Families() {
  static const std::vector<Family> f = {
      {{"default"},
       {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"},
       false},
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de",
        "roberta-bpe"},
       {kGpt2},
       false},
      {{"jina-v1-en", "jina-v2-code", "gigachat", "exaone4", "granite-docling", "trillion"},
       {kGpt2},
       false},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"}, {kLlama3}, true},
      {{"dbrx", "smaug-bpe", "glm4", "chatglm-bpe"}, {kLlama3}, false},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan"}, {kQwen2}, false},
      {{"gpt-4o", "llama4"}, {kGpt4o}, false},
      {{"tekken"}, {kTekken}, true},
      {{"deepseek-llm"},
       {"[\\r\\n]",
        "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-"
        "\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1"
        "\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-"
        "\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15"
        "\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d"
        "\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb"
        "\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d"
        "\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e"
        "\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-"
        "\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17"
        "\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-"
        "\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-"
        "\U0001e943]+",
        "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+", "\\s+$", kCjk,
        "\\p{N}+"},
       false},
      {{"deepseek-coder"}, {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjk, "\\p{N}"}, false},
      {{"deepseek-v3"},
       {"\\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
        R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
       false},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2, "[0-9][0-9][0-9]"}, false},
      {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
       {"\\p{N}", kGpt2},
       false},
      {{"poro-chat", "bloom", "gpt3-finnish"},
       {" ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"},
       false},
  };
  return f;
}

// HF's \s is Unicode White_Space (it includes \v and U+0085); ICU's \s does
// not, so the class is spelled out. Escaped backslashes are left alone.
std::string ToIcuSyntax(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 32);
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size()) {
      const char c = p[i + 1];
      if (c == 's') out += "\\p{White_Space}";
      else if (c == 'S') out += "\\P{White_Space}";
      else { out += '\\'; out += c; }
      ++i;
    } else {
      out += p[i];
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<PreTokenizer> PreTokenizer::FromPatterns(const std::vector<std::string>& patterns,
                                                         bool ignore_merges) {
  auto impl = std::make_shared<PreTokenizerImpl>();
  for (const std::string& p : patterns) {
    const std::string icu = ToIcuSyntax(p);
    UErrorCode err = U_ZERO_ERROR;
    UParseError perr;
    std::unique_ptr<icu::RegexPattern> re(
        icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(icu), 0, perr, err));
    if (U_FAILURE(err) || re == nullptr) {
      return absl::InvalidArgumentError(fmt::format(
          "pre-tokenizer expression '{}': {} at offset {}", p, u_errorName(err), perr.offset));
    }
    impl->patterns.push_back(std::move(re));
  }
  PreTokenizer t;
  t.impl_ = std::move(impl);
  t.ignore_merges_ = ignore_merges;
  return t;
}

const std::vector<std::string>* PreTokenizer::PatternsForName(std::string_view pre) {
  for (const Family& f : Families())
    for (const char* name : f.names)
      if (name != nullptr && pre == name) return &f.patterns;
  return nullptr;
}

std::string PreTokenizer::NameForPatterns(const std::vector<std::string>& patterns) {
  for (const Family& f : Families())
    if (f.patterns == patterns) return f.names[0];
  return "";
}

absl::StatusOr<PreTokenizer> PreTokenizer::ForName(std::string_view pre) {
  if (pre.empty()) pre = "default";
  for (const Family& f : Families()) {
    for (const char* name : f.names) {
      if (name == nullptr || pre != name) continue;
      ASSIGN_OR_RETURN(PreTokenizer t, FromPatterns(f.patterns));
      t.ignore_merges_ = f.ignore_merges;
      return t;
    }
  }
  return absl::UnimplementedError(fmt::format("pre-tokenizer '{}' is not supported", pre));
}

std::vector<std::string_view> PreTokenizer::Split(std::string_view text) const {
  if (text.empty()) return {};
  // UTF-16 copy for ICU plus, for each code unit, the byte offset it came
  // from (one past the end included), so matches map back to byte ranges.
  // Invalid bytes become U+FFFD one byte each and so are never glued to
  // their neighbours' characters.
  icu::UnicodeString u;
  std::vector<uint32_t> byte_at;
  byte_at.reserve(text.size() + 1);
  for (size_t pos = 0; pos < text.size();) {
    size_t len;
    const uint32_t cp = unicode::DecodeUtf8(text, pos, &len);
    u.append(static_cast<UChar32>(cp));
    byte_at.push_back(static_cast<uint32_t>(pos));
    if (cp >= 0x10000) byte_at.push_back(static_cast<uint32_t>(pos));
    pos += len;
  }
  byte_at.push_back(static_cast<uint32_t>(text.size()));

  // Pieces as [begin, end) in code units.
  std::vector<std::pair<int32_t, int32_t>> pieces = {{0, u.length()}};
  std::vector<std::pair<int32_t, int32_t>> next;
  for (const auto& re : impl_->patterns) {
    UErrorCode err = U_ZERO_ERROR;
    std::unique_ptr<icu::RegexMatcher> m(re->matcher(u, err));
    if (U_FAILURE(err)) continue;  // out of memory only; leave pieces as they are
    next.clear();
    for (const auto& [begin, end] : pieces) {
      // Opaque, anchoring bounds: lookahead and $ see the piece's end as the
      // end of text, as HF applies each split to each piece on its own.
      m->region(begin, end, err);
      int32_t at = begin;
      while (U_SUCCESS(err) && m->find(err)) {
        const int32_t s = m->start(err);
        const int32_t e = m->end(err);
        if (U_FAILURE(err) || e == s) continue;
        if (s > at) next.emplace_back(at, s);
        next.emplace_back(s, e);
        at = e;
      }
      if (at < end) next.emplace_back(at, end);
      err = U_ZERO_ERROR;
    }
    pieces.swap(next);
  }

  std::vector<std::string_view> out;
  out.reserve(pieces.size());
  for (const auto& [begin, end] : pieces) {
    const uint32_t b = byte_at[begin];
    const uint32_t e = byte_at[end];
    out.push_back(text.substr(b, e - b));
  }
  return out;
}

}  // namespace hart::runtime
