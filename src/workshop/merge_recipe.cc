// mergekit YAML -> MergeRecipe. yaml-cpp throws; everything here runs inside
// one try block and turns exceptions into InvalidArgument naming the line.
#include "workshop/merge_recipe.h"

#include <cmath>
#include <set>

#include "core/quote.h"
#include "core/status.h"
#include "fmt/format.h"
#include "yaml-cpp/yaml.h"

namespace hart::workshop {
namespace {

constexpr size_t kMaxRecipeBytes = 1 << 20;
constexpr size_t kMaxListItems = 4096;

struct MethodRow {
  MergeMethod m;
  std::string_view name;
};
constexpr MethodRow kMethods[] = {
    {MergeMethod::kLinear, "linear"},
    {MergeMethod::kSlerp, "slerp"},
    {MergeMethod::kTaskArithmetic, "task_arithmetic"},
    {MergeMethod::kTies, "ties"},
    {MergeMethod::kDareLinear, "dare_linear"},
    {MergeMethod::kDareTies, "dare_ties"},
    {MergeMethod::kPassthrough, "passthrough"},
};

class Parser {
 public:
  explicit Parser(std::string_view file) : file_(file) {}

  absl::Status Error(const YAML::Node& at, std::string_view field, std::string_view what) const {
    const YAML::Mark m = at.Mark();
    if (m.line >= 0)
      return absl::InvalidArgumentError(
          fmt::format("{}:{}: {}: {}", file_, m.line + 1, field, what));
    return absl::InvalidArgumentError(fmt::format("{}: {}: {}", file_, field, what));
  }

  absl::StatusOr<double> Number(const YAML::Node& n, std::string_view field) const {
    if (!n.IsScalar()) return Error(n, field, "expected a number");
    const std::string& s = n.Scalar();
    if (s == "true") return 1.0;
    if (s == "false") return 0.0;
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(s, &used);
      if (used != s.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      return Error(n, field, fmt::format("expected a number, got {}", Quote(s)));
    }
    if (!std::isfinite(v)) return Error(n, field, fmt::format("{} is not finite", Quote(s)));
    return v;
  }

  absl::StatusOr<std::vector<double>> Values(const YAML::Node& n, std::string_view field) const {
    std::vector<double> out;
    if (n.IsSequence()) {
      if (n.size() == 0) return Error(n, field, "an empty gradient");
      if (n.size() > kMaxListItems) return Error(n, field, "a gradient of more than 4096 values");
      for (size_t i = 0; i < n.size(); ++i) {
        ASSIGN_OR_RETURN(double v, Number(n[i], fmt::format("{}[{}]", field, i)));
        out.push_back(v);
      }
      return out;
    }
    ASSIGN_OR_RETURN(double v, Number(n, field));
    out.push_back(v);
    return out;
  }

  absl::StatusOr<ParamSetting> Setting(const YAML::Node& n, std::string_view field) const {
    ParamSetting s;
    // A list of maps is a list of conditions; a list of scalars a gradient.
    if (n.IsSequence() && n.size() > 0 && n[0].IsMap()) {
      if (n.size() > kMaxListItems) return Error(n, field, "more than 4096 conditions");
      for (size_t i = 0; i < n.size(); ++i) {
        const YAML::Node c = n[i];
        const std::string cf = fmt::format("{}[{}]", field, i);
        if (!c.IsMap()) return Error(c, cf, "expected {filter, value}");
        ParamSetting::Cond cond;
        bool has_value = false;
        for (const auto& kv : c) {
          const std::string key = kv.first.as<std::string>();
          if (key == "filter") {
            if (!kv.second.IsScalar()) return Error(kv.second, cf + ".filter", "expected a string");
            cond.filter = kv.second.Scalar();
            if (cond.filter == "*") cond.filter.clear();
          } else if (key == "value") {
            ASSIGN_OR_RETURN(cond.values, Values(kv.second, cf + ".value"));
            has_value = true;
          } else {
            return Error(kv.first, cf, fmt::format("unknown key {} (expected filter, value)",
                                                   Quote(key)));
          }
        }
        if (!has_value) return Error(c, cf + ".value", "missing");
        s.conds.push_back(std::move(cond));
      }
      return s;
    }
    ParamSetting::Cond cond;
    ASSIGN_OR_RETURN(cond.values, Values(n, field));
    s.conds.push_back(std::move(cond));
    return s;
  }

