// PlanMerge / RunMerge: recipe -> checked derivation -> Derive.
#include "workshop/merge.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "core/decode.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "fmt/format.h"
#include "runtime/kernels.h"
#include "workshop/merge_math.h"

namespace hart::workshop {
namespace {

// Elements per streamed block: 1 MiB of floats per input, a whole number of
// blocks of every ggml type.
std::atomic<uint64_t> g_block_elems{uint64_t{1} << 18};
// The pool merges run on (null: ThreadPool::Default()); tests vary it.
std::atomic<ThreadPool*> g_pool{nullptr};

std::string ShapeText(const Shape& s) { return nlohmann::json(s).dump(); }

// "blk.12.attn_q.weight" -> (12, "attn_q.weight").
std::optional<std::pair<int64_t, std::string>> SplitLayer(std::string_view name) {
  if (!name.starts_with("blk.")) return std::nullopt;
  const size_t dot = name.find('.', 4);
  if (dot == std::string_view::npos || dot == 4) return std::nullopt;
  int64_t n = 0;
  for (size_t i = 4; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9' || n > 1000000) return std::nullopt;
    n = n * 10 + (name[i] - '0');
  }
  return std::make_pair(n, std::string(name.substr(dot + 1)));
}

bool IsFloat(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

// One opened input model.
struct Input {
  std::string ref;  // as the recipe names it
  SourceModel model;
  int64_t layers = 0;
  std::string field;  // where the recipe first names it
};

// One input of one output tensor.
struct TensorInput {
  int64_t version_id = 0;
  store::TensorRow row;
  const SourceSpec* spec = nullptr;  // its parameters (null: base added implicitly)
};

// Reads [begin, end) bytes of a stored tensor from its pack extents.
absl::Status ReadRange(store::ExtentReader& reader, const std::vector<store::Extent>& extents,
                       uint64_t begin, std::span<uint8_t> out) {
  uint64_t pos = 0;  // tensor byte offset of the current extent
  size_t done = 0;
  for (const store::Extent& e : extents) {
    if (done == out.size()) break;
    const uint64_t want = begin + done;
    if (want < pos + e.size) {
      const uint64_t skip = want - pos;
      const uint64_t n = std::min<uint64_t>(e.size - skip, out.size() - done);
      RETURN_IF_ERROR(reader.ReadCopy(store::Extent{e.pack, e.offset + skip, n},
                                      out.subspan(done, n)));
      done += n;
    }
    pos += e.size;
  }
  if (done != out.size())
    return absl::DataLossError(fmt::format("tensor bytes end at {}, wanted {}", pos, begin + out.size()));
  return absl::OkStatus();
}

void EncodeOut(DType t, const float* in, size_t n, uint8_t* out) {
  if (t == DType::kF32) {
    std::memcpy(out, in, n * 4);
  } else if (t == DType::kF16) {
    for (size_t i = 0; i < n; ++i) {
      const uint16_t h = runtime::F32ToF16(in[i]);
      std::memcpy(out + 2 * i, &h, 2);
    }
  } else {
    // F32ToBF16 without a branch, so the loop vectorizes: round to nearest
    // even, NaN kept quiet.
    uint16_t* o = reinterpret_cast<uint16_t*>(out);
    const uint32_t* u = reinterpret_cast<const uint32_t*>(in);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t x = u[i];
      const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
      const uint32_t nan = (x >> 16) | 0x40u;
      o[i] = static_cast<uint16_t>((x & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
    }
  }
}

// What a computed tensor's callback needs; shared by all callbacks.
struct Shared {
  store::Store* store = nullptr;
  std::unique_ptr<store::ExtentReader> reader;
  std::shared_ptr<std::atomic<uint64_t>> read_bytes;
};

ThreadPool& MergePool() {
  ThreadPool* p = g_pool.load();
  return p ? *p : ThreadPool::Default();
}

// The tensor is merged block by block and each block's output handed to the
// scratch file as it is made: a tensor costs two blocks of each input's
// stored bytes, a block of floats of each input and the output, never the
// whole tensor. While a block is decoded, merged and encoded on the thread
// pool (TensorMerger::kParts parts each), the next block's bytes are read
// on a thread of their own, so the O_DIRECT reads overlap the arithmetic.
ComputePiecesFn MakeCompute(std::shared_ptr<Shared> sh, std::vector<TensorInput> inputs,
                            MergeSettings s, DType out_type) {
  std::string name(s.name);  // s.name points into the planner's strings
  return [sh, inputs = std::move(inputs), s = std::move(s), out_type,
          name = std::move(name)](const PieceSink& emit) -> absl::Status {
    MergeSettings settings = s;
    settings.name = name;
    ASSIGN_OR_RETURN(const uint64_t numel, NumElements(inputs[0].row.shape));
    std::vector<std::vector<store::Extent>> extents;
    for (const TensorInput& in : inputs) {
      ASSIGN_OR_RETURN(auto ex, sh->store->LocateTensor(in.version_id, in.row.name));
      extents.push_back(std::move(ex));
    }
    ThreadPool& pool = MergePool();
    TensorMerger merger(settings, inputs.size(), numel);
    const uint64_t kBlockElems = g_block_elems.load();
    const uint64_t blocks = (numel + kBlockElems - 1) / kBlockElems;
    const uint64_t steps = blocks * (merger.observe_passes() + 1);
    // Step j reads block j % blocks (the observe passes, then the merge).
    auto block_of = [&](uint64_t step) {
      const uint64_t off = (step % blocks) * kBlockElems;
      return std::make_pair(off, static_cast<size_t>(std::min(kBlockElems, numel - off)));
    };
    std::vector<std::vector<uint8_t>> raw[2];
    raw[0].resize(inputs.size());
    raw[1].resize(inputs.size());
    auto read = [&](uint64_t step) -> absl::Status {
      const auto [off, n] = block_of(step);
      std::vector<std::vector<uint8_t>>& r = raw[step % 2];
      for (size_t i = 0; i < inputs.size(); ++i) {
        const DType t = inputs[i].row.dtype;
        ASSIGN_OR_RETURN(uint64_t b0, ByteSize(t, off));
        ASSIGN_OR_RETURN(uint64_t nb, ByteSize(t, n));
        r[i].resize(nb);
        RETURN_IF_ERROR(ReadRange(*sh->reader, extents[i], b0, r[i]));
        *sh->read_bytes += nb;
      }
      return absl::OkStatus();
    };
    std::vector<std::vector<float>> bufs(inputs.size());
    std::vector<const float*> ptrs(inputs.size());
    std::vector<float> res;
    std::vector<uint8_t> out;
    const size_t esize = Info(out_type).type_size;
    constexpr size_t kParts = TensorMerger::kParts;
    // Declared after the buffers it fills: destroyed (joined) first.
    std::future<absl::Status> next;
    if (steps > 0) next = std::async(std::launch::async, read, 0);
    for (uint64_t step = 0; step < steps; ++step) {
      RETURN_IF_ERROR(next.get());
      if (step + 1 < steps) next = std::async(std::launch::async, read, step + 1);
      const auto [off, n] = block_of(step);
      const std::vector<std::vector<uint8_t>>& r = raw[step % 2];
      const int pass = static_cast<int>(step / blocks);
      for (size_t i = 0; i < inputs.size(); ++i) {
        bufs[i].resize(n);
        ptrs[i] = bufs[i].data();
      }
      // Decodes input i's part [b, e) (part bounds are whole ggml blocks).
      auto decode = [&](size_t i, size_t b, size_t e) -> absl::Status {
        const DType t = inputs[i].row.dtype;
        ASSIGN_OR_RETURN(uint64_t b0, ByteSize(t, b));
        ASSIGN_OR_RETURN(uint64_t b1, ByteSize(t, e));
        return DecodeToF32(t, std::span<const uint8_t>(r[i]).subspan(b0, b1 - b0),
                           std::span<float>(bufs[i].data() + b, e - b));
      };
      res.resize(n);
      out.resize(n * esize);
      if (pass == merger.observe_passes() && merger.parts_independent()) {
        // The merge pass of every method but ties: each part decoded,
        // merged and encoded by one task (one pool round per block).
        std::vector<absl::Status> st(kParts);
        pool.ParallelFor(kParts, [&](size_t k) {
          const auto [b, e] = TensorMerger::Part(n, k);
          if (e == b) return;
          std::vector<const float*> part(inputs.size());
          for (size_t i = 0; i < inputs.size(); ++i) {
            st[k] = decode(i, b, e);
            if (!st[k].ok()) return;
            part[i] = bufs[i].data() + b;
          }
          merger.ComputeRange(off + b, part, e - b, res.data() + b);
          EncodeOut(out_type, res.data() + b, e - b, out.data() + b * esize);
        });
        for (const absl::Status& x : st) RETURN_IF_ERROR(x);
        RETURN_IF_ERROR(emit(out));
        continue;
      }
      std::vector<absl::Status> st(inputs.size() * kParts);
      pool.ParallelFor(inputs.size() * kParts, [&](size_t job) {
        const auto [b, e] = TensorMerger::Part(n, job % kParts);
        if (e > b) st[job] = decode(job / kParts, b, e);
      });
      for (const absl::Status& x : st) RETURN_IF_ERROR(x);
      if (pass < merger.observe_passes()) {
        merger.Observe(pass, off, ptrs, n, &pool);
        continue;
      }
      merger.Compute(off, ptrs, n, res.data(), &pool);
      pool.ParallelFor(kParts, [&](size_t k) {
        const auto [b, e] = TensorMerger::Part(n, k);
        if (e > b) EncodeOut(out_type, res.data() + b, e - b, out.data() + b * esize);
      });
      RETURN_IF_ERROR(emit(out));
    }
    return absl::OkStatus();
  };
}

class Planner {
 public:
  Planner(store::Store& store, const MergeRecipe& r) : store_(store), r_(r) {}

  absl::StatusOr<MergePlan> Plan(std::string_view recipe_text) {
    RETURN_IF_ERROR(OpenInputs());
    sh_ = std::make_shared<Shared>();
    sh_->store = &store_;
    sh_->reader = store_.OpenExtentReader();
    sh_->read_bytes = std::make_shared<std::atomic<uint64_t>>(0);
    plan_.read_bytes = sh_->read_bytes;
    const Input& tmpl = *template_;
    plan_.template_ref = tmpl.model.version.ref();
    if (r_.method == MergeMethod::kPassthrough && r_.dtype)
      plan_.notes.push_back("dtype ignored by passthrough: tensors are taken unchanged");
    if (r_.params.count("int8_mask"))
      plan_.notes.push_back("int8_mask has no effect here: masks are never materialized");

    // Pre / post tensors and layer tensors of the template, in file order.
    std::vector<const store::TensorRow*> pre, post;
    bool seen_layer = false;
    for (const store::TensorRow& t : tmpl.model.tensors) {
      if (SplitLayer(t.name)) {
        seen_layer = true;
      } else {
        (seen_layer ? post : pre).push_back(&t);
      }
    }
    if (!r_.uses_slices) {
      std::vector<const SourceSpec*> specs;
      for (const SourceSpec& s : r_.models) specs.push_back(&s);
      for (const store::TensorRow& t : tmpl.model.tensors) {
        auto layer = SplitLayer(t.name);
        double tt = 0;
        if (layer) tt = tmpl.layers > 1 ? static_cast<double>(layer->first) / (tmpl.layers - 1) : 0;
        else tt = std::find(pre.begin(), pre.end(), &t) != pre.end() ? 0.0 : 1.0;
        std::vector<std::pair<const SourceSpec*, std::string>> srcs;
        for (const SourceSpec* s : specs) srcs.emplace_back(s, t.name);
        RETURN_IF_ERROR(AddTensor(t.name, srcs, nullptr, tt));
      }
      plan_.layers = tmpl.layers;
    } else {
      for (const store::TensorRow* t : pre) RETURN_IF_ERROR(AddNonLayer(*t, r_.slices.front(), 0.0));
      int64_t out_layer = 0;
      for (const SliceSpec& sl : r_.slices) {
        const int64_t len = sl.sources[0].layer_range->second - sl.sources[0].layer_range->first;
        for (int64_t j = 0; j < len; ++j, ++out_layer) {
          const double tt = len > 1 ? static_cast<double>(j) / (len - 1) : 0.0;
          const SourceSpec& first = sl.sources[0];
          const Input& fin = *inputs_.at(first.model);
          const int64_t src_layer = first.layer_range->first + j;
          const std::string prefix = fmt::format("blk.{}.", src_layer);
          bool any = false;
          for (const store::TensorRow& t : fin.model.tensors) {
            auto l = SplitLayer(t.name);
            if (!l || l->first != src_layer) continue;
            any = true;
            std::vector<std::pair<const SourceSpec*, std::string>> srcs;
            for (const SourceSpec& s : sl.sources)
              srcs.emplace_back(&s, fmt::format("blk.{}.{}", s.layer_range->first + j, l->second));
            RETURN_IF_ERROR(AddTensor(fmt::format("blk.{}.{}", out_layer, l->second), srcs, &sl, tt));
          }
          if (!any)
            return absl::InvalidArgumentError(fmt::format(
                "{}.layer_range: {} has no tensors of layer {}", first.field,
                fin.model.version.ref(), src_layer));
        }
      }
      for (const store::TensorRow* t : post) RETURN_IF_ERROR(AddNonLayer(*t, r_.slices.back(), 1.0));
      plan_.layers = out_layer;
    }

    Derivation& d = plan_.derivation;
    d.metadata = tmpl.model.header.metadata;
    d.alignment = tmpl.model.header.alignment;
    const std::string arch = tmpl.model.header.metadata.GetString("general.architecture").value_or("");
    if (!arch.empty() && plan_.layers != tmpl.layers)
      SetMetadata(&d.metadata, fmt::format("{}.block_count", arch),
                  U32(static_cast<uint32_t>(plan_.layers)));
    d.method = "merge";
    nlohmann::json resolved = nlohmann::json::object();
    for (const auto& [ref, in] : inputs_) resolved[ref] = in->model.version.ref();
    d.parameters = {{"recipe", std::string(recipe_text)},
                    {"merge_method", std::string(MethodName(r_.method))},
                    {"resolved", resolved},
                    {"random_seed", r_.seed}};
    for (const std::string& ref : r_.ModelRefs()) {
      const Input& in = *inputs_.at(ref);
      if (std::find(d.inputs.begin(), d.inputs.end(), in.model.version.id) != d.inputs.end())
        continue;
      d.inputs.push_back(in.model.version.id);
      plan_.input_refs.push_back(in.model.version.ref());
    }
    for (const std::string& n : r_.notes) plan_.notes.push_back(n);
    return std::move(plan_);
  }

 private:
  absl::Status OpenInputs() {
    auto open = [&](const std::string& ref, const std::string& field) -> absl::Status {
      if (inputs_.count(ref)) return absl::OkStatus();
      auto m = OpenSource(store_, ref);
      if (!m.ok()) return Annotate(m.status(), field);
      auto in = std::make_unique<Input>();
      in->ref = ref;
      in->field = field;
      in->model = std::move(*m);
      for (const store::TensorRow& t : in->model.tensors)
        if (auto l = SplitLayer(t.name)) in->layers = std::max(in->layers, l->first + 1);
      inputs_[ref] = std::move(in);
      return absl::OkStatus();
    };
    if (r_.base_model) RETURN_IF_ERROR(open(*r_.base_model, "base_model"));
    for (const SourceSpec& s : r_.models) RETURN_IF_ERROR(open(s.model, s.field + ".model"));
    for (const SliceSpec& sl : r_.slices)
      for (const SourceSpec& s : sl.sources) RETURN_IF_ERROR(open(s.model, s.field + ".model"));
    template_ = r_.base_model ? inputs_.at(*r_.base_model).get()
                              : inputs_.at(r_.uses_slices ? r_.slices[0].sources[0].model
                                                          : r_.models[0].model)
                                    .get();
    const std::string arch =
        template_->model.header.metadata.GetString("general.architecture").value_or("");
    for (const auto& [ref, in] : inputs_) {
      const std::string a = in->model.header.metadata.GetString("general.architecture").value_or("");
      if (a != arch)
        return absl::InvalidArgumentError(fmt::format(
            "{}: {} is a '{}' model but {} is '{}': models of different architectures do not merge",
            in->field, in->model.version.ref(), a, template_->model.version.ref(), arch));
    }
    for (const SliceSpec& sl : r_.slices)
      for (const SourceSpec& s : sl.sources) {
        const Input& in = *inputs_.at(s.model);
        if (s.layer_range->second > in.layers)
          return absl::InvalidArgumentError(fmt::format(
              "{}.layer_range: [{}, {}] is out of bounds: {} has {} layers", s.field,
              s.layer_range->first, s.layer_range->second, in.model.version.ref(), in.layers));
      }
    // Methods with a base need it among each slice's sources.
    const bool with_base = r_.method != MergeMethod::kLinear && r_.method != MergeMethod::kPassthrough;
    if (with_base && r_.uses_slices)
      for (const SliceSpec& sl : r_.slices) {
        bool found = false;
        for (const SourceSpec& s : sl.sources) found = found || s.model == *r_.base_model;
        if (!found)
          return absl::InvalidArgumentError(fmt::format(
              "{}.sources: base_model '{}' is not among this slice's sources", sl.field,
              *r_.base_model));
      }
    return absl::OkStatus();
  }

  absl::Status AddNonLayer(const store::TensorRow& t, const SliceSpec& sl, double tt) {
    std::vector<std::pair<const SourceSpec*, std::string>> srcs;
    for (const SourceSpec& s : sl.sources) srcs.emplace_back(&s, t.name);
    return AddTensor(t.name, srcs, &sl, tt);
  }

  // The value of parameter `p` for input `spec` on tensor `name`.
  std::optional<double> Param(std::string_view p, const SourceSpec* spec, const SliceSpec* sl,
                              std::string_view name, double t) const {
    if (spec) {
      auto it = spec->params.find(std::string(p));
      if (it != spec->params.end())
        if (auto v = it->second.Evaluate(name, t)) return v;
    }
    if (sl) {
      auto it = sl->params.find(std::string(p));
      if (it != sl->params.end())
        if (auto v = it->second.Evaluate(name, t)) return v;
    }
    auto it = r_.params.find(std::string(p));
    if (it != r_.params.end()) return it->second.Evaluate(name, t);
    return std::nullopt;
  }

  absl::Status AddTensor(const std::string& out_name,
                         std::vector<std::pair<const SourceSpec*, std::string>> srcs,
                         const SliceSpec* sl, double tt) {
    // Inputs: the base first for methods that have one (added when the
    // recipe lists it only as base_model), then the rest in recipe order.
    const bool with_base = r_.method != MergeMethod::kLinear && r_.method != MergeMethod::kPassthrough;
    std::vector<std::pair<const SourceSpec*, std::string>> ordered;
    if (with_base) {
      auto it = std::find_if(srcs.begin(), srcs.end(),
                             [&](const auto& s) { return s.first->model == *r_.base_model; });
      if (it != srcs.end()) {
        ordered.push_back(*it);
        srcs.erase(it);
      } else {
        ordered.emplace_back(nullptr, srcs.front().second);
      }
    }
    for (auto& s : srcs) ordered.push_back(std::move(s));

    std::vector<TensorInput> ins;
    for (const auto& [spec, name] : ordered) {
      const Input& in = *inputs_.at(spec ? spec->model : *r_.base_model);
      const std::string field = spec ? spec->field : "base_model";
      const store::TensorRow* row = in.model.Find(name);
      if (!row)
        return absl::InvalidArgumentError(fmt::format(
            "{}: {} has no tensor '{}' (wanted for output '{}')", field, in.model.version.ref(),
            name, out_name));
      if (!ins.empty() && row->shape != ins[0].row.shape)
        return absl::InvalidArgumentError(fmt::format(
            "{}: tensor '{}' of {} is {} but '{}' of {} is {}: shapes differ", field, name,
            in.model.version.ref(), ShapeText(row->shape), ins[0].row.name,
            inputs_.at(ordered[0].first ? ordered[0].first->model : *r_.base_model)
                ->model.version.ref(),
            ShapeText(ins[0].row.shape)));
      if (!CanDecode(row->dtype) && r_.method != MergeMethod::kPassthrough)
        return absl::InvalidArgumentError(fmt::format(
            "{}: tensor '{}' of {} is {}, which the merge cannot read as float", field, name,
            in.model.version.ref(), Name(row->dtype)));
      ins.push_back(TensorInput{in.model.version.id, *row, spec});
    }

    OutputTensor out;
    out.name = out_name;
    out.shape = ins[0].row.shape;
    if (r_.method == MergeMethod::kPassthrough) {
      out.dtype = ins[0].row.dtype;
      out.taken = TensorOrigin{ins[0].version_id, ins[0].row.name};
      plan_.derivation.tensors.push_back(std::move(out));
      ++plan_.taken;
      return absl::OkStatus();
    }

    // Output type.
    const DType tmpl_type = ins[0].row.dtype;
    if (out.shape.size() <= 1) {
      out.dtype = IsFloat(tmpl_type) ? tmpl_type : DType::kF32;
    } else if (r_.dtype) {
      out.dtype = *r_.dtype;
    } else {
      for (size_t i = 0; i < ins.size(); ++i)
        if (!IsFloat(ins[i].row.dtype))
          return absl::InvalidArgumentError(fmt::format(
              "dtype: required: input '{}' of {} is {} (quantized); say which float type the "
              "merge writes (float32, float16, bfloat16)",
              ins[i].row.name,
              inputs_.at(ins[i].spec ? ins[i].spec->model : *r_.base_model)->model.version.ref(),
              Name(ins[i].row.dtype)));
      out.dtype = tmpl_type;
    }

    MergeSettings s;
    s.method = r_.method;
    s.base = 0;
    s.seed = r_.seed;
    s.name = out_name;
    const std::string_view pname = ins[0].row.name;  // parameters see the template's name
    s.normalize = Param("normalize", nullptr, nullptr, pname, tt).value_or(DefaultNormalize(r_.method)) != 0;
    s.rescale = Param("rescale", nullptr, nullptr, pname, tt).value_or(DefaultRescale(r_.method)) != 0;
    s.lambda = Param("lambda", nullptr, nullptr, pname, tt).value_or(1.0);
    if (r_.method == MergeMethod::kSlerp) {
      auto t = Param("t", nullptr, sl, pname, tt);
      if (!t)
        return absl::InvalidArgumentError(fmt::format(
            "parameters.t: no value for tensor '{}' (no condition matches it and none is a "
            "default)", out_name));
      s.t = *t;
      if (ins.size() != 2)
        return absl::InvalidArgumentError("slerp: exactly two models");
    }
    for (size_t i = 0; i < ins.size(); ++i) {
      const bool is_base = with_base && i == 0;
      const SourceSpec* spec = ins[i].spec;
      std::optional<double> w = Param("weight", spec, sl, pname, tt);
      if (!w && !is_base && r_.method != MergeMethod::kSlerp)
        return absl::InvalidArgumentError(fmt::format(
            "{}.parameters.weight: required by {} (no weight for tensor '{}')",
            spec ? spec->field : "base_model", MethodName(r_.method), out_name));
      s.weight.push_back(w.value_or(1.0));
      s.density.push_back(Param("density", spec, sl, pname, tt).value_or(1.0));
    }
    if (r_.method == MergeMethod::kLinear && s.normalize) {
      double sum = 0;
      for (double w : s.weight) sum += w;
      if (sum == 0)
        return absl::InvalidArgumentError(fmt::format(
            "parameters.normalize: the weights of tensor '{}' sum to 0", out_name));
    }
    out.pieces = MakeCompute(sh_, std::move(ins), std::move(s), out.dtype);
    plan_.derivation.tensors.push_back(std::move(out));
    ++plan_.computed;
    return absl::OkStatus();
  }

  store::Store& store_;
  const MergeRecipe& r_;
  std::map<std::string, std::unique_ptr<Input>> inputs_;
  const Input* template_ = nullptr;
  std::shared_ptr<Shared> sh_;
  MergePlan plan_;
};

}  // namespace

void SetMergeBlockElemsForTesting(uint64_t n) { g_block_elems = n ? n : uint64_t{1} << 18; }

void SetMergeThreadsForTesting(size_t threads) {
  static std::mutex mu;
  static std::unique_ptr<ThreadPool> owned;
  std::lock_guard<std::mutex> l(mu);
  g_pool = nullptr;
  owned.reset();
  if (threads == 0) return;
  owned = std::make_unique<ThreadPool>(threads);
  g_pool = owned.get();
}

absl::StatusOr<MergePlan> PlanMerge(store::Store& store, const MergeRecipe& recipe,
                                    std::string_view recipe_text) {
  return Planner(store, recipe).Plan(recipe_text);
}

absl::StatusOr<Derivation> BuildMergeFromRecord(store::Store& store,
                                                const nlohmann::json& parameters) {
  if (!parameters.is_object() || !parameters.contains("recipe") || !parameters["recipe"].is_string())
    return absl::DataLossError("merge record: parameters.recipe missing");
  const std::string text = parameters["recipe"].get<std::string>();
  ASSIGN_OR_RETURN(MergeRecipe recipe, ParseMergeRecipe(text, "recorded recipe"));
  // The references the merge resolved when it ran, so a later version of a
  // model named without @N does not change the rebuild.
  const nlohmann::json resolved = parameters.value("resolved", nlohmann::json::object());
  auto pin = [&](std::string& ref) {
    if (resolved.contains(ref) && resolved[ref].is_string()) ref = resolved[ref].get<std::string>();
  };
  if (recipe.base_model) pin(*recipe.base_model);
  for (SourceSpec& s : recipe.models) pin(s.model);
  for (SliceSpec& sl : recipe.slices)
    for (SourceSpec& s : sl.sources) pin(s.model);
  ASSIGN_OR_RETURN(MergePlan plan, PlanMerge(store, recipe, text));
  // PlanMerge records the pinned refs as resolved; keep the original record.
  plan.derivation.parameters = parameters;
  return std::move(plan.derivation);
}

absl::StatusOr<MergeResult> RunMerge(store::Store& store, std::string_view recipe_text,
                                     std::string_view recipe_file, const DeriveOptions& opts) {
  ASSIGN_OR_RETURN(MergeRecipe recipe, ParseMergeRecipe(recipe_text, recipe_file));
  MergeResult res;
  ASSIGN_OR_RETURN(res.plan, PlanMerge(store, recipe, recipe_text));
  DeriveOptions o = opts;
  if (o.model.empty()) o.model = std::filesystem::path(std::string(recipe_file)).stem().string();
  if (o.model.empty()) o.model = "merged";
  ASSIGN_OR_RETURN(res.derive, Derive(store, res.plan.derivation, o));
  // Bytes the merge read itself (computed tensors' inputs, every pass)
  // besides what Derive read for taken tensors.
  res.derive.input_bytes += res.plan.read_bytes ? res.plan.read_bytes->load() : 0;
  return res;
}

}  // namespace hart::workshop
