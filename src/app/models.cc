#include "app/models.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <thread>

#include "app/errors.h"
#include "core/progress.h"
#include "core/status.h"
#include "store/store.h"
#include "workshop/lora.h"

namespace hart::app {

namespace rt = hart::runtime;

bool LooksLikePath(const std::string& ref) {
  std::error_code ec;
  return ref.ends_with(".gguf") || ref.ends_with(".safetensors") || std::filesystem::exists(ref, ec);
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> LoadModel(const std::string& ref,
                                                             std::shared_ptr<store::Store> store,
                                                             const ModelLoadOptions& opts) {
  auto m = std::make_shared<LoadedModel>();
  rt::ModelOptions mo;
  if (LooksLikePath(ref)) {
    if (!opts.lora.empty())
      return absl::InvalidArgumentError(fmt::format(
          "model '{}': --lora applies to a stored version (import the base and the adapter first)", ref));
    ASSIGN_OR_RETURN(m->source, rt::OpenFileWeights(ref, opts.tokenizer));
    m->ref = ref;
    m->name = std::filesystem::path(ref).filename().string();
    struct stat sb {};
    if (::stat(ref.c_str(), &sb) == 0) m->created_at = static_cast<int64_t>(sb.st_mtime);
  } else {
    if (!opts.tokenizer.empty())
      return absl::InvalidArgumentError(fmt::format(
          "model '{}': a tokenizer file applies to a llama2.c checkpoint file; a stored version has its own", ref));
    if (store == nullptr) return absl::NotFoundError(fmt::format("model '{}': no store is open", ref));
    ASSIGN_OR_RETURN(auto vref, store::ParseVersionRef(ref));
    ASSIGN_OR_RETURN(auto row, store->Resolve(vref));
    rt::StoreWeightOptions so;
    // Streamed models read through their own buffers; only resident ones map.
    if (opts.stream.budget == 0) so.cache = opts.cache;
    for (const auto& l : opts.lora) {
      ASSIGN_OR_RETURN(auto pairs, workshop::ReadLoraForRun(*store, row.ref(), l.ref, l.scale));
      for (auto& p : pairs) mo.lora.push_back(std::move(p));
    }
    ASSIGN_OR_RETURN(m->source, rt::OpenStoreWeights(store, row.ref(), so));
    m->ref = row.ref();
    m->name = row.model;
    m->version = row.number;
    m->created_at = row.created_at;
    m->from_store = true;
    m->store = std::move(store);
  }
  if (opts.tokenizers != nullptr) {
    ASSIGN_OR_RETURN(m->tokenizer, opts.tokenizers->Get(*m->source));
  } else {
    ASSIGN_OR_RETURN(m->tokenizer, rt::LoadTokenizer(*m->source));
  }
  ASSIGN_OR_RETURN(auto cfg, m->source->Config());
  if (opts.threads > 0) m->pool = std::make_unique<ThreadPool>(static_cast<size_t>(opts.threads));
  mo.stream = opts.stream;
  mo.max_context = opts.max_context;
  mo.pool = m->pool.get();
  if (opts.stream.drop_page_cache) m->source->DropPageCache();
  // Resident through the cache: every tensor now (the forward pass maps
  // the embedding table only at its first token, the norms never), so the
  // model's resident bytes are all of its tensors from the start.
  if (m->source->resident_cached())
    for (const auto& t : m->source->tensors()) RETURN_IF_ERROR(m->source->Map(t).status());
  ASSIGN_OR_RETURN(m->model, rt::Model::Load(m->source.get(), mo));
  const auto* md = m->source->gguf_metadata();
  m->chat_format = md != nullptr ? rt::DetectChatFormat(*md) : rt::DetectChatFormat(*m->tokenizer, rt::ArchName(cfg.arch));
  // Last reader of the vocabulary arrays (the tokenizer and the chat format
  // are built): a held model keeps only what its Tokenizer holds.
  if (opts.release_tokenizer_arrays) m->source->ReleaseTokenizerArrays();
  return std::shared_ptr<const LoadedModel>(std::move(m));
}

Residency LoadedModel::residency() const {
  Residency r;
  if (tokenizer != nullptr) {
    r.tokenizer_bytes = tokenizer->memory_bytes();
    // Only loaded models hold tokenizers (the cache's references are weak).
    r.tokenizer_shared = tokenizer.use_count() > 1;
  }
  const rt::StreamerStats st = model->streamer_stats();
  if (st.budget > 0) {
    r.streamed = true;
    r.resident_bytes = st.resident_bytes;
    return r;
  }
  if (source->resident_cached()) {
    const rt::ResidentUsage u = source->resident_usage();
    r.resident_bytes = u.bytes;
    r.shared_bytes = u.shared_bytes;
    return r;
  }
  for (const auto& t : source->tensors()) r.resident_bytes += t.nbytes;
  return r;
}

nlohmann::json LoadedModelInfo::ToJson() const {
  return {{"ref", ref},
          {"mode", residency.streamed ? "streamed" : "resident"},
          {"resident_bytes", residency.resident_bytes},
          {"shared_bytes", residency.shared_bytes},
          {"tokenizer_bytes", residency.tokenizer_bytes},
          {"tokenizer_shared", residency.tokenizer_shared},
          {"last_used", last_used},
          {"holders", holders}};
}

nlohmann::json RegistryStats::ToJson() const {
  nlohmann::json ms = nlohmann::json::array();
  for (const auto& m : models) ms.push_back(m.ToJson());
  return {{"budget", budget},         {"resident_bytes", resident_bytes}, {"saved_bytes", saved_bytes},
          {"loads", loads},           {"evictions", evictions},           {"streamed_loads", streamed_loads},
          {"tokenizer_bytes", tokenizer_bytes}, {"tokenizer_saved_bytes", tokenizer_saved_bytes},
          {"tokenizers", tokenizers},           {"models", std::move(ms)}};
}

struct ModelRegistry::Entry {
  bool loading = true;
  std::shared_ptr<const LoadedModel> model;
  absl::Status status;
  uint64_t use_seq = 0;   // LRU order
  int64_t last_used = 0;  // unix seconds
};

ModelRegistry::ModelRegistry(std::shared_ptr<store::Store> store, RegistryOptions opts)
    : store_(std::move(store)), opts_(std::move(opts)) {}

ModelRegistry::~ModelRegistry() = default;

absl::StatusOr<std::string> ModelRegistry::ResolveKey(const std::string& ref) {
  if (ref.empty()) return absl::InvalidArgumentError("model: empty name");
  if (opts_.allow_paths && LooksLikePath(ref)) return ref;
  if (store_ == nullptr) return absl::NotFoundError(fmt::format("model '{}': no store is open", ref));
  ASSIGN_OR_RETURN(auto vref, store::ParseVersionRef(ref));
  ASSIGN_OR_RETURN(auto row, store_->Resolve(vref));
  return row.ref();
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::Get(const std::string& ref) {
  std::string key;
  {
    std::lock_guard<std::mutex> l(mu_);
    ASSIGN_OR_RETURN(key, ResolveKey(ref));
  }
  std::unique_lock<std::mutex> l(mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    std::shared_ptr<Entry> e = it->second;
    cv_.wait(l, [&] { return !e->loading; });
    e->use_seq = ++use_seq_;
    e->last_used = static_cast<int64_t>(std::time(nullptr));
    if (e->model) return e->model;
    return e->status;  // the load this call waited on failed
  }
  auto e = std::make_shared<Entry>();
  e->use_seq = ++use_seq_;
  e->last_used = static_cast<int64_t>(std::time(nullptr));
  entries_[key] = e;
  l.unlock();
  auto loaded = LoadWithinBudget(key);
  l.lock();
  e->loading = false;
  if (loaded.ok()) {
    e->model = *loaded;
    loads_++;
  } else {
    e->status = loaded.status();
    auto cur = entries_.find(key);
    if (cur != entries_.end() && cur->second == e) entries_.erase(cur);
  }
  cv_.notify_all();
  return loaded;
}

std::vector<std::shared_ptr<const LoadedModel>> ModelRegistry::Loaded() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::shared_ptr<const LoadedModel>> out;
  for (const auto& [key, e] : entries_)
    if (e->model) out.push_back(e->model);
  return out;
}

uint64_t ModelRegistry::ResidentBytesLocked() const {
  uint64_t total = cache_->resident_bytes();
  for (const auto& [key, e] : entries_) {
    if (!e->model) continue;
    const Residency r = e->model->residency();
    // Cached tensors are in the cache's total already; the rest is the model's own.
    if (r.streamed || !e->model->source->resident_cached()) total += r.resident_bytes;
  }
  return total;
}

absl::StatusOr<std::shared_ptr<const LoadedModel>> ModelRegistry::LoadWithinBudget(const std::string& key) {
  std::lock_guard<std::mutex> one_load(load_mu_);
  ModelLoadOptions lo = opts_.load;
  lo.cache = cache_;
  lo.tokenizers = tokenizers_;
  lo.release_tokenizer_arrays = true;
  if (opts_.budget == 0 || store_ == nullptr || (opts_.allow_paths && LooksLikePath(key)))
    return LoadModel(key, store_, lo);
  const uint64_t budget = opts_.budget;
  // What a resident load would add: the tensors no loaded model holds yet.
  ASSIGN_OR_RETURN(auto vref, store::ParseVersionRef(key));
  ASSIGN_OR_RETURN(auto row, store_->Resolve(vref));
  ASSIGN_OR_RETURN(auto rows, store_->ListTensors(row.id));
  std::vector<std::pair<std::string, uint64_t>> want;
  for (const auto& t : rows)
    want.emplace_back(t.sha256.empty() ? key + "/" + t.name : t.sha256, t.nbytes);
  uint64_t need = 0, used = 0;
  // A request holds its model until its handler returns, a moment after its
  // response is out: a load right behind it waits up to kSettle for such
  // holders to let go before it streams or refuses.
  constexpr auto kSettle = std::chrono::milliseconds(500);
  const auto settle_until = std::chrono::steady_clock::now() + kSettle;
  for (;;) {
    std::shared_ptr<const LoadedModel> victim;
    bool held = false;  // a loaded model is in use now
    {
      std::lock_guard<std::mutex> l(mu_);
      need = cache_->MissingBytes(want);
      used = ResidentBytesLocked();
      if (used + need <= budget) break;
      // The idle model used longest ago: only the registry holds it.
      auto lru = entries_.end();
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        const auto& e = it->second;
        if (e->loading || !e->model) continue;
        if (e->model.use_count() > 1) {
          held = true;
          continue;
        }
        if (lru == entries_.end() || e->use_seq < lru->second->use_seq) lru = it;
      }
      if (lru == entries_.end()) {
        if (!held || std::chrono::steady_clock::now() >= settle_until) break;
      } else {
        victim = std::move(lru->second->model);
        entries_.erase(lru);
        evictions_++;
      }
    }
    if (victim == nullptr) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    victim.reset();  // frees its tensors no other model holds (outside mu_: joins threads)
  }
  const uint64_t free = budget > used ? budget - used : 0;
  if (need <= free) {
    lo.stream.budget = 0;  // all resident, through the cache
    return LoadModel(key, store_, lo);
  }
  // Larger than what is free: streamed under the free part.
  const std::string why = used == 0 ? fmt::format("the memory budget ({})", HumanBytes(budget))
                                    : fmt::format("the {} of the memory budget ({}) that models in use leave free",
                                                  HumanBytes(free), HumanBytes(budget));
  absl::StatusOr<std::shared_ptr<const LoadedModel>> m = absl::FailedPreconditionError("no memory left");
  if (free > 0) {
    lo.stream.budget = free;
    m = LoadModel(key, store_, lo);
  }
  if (m.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    streamed_loads_++;
    return m;
  }
  if (m.status().code() != absl::StatusCode::kFailedPrecondition) return m.status();
  if (used == 0)
    return absl::InvalidArgumentError(fmt::format("model '{}': {} is too small for even one layer of it: {}", key,
                                                  why, std::string(m.status().message())));
  return TooManyRequests(fmt::format("model '{}': {} is too small for even one layer of it ({}); try again when "
                                     "the requests using the other models finish",
                                     key, why, std::string(m.status().message())),
                         1);
}

RegistryStats ModelRegistry::Stats() const {
  RegistryStats st;
  std::lock_guard<std::mutex> l(mu_);
  st.budget = opts_.budget;
  st.loads = loads_;
  st.evictions = evictions_;
  st.streamed_loads = streamed_loads_;
  st.resident_bytes = ResidentBytesLocked();
  for (const auto& [key, e] : entries_) {
    if (!e->model) continue;
    LoadedModelInfo info;
    info.ref = key;
    info.residency = e->model->residency();
    info.last_used = e->last_used;
    info.holders = e->model.use_count() - 1;
    st.models.push_back(std::move(info));
  }
  // What sharing saves: the models' cached bytes each counted alone, less
  // the cache's total (each digest once).
  uint64_t sum = 0;
  for (const auto& [key, e] : entries_)
    if (e->model && e->model->source->resident_cached() && !e->model->residency().streamed)
      sum += e->model->residency().resident_bytes;
  const uint64_t cached = cache_->resident_bytes();
  st.saved_bytes = sum > cached ? sum - cached : 0;
  // Tokenizers: each model's counted alone, less the cache's total (each
  // digest once; evicted models still in use keep theirs alive and counted).
  uint64_t tok_sum = 0;
  for (const auto& m : st.models) tok_sum += m.residency.tokenizer_bytes;
  st.tokenizer_bytes = tokenizers_->bytes();
  st.tokenizers = tokenizers_->tokenizers();
  st.tokenizer_saved_bytes = tok_sum > st.tokenizer_bytes ? tok_sum - st.tokenizer_bytes : 0;
  return st;
}

bool ModelRegistry::Unload(const std::string& ref) {
  std::lock_guard<std::mutex> l(mu_);
  auto key = ResolveKey(ref);
  auto it = entries_.find(key.ok() ? *key : ref);
  if (it == entries_.end() || !it->second->model) return false;
  entries_.erase(it);
  return true;
}

}  // namespace hart::app