  absl::StatusOr<Params> ParamMap(const YAML::Node& n, std::string_view field, MergeMethod m,
                                  bool global) const {
    Params out;
    if (n.IsNull()) return out;
    if (!n.IsMap()) return Error(n, field, "expected a map of parameters");
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      const std::string pf = fmt::format("{}.{}", field, key);
      if (!MethodTakes(m, key))
        return Error(kv.first, pf,
                     fmt::format("unknown parameter for merge_method {}", MethodName(m)));
      const bool global_only = key == "normalize" || key == "rescale" || key == "int8_mask" ||
                               key == "lambda";
      if (global_only && !global)
        return Error(kv.first, pf, "a whole-merge parameter: set it in the top-level parameters");
      ASSIGN_OR_RETURN(ParamSetting s, Setting(kv.second, pf));
      for (const auto& c : s.conds)
        for (double v : c.values) {
          if (key == "density" && !(v > 0 && v <= 1))
            return Error(kv.second, pf, fmt::format("{} is outside (0, 1]", v));
          if (key == "t" && !(v >= 0 && v <= 1))
            return Error(kv.second, pf, fmt::format("{} is outside [0, 1]", v));
        }
      out[key] = std::move(s);
    }
    return out;
  }

  absl::StatusOr<SourceSpec> Source(const YAML::Node& n, std::string field, MergeMethod m,
                                    bool in_slice) const {
    SourceSpec s;
    s.field = field;
    if (n.IsScalar()) {  // `- modelname` shorthand
      s.model = n.Scalar();
    } else if (n.IsMap()) {
      for (const auto& kv : n) {
        const std::string key = kv.first.as<std::string>();
        if (key == "model") {
          if (!kv.second.IsScalar()) return Error(kv.second, field + ".model", "expected a string");
          s.model = kv.second.Scalar();
        } else if (key == "parameters") {
          ASSIGN_OR_RETURN(s.params, ParamMap(kv.second, field + ".parameters", m, false));
        } else if (key == "layer_range" && in_slice) {
          const YAML::Node r = kv.second;
          if (!r.IsSequence() || r.size() != 2)
            return Error(r, field + ".layer_range", "expected [start, end]");
          ASSIGN_OR_RETURN(double a, Number(r[0], field + ".layer_range[0]"));
          ASSIGN_OR_RETURN(double b, Number(r[1], field + ".layer_range[1]"));
          if (a != std::floor(a) || b != std::floor(b) || a < 0 || b > 1e6)
            return Error(r, field + ".layer_range", "expected whole numbers >= 0");
          if (a >= b)
            return Error(r, field + ".layer_range",
                         fmt::format("[{}, {}] is empty: end must exceed start", a, b));
          s.layer_range = std::make_pair(static_cast<int64_t>(a), static_cast<int64_t>(b));
        } else {
          return Error(kv.first, field,
                       fmt::format("unknown key {} (expected model, parameters{})", Quote(key),
                                   in_slice ? ", layer_range" : ""));
        }
      }
    } else {
      return Error(n, field, "expected a model entry");
    }
    if (s.model.empty()) return Error(n, field + ".model", "missing");
    if (s.model.find('+') != std::string::npos)
      return Error(n, field + ".model",
                   fmt::format("{}: model+lora references are not supported; merge the adapter "
                               "first with `hart merge-lora`",
                               Quote(s.model)));
    if (in_slice && !s.layer_range) return Error(n, field + ".layer_range", "missing");
    return s;
  }

