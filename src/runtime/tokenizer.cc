#include "runtime/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "core/sha256.h"
#include "core/status.h"
#include "runtime/tokenizer_internal.h"
#include "runtime/tokenizer_unicode.h"

namespace hart::runtime {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

absl::Status MetaError(std::string_view source, std::string_view key, std::string_view what) {
  return absl::DataLossError(fmt::format("{}: {}: {}", source, key, what));
}

// End-of-turn texts of the chat formats we know, in the order that picks the
// EOT token when tokenizer.ggml.eot_token_id is absent.
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>", "<EOT>", "_<EOT>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<end_of_utterance>"};
constexpr std::string_view kEogExtraTexts[] = {"<|eom_id|>"};

bool IsSpecialType(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
}

std::string Lowered(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The bytes a token stands for in decoded text.
std::string MakePiece(const TokenizerImpl& t, int32_t id) {
  const std::string& text = t.vocab.text[id];
  switch (t.vocab.type[id]) {
    case TokenType::kControl:
    case TokenType::kUnknown:
    case TokenType::kUserDefined:
    case TokenType::kUnused:
    case TokenType::kUndefined:
      return text;
    case TokenType::kByte:
      if (text.size() == 6 && text.starts_with("<0x") && text.back() == '>') {
        return std::string(1, static_cast<char>(std::stoi(text.substr(3, 2), nullptr, 16)));
      }
      return text;
    case TokenType::kNormal:
      break;
  }
  if (t.kind == TokenizerKind::kBpe) {
    std::string out;
    for (size_t pos = 0; pos < text.size();) {
      size_t len;
      const uint32_t cp = unicode::DecodeUtf8(text, pos, &len);
      const int b = unicode::BpeCharToByte(cp);
      if (b >= 0) out.push_back(static_cast<char>(b));
      else out.append(text, pos, len);
      pos += len;
    }
    return out;
  }
  std::string out;
  for (size_t pos = 0; pos < text.size();) {
    if (text.compare(pos, kSpace.size(), kSpace) == 0) {
      out.push_back(' ');
      pos += kSpace.size();
    } else {
      out.push_back(text[pos++]);
    }
  }
  return out;
}

bool HexByte(std::string_view s, uint8_t* b) {
  if (s.size() != 6 || !s.starts_with("<0x") || s.back() != '>') return false;
  unsigned v = 0;
  for (char c : s.substr(3, 2)) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    v = v * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(c))
                                           ? c - '0'
                                           : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10);
  }
  *b = static_cast<uint8_t>(v);
  return true;
}

// Phi-3's added tokens eat the whitespace after them (rstrip in its
// tokenizer.json), which GGUF does not record; llama.cpp keys it on the name.
bool IsPhi3Vocabulary(const formats::GgufMetadata& md) {
  const std::string name = Lowered(md.GetString("general.name").value_or(""));
  return name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos;
}

// Feeds a GGUF value to `h` as type, alternative and bytes (strings and
// arrays length-prefixed), so distinct values never hash alike.
class DigestWriter {
 public:
  explicit DigestWriter(Sha256Stream* h) : h_(h) {}
  ~DigestWriter() { Flush(); }
  void U64(uint64_t v) { Bytes(&v, sizeof v); }
  void Str(std::string_view s) {
    U64(s.size());
    Bytes(s.data(), s.size());
  }
  void Value(const formats::GgufValue& v) {
    U64(static_cast<uint64_t>(v.type));
    U64(v.value.index());
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            Str(x);
          } else if constexpr (std::is_same_v<T, formats::GgufArray>) {
            U64(static_cast<uint64_t>(x.element_type));
            U64(x.items.size());
            for (const auto& item : x.items) Value(item);
          } else if constexpr (std::is_same_v<T, bool>) {
            U64(x ? 1 : 0);
          } else {
            Bytes(&x, sizeof x);
          }
        },
        v.value);
  }
  void Bytes(const void* p, size_t n) {
    buf_.append(static_cast<const char*>(p), n);
    if (buf_.size() >= (1u << 20)) Flush();
  }
  void Flush() {
    h_->Update({reinterpret_cast<const uint8_t*>(buf_.data()), buf_.size()});
    buf_.clear();
  }

 private:
  Sha256Stream* h_;
  std::string buf_;
};

