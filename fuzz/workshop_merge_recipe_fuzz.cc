// libFuzzer target: arbitrary bytes as a mergekit recipe (YAML). Parsing
// answers with a recipe or an error, never crashes or throws; an accepted
// recipe names at least one model, and every parameter evaluates.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "workshop/merge_recipe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = hart::workshop::ParseMergeRecipe(text, "fuzz.yaml");
  if (!r.ok()) return 0;
  if (r->ModelRefs().empty()) std::abort();
  auto eval_all = [](const hart::workshop::Params& p) {
    for (const auto& [name, setting] : p)
      for (double t : {0.0, 0.37, 1.0}) (void)setting.Evaluate("blk.3.attn_q.weight", t);
  };
  eval_all(r->params);
  for (const auto& m : r->models) eval_all(m.params);
  for (const auto& sl : r->slices) {
    eval_all(sl.params);
    for (const auto& s : sl.sources) eval_all(s.params);
  }
  return 0;
}