  absl::StatusOr<MergeRecipe> Parse(const YAML::Node& root) {
    MergeRecipe r;
    if (!root.IsMap()) return Error(root, "recipe", "expected a YAML map at the top");
    const YAML::Node mm = root["merge_method"];
    if (!mm) return Error(root, "merge_method", "missing");
    if (!mm.IsScalar()) return Error(mm, "merge_method", "expected a string");
    {
      auto m = MethodFromName(mm.Scalar());
      if (!m.ok()) return Error(mm, "merge_method", Msg(m.status()));
      r.method = *m;
    }
    std::set<std::string> seen;
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node v = kv.second;
      if (key == "merge_method") continue;
      if (key == "models") {
        if (!v.IsSequence() || v.size() == 0) return Error(v, "models", "expected a list of models");
        if (v.size() > kMaxListItems) return Error(v, "models", "more than 4096 models");
        for (size_t i = 0; i < v.size(); ++i) {
          ASSIGN_OR_RETURN(SourceSpec s, Source(v[i], fmt::format("models[{}]", i), r.method, false));
          r.models.push_back(std::move(s));
        }
      } else if (key == "slices") {
        r.uses_slices = true;
        if (!v.IsSequence() || v.size() == 0) return Error(v, "slices", "expected a list of slices");
        if (v.size() > kMaxListItems) return Error(v, "slices", "more than 4096 slices");
        for (size_t i = 0; i < v.size(); ++i) {
          SliceSpec sl;
          sl.field = fmt::format("slices[{}]", i);
          const YAML::Node sn = v[i];
          if (!sn.IsMap()) return Error(sn, sl.field, "expected a map with sources");
          for (const auto& skv : sn) {
            const std::string sk = skv.first.as<std::string>();
            if (sk == "sources") {
              const YAML::Node src = skv.second;
              if (!src.IsSequence() || src.size() == 0)
                return Error(src, sl.field + ".sources", "expected a list of sources");
              if (src.size() > kMaxListItems)
                return Error(src, sl.field + ".sources", "more than 4096 sources");
              for (size_t j = 0; j < src.size(); ++j) {
                ASSIGN_OR_RETURN(SourceSpec s, Source(src[j], fmt::format("{}.sources[{}]",
                                                                          sl.field, j),
                                                      r.method, true));
                sl.sources.push_back(std::move(s));
              }
            } else if (sk == "parameters") {
              ASSIGN_OR_RETURN(sl.params,
                               ParamMap(skv.second, sl.field + ".parameters", r.method, false));
            } else {
              return Error(skv.first, sl.field,
                           fmt::format("unknown key {} (expected sources, parameters)", Quote(sk)));
            }
          }
          if (sl.sources.empty()) return Error(sn, sl.field + ".sources", "missing");
          const int64_t len = sl.sources[0].layer_range->second - sl.sources[0].layer_range->first;
          for (const SourceSpec& s : sl.sources)
            if (s.layer_range->second - s.layer_range->first != len)
              return Error(sn, s.field + ".layer_range",
                           fmt::format("covers {} layers but {} covers {}: every source of a "
                                       "slice gives the same number of layers",
                                       s.layer_range->second - s.layer_range->first,
                                       sl.sources[0].field, len));
          r.slices.push_back(std::move(sl));
        }
      } else if (key == "base_model") {
        if (!v.IsScalar() || v.Scalar().empty()) return Error(v, "base_model", "expected a model");
        r.base_model = v.Scalar();
      } else if (key == "parameters") {
        ASSIGN_OR_RETURN(r.params, ParamMap(v, "parameters", r.method, true));
      } else if (key == "dtype" || key == "out_dtype") {
        if (!v.IsScalar()) return Error(v, key, "expected float32, float16 or bfloat16");
        const std::string& d = v.Scalar();
        if (d == "float32" || d == "fp32" || d == "f32") r.dtype = DType::kF32;
        else if (d == "float16" || d == "fp16" || d == "f16" || d == "half") r.dtype = DType::kF16;
        else if (d == "bfloat16" || d == "bf16") r.dtype = DType::kBF16;
        else
          return Error(v, key, fmt::format("{}: expected float32, float16 or bfloat16", Quote(d)));
      } else if (key == "random_seed") {
        ASSIGN_OR_RETURN(double s, Number(v, "random_seed"));
        if (s < 0 || s != std::floor(s) || s > 9.007199254740992e15)
          return Error(v, "random_seed", "expected a whole number >= 0");
        r.seed = static_cast<uint64_t>(s);
      } else if (key == "tokenizer_source" || key == "tokenizer" || key == "chat_template") {
        r.notes.push_back(fmt::format(
            "{} ignored: the merged version keeps the tokenizer and template of its base", key));
      } else {
        return Error(kv.first, key,
                     "unknown field (expected merge_method, models, slices, base_model, "
                     "parameters, dtype, random_seed, tokenizer_source)");
      }
      if (!seen.insert(key).second) return Error(kv.first, key, "given twice");
    }
    if (r.models.empty() == r.slices.empty())
      return Error(root, "models", "give exactly one of models and slices");