// Heap bytes of an allocation of `n` bytes in glibc's malloc: 8 bytes of
// header, 16-byte granules, 32 bytes at least.
uint64_t HeapBytes(uint64_t n) { return n == 0 ? 0 : std::max<uint64_t>(32, (n + 8 + 15) / 16 * 16); }
uint64_t HeapBytes(const std::string& s) {
  return s.capacity() > 15 ? HeapBytes(s.capacity() + 1) : 0;  // short strings live inside the object
}
template <typename T>
uint64_t VectorBytes(const std::vector<T>& v) {
  return HeapBytes(v.capacity() * sizeof(T));
}
uint64_t StringsBytes(const std::vector<std::string>& v) {
  uint64_t n = VectorBytes(v);
  for (const auto& s : v) n += HeapBytes(s);
  return n;
}

absl::Status LoadVocab(const formats::GgufMetadata& md, std::string_view source, Vocab* v) {
  auto tokens = md.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens) return MetaError(source, "tokenizer.ggml.tokens", "missing or not an array of strings");
  if (tokens->empty()) return MetaError(source, "tokenizer.ggml.tokens", "empty vocabulary");
  if (tokens->size() > (1u << 30)) return MetaError(source, "tokenizer.ggml.tokens", "too many tokens");
  const size_t n = tokens->size();
  v->text = std::move(*tokens);
  v->score.assign(n, 0.0f);
  v->type.assign(n, TokenType::kNormal);
  if (md.Find("tokenizer.ggml.scores") != nullptr) {
    auto scores = md.GetFloatArray("tokenizer.ggml.scores");
    if (!scores) scores = [&]() -> std::optional<std::vector<double>> {
      auto ints = md.GetIntArray("tokenizer.ggml.scores");
      if (!ints) return std::nullopt;
      return std::vector<double>(ints->begin(), ints->end());
    }();
    if (!scores) return MetaError(source, "tokenizer.ggml.scores", "not an array of numbers");
    if (scores->size() < n) {
      return MetaError(source, "tokenizer.ggml.scores",
                       fmt::format("{} scores for {} tokens", scores->size(), n));
    }
    for (size_t i = 0; i < n; ++i) v->score[i] = static_cast<float>((*scores)[i]);
  }
  if (md.Find("tokenizer.ggml.token_type") != nullptr) {
    auto types = md.GetIntArray("tokenizer.ggml.token_type");
    if (!types) return MetaError(source, "tokenizer.ggml.token_type", "not an array of integers");
    if (types->size() < n) {
      return MetaError(source, "tokenizer.ggml.token_type",
                       fmt::format("{} types for {} tokens", types->size(), n));
    }
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = (*types)[i];
      v->type[i] = (t >= 0 && t <= 6) ? static_cast<TokenType>(t) : TokenType::kUndefined;
    }
  }
  IndexVocab(v);
  return absl::OkStatus();
}

}  // namespace

void IndexVocab(Vocab* v) {
  const size_t n = v->text.size();
  v->to_id.clear();
  v->to_id.reserve(n);
  v->max_token_len = 0;
  for (size_t i = 0; i < n; ++i) {
    if (v->text[i].empty()) continue;
    v->to_id.emplace(v->text[i], static_cast<int32_t>(i));  // a duplicate keeps its first id
    v->max_token_len = std::max(v->max_token_len, v->text[i].size());
  }
  v->byte_token.fill(kNoToken);
  for (size_t i = 0; i < n; ++i) {
    uint8_t b;
    if (v->type[i] == TokenType::kByte && HexByte(v->text[i], &b)) v->byte_token[b] = static_cast<int32_t>(i);
  }
  for (int b = 0; b < 256; ++b) {
    if (v->byte_token[b] != kNoToken) continue;
    v->byte_token[b] = v->Find(std::string(1, static_cast<char>(b)));
  }
}

