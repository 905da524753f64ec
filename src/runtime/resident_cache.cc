#include "runtime/resident_cache.h"

#include <sys/mman.h>
#include <unistd.h>

#include "fmt/format.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14
#endif

namespace hart::runtime {

struct ResidentCache::State {
  mutable std::mutex mu;
  std::map<std::string, std::weak_ptr<const ResidentTensor>, std::less<>> entries;
  uint64_t bytes = 0;
};

std::string ResidentKey(const std::string& digest, bool packed) { return packed ? digest + "+packed" : digest; }

namespace {
// A live entry for `digest` in either layout (mu held).
template <typename Map>
bool LiveLocked(const Map& entries, std::string_view digest) {
  for (bool packed : {false, true}) {
    auto it = entries.find(ResidentKey(std::string(digest), packed));
    if (it != entries.end() && !it->second.expired()) return true;
  }
  return false;
}
}  // namespace

ResidentCache::ResidentCache() : state_(std::make_shared<State>()) {}
ResidentCache::~ResidentCache() = default;

void Populate(std::span<const uint8_t> bytes) {
  if (bytes.empty()) return;
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t p0 = reinterpret_cast<uint64_t>(bytes.data()) / page * page;
  const uint64_t p1 = reinterpret_cast<uint64_t>(bytes.data()) + bytes.size();
  if (::madvise(reinterpret_cast<void*>(p0), p1 - p0, MADV_POPULATE_READ) == 0) return;
  // Older kernels: touch one byte per page.
  volatile uint8_t sink = 0;
  for (uint64_t i = 0; i < bytes.size(); i += page) sink = sink + bytes[i];
  sink = sink + bytes.back();
}

void Unpopulate(std::span<const uint8_t> bytes) {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t a = reinterpret_cast<uint64_t>(bytes.data());
  const uint64_t p0 = (a + page - 1) / page * page, p1 = (a + bytes.size()) / page * page;
  if (p1 > p0) ::madvise(reinterpret_cast<void*>(p0), p1 - p0, MADV_DONTNEED);
}

absl::StatusOr<ResidentCache::Handle> ResidentCache::Get(
    const std::string& digest, uint64_t nbytes, const std::function<absl::StatusOr<store::TensorBytes>()>& load) {
  {
    std::lock_guard<std::mutex> l(state_->mu);
    auto it = state_->entries.find(digest);
    if (it != state_->entries.end())
      if (Handle h = it->second.lock()) return h;
  }
  absl::StatusOr<store::TensorBytes> tb = load();
  if (!tb.ok()) return tb.status();
  if (tb->bytes().size() != nbytes)
    return absl::DataLossError(fmt::format("tensor {}: {} bytes read, {} expected", digest, tb->bytes().size(), nbytes));
  Populate(tb->bytes());
  auto* raw = new ResidentTensor{digest, nbytes, std::move(*tb)};
  std::shared_ptr<State> st = state_;
  // The deleter takes the entry off the books: the bytes are freed (or the
  // pack map released) when the last holder lets go.
  Handle h(raw, [st](const ResidentTensor* t) {
    {
      std::lock_guard<std::mutex> l(st->mu);
      auto it = st->entries.find(t->digest);
      if (it != st->entries.end() && it->second.expired()) st->entries.erase(it);
      st->bytes -= t->nbytes;
    }
    // A mapped tensor's pages leave this process with it (the pack map stays
    // for others; refaulting a dropped page of a read-only file map is safe).
    if (t->bytes.zero_copy()) Unpopulate(t->bytes.bytes());
    delete t;
  });
  std::lock_guard<std::mutex> l(state_->mu);
  state_->bytes += nbytes;  // the deleter takes it off again
  auto& slot = state_->entries[digest];
  if (Handle other = slot.lock()) return other;  // a concurrent load won; h is dropped after l
  slot = h;
  return h;
}

uint64_t ResidentCache::MissingBytes(std::span<const std::pair<std::string, uint64_t>> tensors) const {
  std::lock_guard<std::mutex> l(state_->mu);
  std::map<std::string_view, uint64_t> missing;
  for (const auto& [d, n] : tensors)
    if (!LiveLocked(state_->entries, d)) missing[d] = n;
  uint64_t total = 0;
  for (const auto& [d, n] : missing) total += n;
  return total;
}

bool ResidentCache::Has(const std::string& digest) const {
  std::lock_guard<std::mutex> l(state_->mu);
  return LiveLocked(state_->entries, digest);
}

uint64_t ResidentCache::resident_bytes() const {
  std::lock_guard<std::mutex> l(state_->mu);
  return state_->bytes;
}

uint64_t ResidentCache::tensors() const {
  std::lock_guard<std::mutex> l(state_->mu);
  return state_->entries.size();
}

}  // namespace hart::runtime
