// From the pickled tree of a torch checkpoint to named tensors: the walk
// that names them, the JSON summary of everything else, and the mapping of
// (storage, offset, size, stride) onto bytes.
#include <cmath>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "core/status.h"
#include "fmt/format.h"
#include "formats/torch_internal.h"
#include "formats/limits.h"

namespace hart::formats::torch_internal {
namespace {

constexpr int kMaxDepth = kMaxPickleNesting;  // formats/limits.h
constexpr size_t kMaxValues = 256;     // non-tensor leaves kept in metadata
constexpr size_t kMaxJsonNodes = 2048;  // per rendered value
constexpr size_t kMaxJsonString = 1024;
constexpr int kMaxJsonDepth = 8;

std::string KeyName(const PickleValue* k) {
  switch (k->kind) {
    case PickleKind::kString: return k->text;
    case PickleKind::kInt: return std::to_string(k->integer);
    case PickleKind::kBigInt: return k->text;
    case PickleKind::kBool: return k->boolean ? "True" : "False";
    case PickleKind::kNone: return "None";
    case PickleKind::kFloat: return fmt::format("{}", k->real);
    case PickleKind::kGlobal: return fmt::format("{}.{}", k->text, k->name);
    case PickleKind::kTuple: {
      std::string s = "(";
      for (size_t i = 0; i < k->items.size() && i < 8; ++i)
        s += (i ? ", " : "") + (k->items[i]->kind == PickleKind::kTuple ? std::string("(...)")
                                                                        : KeyName(k->items[i]));
      return s + ")";
    }
    default: return fmt::format("<{}>", PickleKindName(k->kind));
  }
}

class JsonRenderer {
 public:
  nlohmann::json Render(const PickleValue* v, int depth) {
    if (nodes_++ >= kMaxJsonNodes || depth > kMaxJsonDepth) return "...";
    switch (v->kind) {
      case PickleKind::kNone: return nullptr;
      case PickleKind::kBool: return v->boolean;
      case PickleKind::kInt: return v->integer;
      case PickleKind::kBigInt: return v->text;
      case PickleKind::kFloat:
        if (std::isfinite(v->real)) return v->real;
        return fmt::format("{}", v->real);
      case PickleKind::kString:
        if (v->text.size() <= kMaxJsonString) return v->text;
        return {{"type", "str"}, {"length", v->text.size()}};
      case PickleKind::kBytes: return {{"type", "bytes"}, {"length", v->text.size()}};
      case PickleKind::kGlobal: return fmt::format("{}.{}", v->text, v->name);
      case PickleKind::kDevice: return fmt::format("device({})", v->text);
      case PickleKind::kStorage: return {{"storage", v->text}};
      case PickleKind::kTensor: return {{"type", "tensor"}};
      case PickleKind::kOpaque: return "<refused>";
      case PickleKind::kTuple:
      case PickleKind::kList:
      case PickleKind::kSet: {
        nlohmann::json head = nlohmann::json::array();
        for (size_t i = 0; i < v->items.size() && i < kMaxJsonArray; ++i)
          head.push_back(Render(v->items[i], depth + 1));
        if (v->items.size() <= kMaxJsonArray) return head;
        return {{"type", "array"}, {"count", v->items.size()}, {"head", std::move(head)}};
      }
      case PickleKind::kDict: {
        nlohmann::json o = nlohmann::json::object();
        size_t n = v->items.size() / 2;
        for (size_t i = 0; i < n && i < kMaxJsonArray; ++i)
          o[KeyName(v->items[2 * i])] = Render(v->items[2 * i + 1], depth + 1);
        if (n > kMaxJsonArray) o["..."] = fmt::format("{} more keys", n - kMaxJsonArray);
        return o;
      }
    }
    return nullptr;
  }

 private:
  size_t nodes_ = 0;
};

class Walker {
 public:
  Walker(std::string_view file, size_t arena_size, Collected* out)
      : file_(file), visit_limit_(4 * arena_size + 100000), out_(out) {}