void FinishTokenizer(TokenizerImpl* t) {
  const int32_t n = t->vocab.size();
  // End of generation: the ids named above plus the known end-of-turn texts,
  // which are control tokens whatever the converter marked them.
  for (std::string_view text : kEotTexts) {
    const int32_t id = t->vocab.Find(text);
    if (id == kNoToken) continue;
    if (t->eot == kNoToken) t->eot = id;
    t->eog.insert(id);
    t->vocab.type[id] = TokenType::kControl;
  }
  for (std::string_view text : kEogExtraTexts) {
    const int32_t id = t->vocab.Find(text);
    if (id == kNoToken) continue;
    if (text == "<|eom_id|>" && t->eom == kNoToken) t->eom = id;
    t->eog.insert(id);
    t->vocab.type[id] = TokenType::kControl;
  }
  for (int32_t id : {t->eos, t->eot, t->eom}) {
    if (id != kNoToken) t->eog.insert(id);
  }

  for (int32_t id = 0; id < n; ++id) {
    if (IsSpecialType(t->vocab.type[id]) && !t->vocab.text[id].empty()) t->special.push_back(id);
  }
  std::stable_sort(t->special.begin(), t->special.end(), [&](int32_t a, int32_t b) {
    return t->vocab.text[a].size() > t->vocab.text[b].size();
  });
  if (t->lstrip.size() != static_cast<size_t>(n)) t->lstrip.assign(n, 0);
  if (t->rstrip.size() != static_cast<size_t>(n)) t->rstrip.assign(n, 0);
  t->piece.resize(n);
  for (int32_t id = 0; id < n; ++id) t->piece[id] = MakePiece(*t, id);
}

