#include "app/models.h"

#include <sys/stat.h>

#include <filesystem>

#include "core/status.h"
#include "store/store.h"

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
  if (LooksLikePath(ref)) {
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
    ASSIGN_OR_RETURN(m->source, rt::OpenStoreWeights(store, row.ref()));
    m->ref = row.ref();
    m->name = row.model;
    m->version = row.number;
    m->created_at = row.created_at;
    m->from_store = true;
    m->store = std::move(store);
  }
  ASSIGN_OR_RETURN(m->tokenizer, rt::LoadTokenizer(*m->source));
  ASSIGN_OR_RETURN(auto cfg, m->source->Config());
  if (opts.threads > 0) m->pool = std::make_unique<ThreadPool>(static_cast<size_t>(opts.threads));
  rt::ModelOptions mo;
  mo.stream = opts.stream;
  mo.max_context = opts.max_context;
  mo.pool = m->pool.get();
  if (opts.stream.drop_page_cache) m->source->DropPageCache();
  ASSIGN_OR_RETURN(m->model, rt::Model::Load(m->source.get(), mo));
  const auto* md = m->source->gguf_metadata();
  m->chat_format = md != nullptr ? rt::DetectChatFormat(*md) : rt::DetectChatFormat(*m->tokenizer, rt::ArchName(cfg.arch));
  return std::shared_ptr<const LoadedModel>(std::move(m));
}

struct ModelRegistry::Entry {
  bool loading = true;
  std::shared_ptr<const LoadedModel> model;
  absl::Status status;
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
    if (e->model) return e->model;
    return e->status;  // the load this call waited on failed
  }
  auto e = std::make_shared<Entry>();
  entries_[key] = e;
  l.unlock();
  auto loaded = LoadModel(key, store_, opts_.load);
  l.lock();
  e->loading = false;
  if (loaded.ok()) {
    e->model = *loaded;
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

bool ModelRegistry::Unload(const std::string& ref) {
  std::lock_guard<std::mutex> l(mu_);
  auto key = ResolveKey(ref);
  auto it = entries_.find(key.ok() ? *key : ref);
  if (it == entries_.end() || !it->second->model) return false;
  entries_.erase(it);
  return true;
}

}  // namespace hart::app