  absl::Status Walk(const PickleValue* v, const std::string& path, int depth) {
    if (depth > kMaxDepth)
      return DataError(file_, v->offset, fmt::format("{}", Quote(path)), fmt::format("nested deeper than {}", kMaxDepth));
    if (++visits_ > visit_limit_)
      return DataError(file_, v->offset, "pickle", "shares containers too many times to walk");
    switch (v->kind) {
      case PickleKind::kTensor: return AddTensor(v, path.empty() ? "tensor" : path);
      case PickleKind::kDict:
      case PickleKind::kList:
      case PickleKind::kTuple:
        break;
      default:
        AddValue(path, v);
        return absl::OkStatus();
    }
    if (v->kind == PickleKind::kDict && v->state && out_->module_metadata.is_null())
      FindModuleMetadata(v->state);
    if (!path.empty() && !ContainsTensor(v, 0)) {
      AddValue(path, v);
      return absl::OkStatus();
    }
    if (!on_path_.insert(v).second)
      return DataError(file_, v->offset, fmt::format("{}", Quote(path)), "a container contains itself");
    bool dict = v->kind == PickleKind::kDict;
    size_t n = dict ? v->items.size() / 2 : v->items.size();
    for (size_t i = 0; i < n; ++i) {
      std::string key = dict ? KeyName(v->items[2 * i]) : std::to_string(i);
      const PickleValue* child = dict ? v->items[2 * i + 1] : v->items[i];
      RETURN_IF_ERROR(Walk(child, path.empty() ? key : path + "." + key, depth + 1));
    }
    on_path_.erase(v);
    return absl::OkStatus();
  }

 private:
  bool ContainsTensor(const PickleValue* v, int depth) {
    if (v->kind == PickleKind::kTensor) return true;
    if (v->kind != PickleKind::kDict && v->kind != PickleKind::kList && v->kind != PickleKind::kTuple)
      return false;
    if (depth > kMaxDepth) return true;  // let Walk report the depth
    auto [it, fresh] = contains_.try_emplace(v, false);  // false while in progress: cycles end here
    if (!fresh) return it->second;
    bool dict = v->kind == PickleKind::kDict;
    bool found = false;
    for (size_t i = dict ? 1 : 0; i < v->items.size() && !found; i += dict ? 2 : 1)
      found = ContainsTensor(v->items[i], depth + 1);
    contains_[v] = found;
    return found;
  }

  void AddValue(const std::string& path, const PickleValue* v) {
    if (out_->values.size() >= kMaxValues) {
      ++out_->values_omitted;
      return;
    }
    out_->values[path.empty() ? "value" : path] = JsonRenderer().Render(v, 0);
  }

  void FindModuleMetadata(const PickleValue* state) {
    if (state->kind != PickleKind::kDict) return;
    for (size_t i = 0; i + 1 < state->items.size(); i += 2) {
      const PickleValue* k = state->items[i];
      if (k->kind == PickleKind::kString && k->text == "_metadata")
        out_->module_metadata = JsonRenderer().Render(state->items[i + 1], 0);
    }
  }

  absl::Status AddTensor(const PickleValue* t, std::string name) {
    const PickleValue* s = t->items[0];
    std::string type_name = s->items.empty() ? "?" : fmt::format("{}.{}", s->items[0]->text, s->items[0]->name);
    auto [it, fresh] = out_->storages.try_emplace(s->text);
    StorageInfo& info = it->second;
    if (fresh) {
      info.type_name = type_name;
      info.dtype = s->dtype;
      info.dtype_ok = s->dtype_ok;
      info.numel = static_cast<uint64_t>(s->integer);
      info.first_offset = s->offset;
    } else if (info.type_name != type_name || info.numel != static_cast<uint64_t>(s->integer)) {
      return DataError(file_, s->offset, fmt::format("storage {}", Quote(s->text)),
                       fmt::format("declared as {} x {} here but as {} x {} at offset {}", type_name,
                                   s->integer, info.type_name, info.numel, info.first_offset));
    }
    out_->tensors.push_back({std::move(name), t});
    return absl::OkStatus();
  }