// The keys read here (tokenizer.* and general.name through IsPhi3Vocabulary)
// are what GgufTokenizerDigest hashes: a new key read outside tokenizer.*
// must enter the digest too, or models differing in it would share one
// tokenizer.
absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const formats::GgufMetadata& md,
                                                               std::string_view source) {
  auto t = std::make_unique<TokenizerImpl>();
  const std::string model = md.GetString("tokenizer.ggml.model").value_or("");
  if (model == "llama") {
    t->kind = TokenizerKind::kSpm;
  } else if (model == "gpt2") {
    t->kind = TokenizerKind::kBpe;
  } else if (model == "bert") {
    t->kind = TokenizerKind::kWordPiece;
  } else if (model.empty()) {
    return MetaError(source, "tokenizer.ggml.model", "missing");
  } else {
    return absl::UnimplementedError(
        fmt::format("{}: tokenizer.ggml.model: '{}' is not supported (llama, gpt2, bert are)",
                    source, model));
  }
  RETURN_IF_ERROR(LoadVocab(md, source, &t->vocab));
  const int32_t n = t->vocab.size();

  if (t->kind == TokenizerKind::kBpe) {
    t->pre = md.GetString("tokenizer.ggml.pre").value_or("default");
    auto pre = PreTokenizer::ForName(t->pre);
    if (!pre.ok()) return Annotate(pre.status(), fmt::format("{}: tokenizer.ggml.pre", source));
    auto merges = md.GetStringArray("tokenizer.ggml.merges");
    if (!merges) return MetaError(source, "tokenizer.ggml.merges", "missing or not an array of strings");
    t->bpe.emplace(std::move(*pre), *merges);
  }

  // Defaults per model family, as the converters leave them implicit.
  switch (t->kind) {
    case TokenizerKind::kSpm:
      t->bos = 1; t->eos = 2; t->unk = 0;
      t->add_bos = true;
      t->add_space_prefix = true;
      break;
    case TokenizerKind::kWordPiece:
      t->bos = 101; t->unk = 100; t->sep = 102; t->pad = 0;
      t->add_bos = true;
      break;
    case TokenizerKind::kBpe:
      t->add_bos = t->pre == "llama3" || t->pre == "llama-v3" || t->pre == "llama-bpe" ||
                   t->pre == "falcon3" || t->pre == "pixtral" || t->pre == "tekken";
      break;
  }
  struct IdKey { const char* key; int32_t* id; };
  const IdKey keys[] = {
      {"tokenizer.ggml.cls_token_id", &t->bos},  // BERT's [CLS] plays BOS
      {"tokenizer.ggml.bos_token_id", &t->bos},
      {"tokenizer.ggml.eos_token_id", &t->eos},
      {"tokenizer.ggml.eot_token_id", &t->eot},
      {"tokenizer.ggml.eom_token_id", &t->eom},
      {"tokenizer.ggml.unknown_token_id", &t->unk},
      {"tokenizer.ggml.seperator_token_id", &t->sep},  // sic: the GGUF key is spelled so
      {"tokenizer.ggml.padding_token_id", &t->pad},
  };
  for (const IdKey& k : keys) {
    if (*k.id >= n) *k.id = kNoToken;
    if (md.Find(k.key) == nullptr) continue;
    auto v = md.GetInt(k.key);
    // llama.cpp's converters write -1 (as uint32 0xFFFFFFFF or int32 -1) for
    // "no such token"; that is the key being absent, and the default stays.
    if (v && (*v == -1 || *v == int64_t{0xFFFFFFFF})) continue;
    if (!v || *v < 0 || *v >= n) {
      return MetaError(source, k.key, fmt::format("not a token id below {}", n));
    }
    *k.id = static_cast<int32_t>(*v);
  }
  if (auto b = md.GetBool("tokenizer.ggml.add_bos_token")) t->add_bos = *b;
  if (auto b = md.GetBool("tokenizer.ggml.add_eos_token")) t->add_eos = *b;
  if (auto b = md.GetBool("tokenizer.ggml.add_space_prefix")) t->add_space_prefix = *b;
  if (t->kind != TokenizerKind::kSpm) t->add_space_prefix = false;
  if (auto b = md.GetBool("tokenizer.ggml.normalizer.lowercase")) t->lowercase = *b;
  t->strip_accents = md.GetBool("tokenizer.ggml.normalizer.strip_accents").value_or(t->lowercase);

  t->chat_template = md.GetString("tokenizer.chat_template").value_or("");
  t->lstrip.assign(n, 0);
  t->rstrip.assign(n, 0);
  // The tokens FinishTokenizer will treat as special: those typed so plus
  // the end-of-turn texts it makes CONTROL.
  std::vector<int32_t> special;
  for (int32_t id = 0; id < n; ++id) {
    const std::string& text = t->vocab.text[id];
    const bool eot = std::find(std::begin(kEotTexts), std::end(kEotTexts), text) != std::end(kEotTexts) ||
                     std::find(std::begin(kEogExtraTexts), std::end(kEogExtraTexts), text) !=
                         std::end(kEogExtraTexts);
    if ((IsSpecialType(t->vocab.type[id]) || eot) && !text.empty()) special.push_back(id);
  }
  // Phi-3's added tokens eat the whitespace after them.
  if (IsPhi3Vocabulary(md)) {
    for (int32_t id : special) t->rstrip[id] = 1;
    for (std::string_view s : {"</s>"}) {
      if (int32_t id = t->vocab.Find(s); id != kNoToken) t->rstrip[id] = 1;
    }
    for (std::string_view s : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (int32_t id = t->vocab.Find(s); id != kNoToken) t->rstrip[id] = 0;
    }
  }

  FinishTokenizer(t.get());
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(t)));
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGgufFile(const std::string& path) {
  ASSIGN_OR_RETURN(formats::GgufMetadata md, formats::ReadGgufMetadata(path));
  return FromGguf(md, path);
}

std::string GgufTokenizerDigest(const formats::GgufMetadata& md) {
  Sha256Stream h;
  {
    DigestWriter w(&h);
    w.Str("hart gguf tokenizer 1");
    for (const formats::GgufKV& kv : md.entries) {
      if (!kv.key.starts_with("tokenizer.")) continue;
      w.Str(kv.key);
      w.Value(kv.value);
    }
    w.Str("phi3");
    w.U64(IsPhi3Vocabulary(md) ? 1 : 0);
  }
  return ToHex(h.Finish());
}