    // Method-specific shape of the recipe.
    const bool needs_base = r.method == MergeMethod::kSlerp ||
                            r.method == MergeMethod::kTaskArithmetic ||
                            r.method == MergeMethod::kTies || r.method == MergeMethod::kDareLinear ||
                            r.method == MergeMethod::kDareTies;
    if (needs_base && !r.base_model)
      return Error(root, "base_model", fmt::format("required by {}", MethodName(r.method)));
    auto check_count = [&](const std::vector<SourceSpec>& srcs, std::string_view field,
                           const YAML::Node& at) -> absl::Status {
      if (r.method == MergeMethod::kPassthrough && srcs.size() != 1)
        return Error(at, field, fmt::format("passthrough takes exactly one model here, got {}",
                                            srcs.size()));
      if (r.method == MergeMethod::kSlerp) {
        if (srcs.size() != 2)
          return Error(at, field, fmt::format("slerp takes exactly two models, got {}", srcs.size()));
        if (srcs[0].model != *r.base_model && srcs[1].model != *r.base_model)
          return Error(at, "base_model",
                       fmt::format("{} is not one of the two models of {}", Quote(*r.base_model),
                                   field));
      }
      return absl::OkStatus();
    };
    if (r.uses_slices) {
      for (const SliceSpec& sl : r.slices)
        RETURN_IF_ERROR(check_count(sl.sources, sl.field + ".sources", root["slices"]));
    } else {
      RETURN_IF_ERROR(check_count(r.models, "models", root["models"]));
    }
    if (r.method == MergeMethod::kSlerp) {
      bool has_t = r.params.count("t") > 0;
      for (const SliceSpec& sl : r.slices) has_t = has_t || sl.params.count("t") > 0;
      if (!has_t) return Error(root, "parameters.t", "required by slerp");
    }
    return r;
  }

 private:
  std::string file_;
};

}  // namespace

std::string_view MethodName(MergeMethod m) {
  for (const MethodRow& row : kMethods)
    if (row.m == m) return row.name;
  return "?";
}

absl::StatusOr<MergeMethod> MethodFromName(std::string_view name) {
  for (const MethodRow& row : kMethods)
    if (row.name == name) return row.m;
  return absl::InvalidArgumentError(
      fmt::format("unknown merge method {} (expected linear, slerp, task_arithmetic, ties, "
                  "dare_linear, dare_ties or passthrough)",
                  Quote(name)));
}

bool MethodTakes(MergeMethod m, std::string_view p) {
  switch (m) {
    case MergeMethod::kLinear:
      return p == "weight" || p == "normalize";
    case MergeMethod::kSlerp:
      return p == "t";
    case MergeMethod::kTaskArithmetic:
      return p == "weight" || p == "normalize" || p == "lambda" || p == "int8_mask";
    case MergeMethod::kTies:
      return p == "weight" || p == "density" || p == "normalize" || p == "lambda" ||
             p == "int8_mask";
    case MergeMethod::kDareLinear:
    case MergeMethod::kDareTies:
      return p == "weight" || p == "density" || p == "normalize" || p == "rescale" ||
             p == "lambda" || p == "int8_mask";
    case MergeMethod::kPassthrough:
      return false;
  }
  return false;
}

bool FilterMatches(std::string_view filter, std::string_view name) {
  if (name.find(filter) != std::string_view::npos) return true;
  // mergekit's filters name Hugging Face modules; GGUF names them otherwise.
  if (filter == "self_attn") return name.find(".attn_") != std::string_view::npos;
  if (filter == "mlp") return name.find(".ffn_") != std::string_view::npos;
  return false;
}

std::optional<double> ParamSetting::Evaluate(std::string_view name, double t) const {
  for (const Cond& c : conds) {
    if (!c.filter.empty() && !FilterMatches(c.filter, name)) continue;
    if (c.values.size() == 1) return c.values[0];
    // A gradient: piecewise linear over [0, 1], as mergekit interpolates.
    const double scaled = std::clamp(t, 0.0, 1.0) * static_cast<double>(c.values.size() - 1);
    const size_t i0 = static_cast<size_t>(std::floor(scaled));
    const size_t i1 = std::min(c.values.size() - 1, i0 + 1);
    const double frac = scaled - static_cast<double>(i0);
    return (1 - frac) * c.values[i0] + frac * c.values[i1];
  }
  return std::nullopt;
}

std::vector<std::string> MergeRecipe::ModelRefs() const {
  std::vector<std::string> out;
  auto add = [&](const std::string& m) {
    for (const std::string& x : out)
      if (x == m) return;
    out.push_back(m);
  };
  if (base_model) add(*base_model);
  for (const SourceSpec& s : models) add(s.model);
  for (const SliceSpec& sl : slices)
    for (const SourceSpec& s : sl.sources) add(s.model);
  return out;
}

absl::StatusOr<MergeRecipe> ParseMergeRecipe(std::string_view yaml, std::string_view file) {
  if (yaml.size() > kMaxRecipeBytes)
    return absl::InvalidArgumentError(
        fmt::format("{}: {} bytes: a recipe is at most 1 MiB", file, yaml.size()));
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    return Parser(file).Parse(root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        fmt::format("{}:{}: not valid YAML: {}", file, e.mark.line + 1, e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(fmt::format("{}: not a valid recipe: {}", file, e.what()));
  }
}

}  // namespace hart::workshop