  std::string_view file_;
  uint64_t visits_ = 0;
  uint64_t visit_limit_;
  Collected* out_;
  std::unordered_set<const PickleValue*> on_path_;
  std::unordered_map<const PickleValue*, bool> contains_;
};

// Copies a strided view into contiguous row-major bytes.
void Gather(const uint8_t* base, size_t es, const std::vector<int64_t>& sizes,
            const std::vector<int64_t>& strides, uint8_t* out) {
  size_t nd = sizes.size();
  if (nd == 0) {
    std::memcpy(out, base, es);
    return;
  }
  std::vector<int64_t> idx(nd, 0);
  int64_t inner = sizes[nd - 1], inner_stride = strides[nd - 1];
  for (;;) {
    const uint8_t* row = base;
    for (size_t d = 0; d + 1 < nd; ++d) row += static_cast<size_t>(idx[d] * strides[d]) * es;
    if (inner_stride == 1) {
      std::memcpy(out, row, static_cast<size_t>(inner) * es);
      out += static_cast<size_t>(inner) * es;
    } else {
      for (int64_t i = 0; i < inner; ++i, out += es)
        std::memcpy(out, row + static_cast<size_t>(i * inner_stride) * es, es);
    }
    size_t d = nd - 1;
    for (;;) {  // odometer over the outer dimensions
      if (d == 0) return;
      --d;
      if (++idx[d] < sizes[d]) break;
      idx[d] = 0;
    }
  }
}

}  // namespace

absl::Status OwnedBudget::Take(uint64_t bytes, std::string_view what) {
  if (bytes > limit_ - used_)
    return DataError(file_, 0, what,
                     fmt::format("copying {} more bytes would exceed the limit of {} bytes copied "
                                 "out of the file (strided views, compressed entries)",
                                 bytes, limit_));
  used_ += bytes;
  return absl::OkStatus();
}

absl::StatusOr<Collected> CollectTensors(const PickleResult& pickle, std::string_view file) {
  Collected c;
  Walker w(file, pickle.arena.size(), &c);
  RETURN_IF_ERROR(w.Walk(pickle.root, "", 0));
  return c;
}

nlohmann::json ValueToJson(const PickleValue* v) { return JsonRenderer().Render(v, 0); }

absl::StatusOr<std::vector<TensorDesc>> MaterializeTensors(const Collected& c, std::string_view file,
                                                           OwnedBudget& budget) {
  std::vector<TensorDesc> out;
  // Identical strided views (one tensor object reached twice) share one copy.
  std::map<std::string, std::shared_ptr<const std::vector<uint8_t>>> copies;
  for (const NamedTensor& nt : c.tensors) {
    const PickleValue* t = nt.tensor;
    const PickleValue* s = t->items[0];
    const StorageInfo& info = c.storages.at(s->text);
    std::string field = fmt::format("tensor {}", Quote(nt.name));
    if (!info.dtype_ok)
      return DataError(file, t->offset, field,
                       fmt::format("storage type {} (complex or quantized) has no Hartonomous dtype; not supported",
                                   info.type_name));
    if (!info.located) return absl::InternalError(fmt::format("storage {} was not located", Quote(s->text)));
    uint64_t es = Info(info.dtype).type_size;
    TensorDesc d;
    d.name = nt.name;
    d.dtype = info.dtype;
    for (int64_t n : t->sizes) d.shape.push_back(static_cast<uint64_t>(n));
    auto numel = NumElements(d.shape);
    if (!numel.ok()) return DataError(file, t->offset, field, Msg(numel.status()));
    auto nbytes = ByteSize(d.dtype, *numel);
    if (!nbytes.ok()) return DataError(file, t->offset, field, Msg(nbytes.status()));
    d.nbytes = *nbytes;
    // The legacy format can view a sub-range of a stored storage.
    uint64_t lo = static_cast<uint64_t>(s->view_offset);
    uint64_t hi = s->view_numel < 0 ? info.numel : lo + static_cast<uint64_t>(s->view_numel);
    if (lo > info.numel || hi > info.numel || hi < lo)
      return DataError(file, s->offset, field, fmt::format("storage view [{}, {}) exceeds its {} elements", lo, hi, info.numel));
    unsigned __int128 first = static_cast<unsigned __int128>(lo) + static_cast<uint64_t>(t->integer);
    if (*numel == 0) {
      if (info.data.in_file) d.offset = info.data.file_offset;
      else d.owned = std::make_shared<const std::vector<uint8_t>>();
      out.push_back(std::move(d));
      continue;
    }
    unsigned __int128 last = first;
    bool contiguous = true;
    uint64_t expect = 1;
    for (size_t i = t->sizes.size(); i-- > 0;) {
      auto size = static_cast<uint64_t>(t->sizes[i]), stride = static_cast<uint64_t>(t->strides[i]);
      last += static_cast<unsigned __int128>(size - 1) * stride;
      if (size != 1 && stride != expect) contiguous = false;
      expect *= size;  // <= numel, which fit
    }
    if (last >= hi)
      return DataError(file, t->offset, field,
                       fmt::format("offset {}, size {}, stride {} reach element {} of a storage view of {}",
                                   t->integer, ShapeToString(d.shape), fmt::join(t->strides, ","),
                                   static_cast<uint64_t>(std::min<unsigned __int128>(last, UINT64_MAX)), hi));
    uint64_t start = static_cast<uint64_t>(first) * es;  // < storage bytes
    if (contiguous && info.data.in_file) {
      d.offset = info.data.file_offset + start;
    } else if (contiguous && start == 0 && d.nbytes == info.data.bytes.size()) {
      d.owned = info.data.owner;  // the whole inflated storage
    } else {
      std::string key = fmt::format("{}/{}/{}/{}/{}", s->text, static_cast<uint64_t>(first),
                                    fmt::join(t->sizes, ","), fmt::join(t->strides, ","), es);
      auto& shared = copies[key];
      if (!shared) {
        RETURN_IF_ERROR(budget.Take(d.nbytes, field));
        auto buf = std::make_shared<std::vector<uint8_t>>(d.nbytes);
        Gather(info.data.bytes.data() + start, es, t->sizes, t->strides, buf->data());
        shared = std::move(buf);
      }
      d.owned = shared;
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace hart::formats::torch_internal