uint64_t BpeEncoder::memory_bytes() const {
  // Nodes (next pointer, key, rank, cached hash) and the bucket array.
  uint64_t n = HeapBytes(sizeof(void*) * ranks_.bucket_count());
  for (const auto& [key, rank] : ranks_)
    n += HeapBytes(sizeof(void*) + sizeof(std::pair<const std::string, int32_t>) + sizeof(size_t)) + HeapBytes(key);
  return n;
}

namespace {

uint64_t ImplBytes(const TokenizerImpl& t) {
  const Vocab& v = t.vocab;
  uint64_t n = HeapBytes(sizeof(TokenizerImpl));
  n += StringsBytes(v.text) + VectorBytes(v.score) + VectorBytes(v.type);
  n += HeapBytes(sizeof(void*) * v.to_id.bucket_count());
  for (const auto& [key, id] : v.to_id)
    n += HeapBytes(sizeof(void*) + sizeof(std::pair<const std::string, int32_t>) + sizeof(size_t)) + HeapBytes(key);
  if (t.bpe) n += t.bpe->memory_bytes();
  n += VectorBytes(t.special) + VectorBytes(t.lstrip) + VectorBytes(t.rstrip) + StringsBytes(t.piece);
  n += HeapBytes(sizeof(void*) * t.eog.bucket_count()) + t.eog.size() * HeapBytes(sizeof(void*) + sizeof(int32_t));
  n += HeapBytes(t.pre) + HeapBytes(t.chat_template);
  return n;
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)), memory_bytes_(ImplBytes(*impl_)) {}
Tokenizer::~Tokenizer() = default;

namespace {

struct Fragment {
  int32_t token;  // kNoToken for raw text
  size_t offset;
  size_t length;
};

bool IsAsciiSpace(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

// Cuts the texts of special tokens out of `text`, longest token first, as
// llama.cpp's tokenizer_st_partition does.
std::vector<Fragment> Partition(const TokenizerImpl& t, std::string_view text, bool parse_special) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({kNoToken, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : t.special) {
    const TokenType type = t.vocab.type[id];
    if (!parse_special && type != TokenType::kUserDefined) continue;
    const std::string& st = t.vocab.text[id];
    if (text.find(st) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.offset;
      const size_t end = f.offset + f.length;
      while (pos < end) {
        const size_t m = text.substr(0, end).find(st, pos);
        if (m == std::string_view::npos) break;
        size_t left_end = m;
        if (t.lstrip[id]) {
          while (left_end > pos && IsAsciiSpace(text[left_end - 1])) --left_end;
        }
        if (left_end > pos) next.push_back({kNoToken, pos, left_end - pos});
        next.push_back({id, 0, 0});
        pos = m + st.size();
        if (t.rstrip[id]) {
          while (pos < end && IsAsciiSpace(text[pos])) ++pos;
        }
      }
      if (pos < end) next.push_back({kNoToken, pos, end - pos});
    }
    frags.swap(next);
  }
  return frags;
}

}  // namespace

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_bos, bool parse_special) const {
  const TokenizerImpl& t = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_bos && t.bos != kNoToken) out.push_back(t.bos);
  const std::vector<Fragment> frags = Partition(t, text, parse_special);
  bool after_special = true;  // SentencePiece prefixes a space at the start and after specials
  std::string buf;
  for (const Fragment& f : frags) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    const std::string_view raw = text.substr(f.offset, f.length);
    switch (t.kind) {
      case TokenizerKind::kSpm:
        buf.clear();
        if (t.add_space_prefix && after_special) buf.append(kSpace);
        for (char c : raw) {
          if (c == ' ') buf.append(kSpace);
          else buf.push_back(c);
        }
        EncodeSpm(t.vocab, buf, &out);
        break;
      case TokenizerKind::kBpe:
        t.bpe->Encode(t.vocab, raw, &out);
        break;
      case TokenizerKind::kWordPiece:
        EncodeWordPiece(t.vocab, t.unk, t.lowercase, t.strip_accents, raw, &out);
        break;
    }
    after_special = false;
  }
  if (add_bos) {
    if (t.kind == TokenizerKind::kWordPiece && t.sep != kNoToken) out.push_back(t.sep);
    else if (t.add_eos && t.eos != kNoToken) out.push_back(t.eos);
  }
  return out;
}

