#include "runtime/tokenizer_cache.h"

#include <map>
#include <mutex>

#include "core/status.h"

namespace hart::runtime {

struct TokenizerCache::State {
  mutable std::mutex mu;
  std::map<std::string, std::weak_ptr<const Tokenizer>, std::less<>> entries;  // by digest
  uint64_t bytes = 0;
};

TokenizerCache::TokenizerCache() : state_(std::make_shared<State>()) {}
TokenizerCache::~TokenizerCache() = default;

absl::StatusOr<TokenizerCache::Handle> TokenizerCache::Get(const WeightSource& source) {
  ASSIGN_OR_RETURN(TokenizerInputs in, ReadTokenizerInputs(source));
  return Get(in);
}

absl::StatusOr<TokenizerCache::Handle> TokenizerCache::Get(const TokenizerInputs& in) {
  {
    std::lock_guard<std::mutex> l(state_->mu);
    auto it = state_->entries.find(in.digest);
    if (it != state_->entries.end())
      if (Handle h = it->second.lock()) return h;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> built, BuildTokenizer(in));
  const uint64_t nbytes = built->memory_bytes();
  std::shared_ptr<State> st = state_;
  std::string digest = in.digest;
  // The deleter takes the entry off the books when the last holder lets go.
  Handle h(built.release(), [st, digest, nbytes](const Tokenizer* t) {
    {
      std::lock_guard<std::mutex> l(st->mu);
      auto it = st->entries.find(digest);
      if (it != st->entries.end() && it->second.expired()) st->entries.erase(it);
      st->bytes -= nbytes;
    }
    delete t;
  });
  std::lock_guard<std::mutex> l(state_->mu);
  state_->bytes += nbytes;  // the deleter takes it off again
  auto& slot = state_->entries[in.digest];
  if (Handle other = slot.lock()) return other;  // a concurrent build won; h is dropped after l
  slot = h;
  return h;
}

uint64_t TokenizerCache::bytes() const {
  std::lock_guard<std::mutex> l(state_->mu);
  return state_->bytes;
}

uint64_t TokenizerCache::tokenizers() const {
  std::lock_guard<std::mutex> l(state_->mu);
  return state_->entries.size();
}

}  // namespace hart::runtime