std::string_view Tokenizer::TokenToPiece(int32_t id, bool render_special) const {
  const TokenizerImpl& t = *impl_;
  if (id < 0 || id >= t.vocab.size()) return {};
  const TokenType type = t.vocab.type[id];
  if (!render_special && (type == TokenType::kControl || type == TokenType::kUnknown ||
                          type == TokenType::kUnused || type == TokenType::kUndefined)) {
    return {};
  }
  return t.piece[id];
}

bool Tokenizer::StripsLeadingSpaceAfter(std::span<const int32_t> context) const {
  // The state of Decode's loop after `context`, without its text.
  bool strip = impl_->add_space_prefix;
  for (int32_t id : context) {
    if (IsSpecialType(GetTokenType(id))) strip = impl_->add_space_prefix;
    else if (!TokenToPiece(id).empty()) strip = false;
  }
  return strip;
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool render_special) const {
  return Decode(ids, render_special, {});
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool render_special,
                              std::span<const int32_t> context) const {
  std::string out;
  bool strip = StripsLeadingSpaceAfter(context);
  for (int32_t id : ids) {
    std::string_view p = TokenToPiece(id, render_special);
    if (IsSpecialType(GetTokenType(id))) {
      // Encode put a space in front of the text after a special token.
      out.append(p);
      strip = impl_->add_space_prefix;
      continue;
    }
    if (p.empty()) continue;
    if (strip && p.front() == ' ') p.remove_prefix(1);
    strip = false;
    out.append(p);
  }
  return out;
}

TokenizerKind Tokenizer::kind() const { return impl_->kind; }
const std::string& Tokenizer::pre() const { return impl_->pre; }
int32_t Tokenizer::vocab_size() const { return impl_->vocab.size(); }
const std::string& Tokenizer::TokenText(int32_t id) const {
  static const std::string kEmpty;
  return id >= 0 && id < vocab_size() ? impl_->vocab.text[id] : kEmpty;
}
TokenType Tokenizer::GetTokenType(int32_t id) const {
  return id >= 0 && id < vocab_size() ? impl_->vocab.type[id] : TokenType::kUndefined;
}
std::optional<int32_t> Tokenizer::TokenId(std::string_view text) const {
  const int32_t id = impl_->vocab.Find(text);
  if (id == kNoToken) return std::nullopt;
  return id;
}
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
int32_t Tokenizer::eot_id() const { return impl_->eot; }
int32_t Tokenizer::unk_id() const { return impl_->unk; }
int32_t Tokenizer::sep_id() const { return impl_->sep; }
int32_t Tokenizer::pad_id() const { return impl_->pad; }
bool Tokenizer::add_bos_default() const { return impl_->add_bos; }
bool Tokenizer::add_space_prefix() const { return impl_->add_space_prefix; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
bool Tokenizer::IsEog(int32_t id) const { return impl_->eog.count(id) > 0; }

std::string StreamDecoder::Push(int32_t id) {
  std::string_view p = tok_.TokenToPiece(id, render_special_);
  const TokenType type = tok_.GetTokenType(id);
  if (type == TokenType::kControl || type == TokenType::kUserDefined ||
      type == TokenType::kUnknown) {
    strip_ = tok_.add_space_prefix();
  } else if (!p.empty()) {
    if (strip_ && p.front() == ' ') p.remove_prefix(1);
    strip_ = false;
  }
  pending_.append(p);
  // Hold back a character whose bytes have not all arrived yet.
  const size_t keep = unicode::IncompleteUtf8Suffix(pending_);
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace hart::runtime
