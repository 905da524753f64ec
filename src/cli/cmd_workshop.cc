// The workshop's commands: `hart quantize`, `hart compose`, `hart convert`,
// `hart rebuild`.
// Each derives a new version inside the store (src/workshop/), streamed
// tensor by tensor, and records how it was made (`hart show` prints it).
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "app/workshop.h"
#include "cli/command.h"
#include "cli/output.h"
#include "fmt/format.h"
#include "core/progress.h"

namespace hart::cli {
namespace {

void PrintDerived(const workshop::DeriveResult& r, bool stats) {
  fmt::print("{}: {} tensors ({} computed, {} taken unchanged), {} of tensors; {} new bytes stored\n",
             r.ref, r.ingest.tensors, r.computed_tensors, r.taken_tensors, HumanBytes(r.output_bytes),
             HumanBytes(r.ingest.new_bytes));
  if (stats)
    fmt::print("stats: {:.2f} s, read {} from the store, peak RSS {}, largest tensor buffer {}\n",
               r.seconds, HumanBytes(r.input_bytes), HumanBytes(r.peak_rss_bytes),
               HumanBytes(r.max_tensor_buffer));
}

// HF inputs converted on the way (app/workshop.h).
void PrintConversions(const std::vector<workshop::InputConversion>& conv) {
  for (const workshop::InputConversion& c : conv)
    if (c.created)
      fmt::print("converted {} (Hugging Face) to {}, its GGUF layout; {} new bytes stored\n", c.hf_ref,
                 c.converted, HumanBytes(c.result.ingest.new_bytes));
    else
      fmt::print("{} (Hugging Face): using its conversion {}\n", c.hf_ref, c.converted);
}

struct QuantizeArgs {
  std::string version, type, as;
  std::vector<std::string> keep;
  bool stats = false;
};

int RunQuantize(Cli& cli, const QuantizeArgs& a) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto r = app::Quantize(*ctx, {a.version, a.type, a.keep, a.as});
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
  } else {
    PrintConversions(r->conversions);
    PrintDerived(r->result, a.stats);
  }
  return kExitOk;
}

struct ComposeArgs {
  std::string spec, as, base;
  std::vector<std::string> blocks, tensors;
  bool stats = false;
};

// SPEC is a JSON file, inline JSON, or empty with --base/--blocks/--tensor.
absl::StatusOr<nlohmann::json> ComposeSpec(const ComposeArgs& a) {
  if (!a.spec.empty()) {
    std::string text = a.spec;
    if (a.spec.front() != '{') {
      std::ifstream in(a.spec);
      if (!in) return absl::NotFoundError(fmt::format("{}: cannot read the compose spec", a.spec));
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded())
      return absl::InvalidArgumentError(fmt::format("{}: the compose spec is not valid JSON", a.spec));
    return j;
  }
  if (a.base.empty()) return absl::InvalidArgumentError("compose: give SPEC (JSON) or --base with --blocks/--tensor");
  nlohmann::json j = {{"base", a.base}, {"parts", nlohmann::json::array()}};
  for (const std::string& b : a.blocks) {
    // REF:LO-HI
    size_t colon = b.rfind(':'), dash = b.rfind('-');
    if (colon == std::string::npos || dash == std::string::npos || dash < colon)
      return absl::InvalidArgumentError(fmt::format("--blocks {}: expected REF:FIRST-LAST", b));
    try {
      j["parts"].push_back({{"from", b.substr(0, colon)},
                            {"blocks", {std::stoll(b.substr(colon + 1, dash - colon - 1)),
                                        std::stoll(b.substr(dash + 1))}}});
    } catch (...) {
      return absl::InvalidArgumentError(fmt::format("--blocks {}: expected REF:FIRST-LAST", b));
    }
  }
  for (const std::string& t : a.tensors) {
    size_t colon = t.find(':');
    if (colon == std::string::npos)
      return absl::InvalidArgumentError(fmt::format("--tensor {}: expected REF:TENSOR", t));
    j["parts"].push_back({{"from", t.substr(0, colon)}, {"tensors", {t.substr(colon + 1)}}});
  }
  return j;
}

int RunCompose(Cli& cli, const ComposeArgs& a) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto spec = ComposeSpec(a);
  if (!spec.ok()) return Fail(spec.status());
  auto r = app::Compose(*ctx, {*spec, a.as});
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
  } else {
    PrintConversions(r->conversions);
    PrintDerived(r->result, a.stats);
  }
  return kExitOk;
}

int RunRebuild(Cli& cli, const std::string& version) {
  auto ctx = cli.MakeContext();
  if (!ctx.ok()) return Fail(ctx.status());
  auto r = app::Rebuild(*ctx, version);
  if (!r.ok()) return Fail(r.status());
  if (cli.json()) {
    PrintJson(r->ToJson());
  } else if (r->result.identical) {
    fmt::print("{}: rebuilt by {} with the same file digest {}\n", r->result.ref, r->result.method,
               r->result.stored_digest);
  } else {
    fmt::print("{}: rebuilt by {} but the digest differs: stored {}, rebuilt {}\n", r->result.ref,
               r->result.method, r->result.stored_digest, r->result.rebuilt_digest);
  }
  return r->result.identical ? kExitOk : kExitData;
}

}  // namespace

void RegisterWorkshop(Cli& cli) {
  auto q = std::make_shared<QuantizeArgs>();
  CLI::App* qc = cli.AddCommand("quantize",
                                "derive a quantized version (ggml block types, llama.cpp's choices)",
                                [&cli, q] { return RunQuantize(cli, *q); });
  qc->add_option("version", q->version, "MODEL[@V]: a GGUF version with F32/F16/BF16 weights")->required();
  qc->add_option("--type", q->type, "q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k (every matrix), "
                                    "q4_k_m, q5_k_m (llama.cpp's per-tensor presets)")
      ->required();
  qc->add_option("--keep", q->keep, "tensor-name glob left as it is (repeatable)");
  qc->add_option("--as", q->as, "model name of the new version (default MODEL-TYPE)");
  qc->add_flag("--stats", q->stats, "print time, bytes read and peak memory");

  auto c = std::make_shared<ComposeArgs>();
  CLI::App* cc = cli.AddCommand("compose",
                                "derive a version from blocks and tensors of others (no bytes copied)",
                                [&cli, c] { return RunCompose(cli, *c); });
  cc->add_option("spec", c->spec,
                 "JSON file or inline JSON: {\"base\": REF, \"parts\": [{\"from\": REF, \"blocks\": "
                 "[FIRST, LAST]} | {\"from\": REF, \"tensors\": [NAME...]}]}");
  cc->add_option("--base", c->base, "the version giving metadata and the other tensors");
  cc->add_option("--blocks", c->blocks, "REF:FIRST-LAST, appended in order (repeatable)");
  cc->add_option("--tensor", c->tensors, "REF:NAME replacing the base's tensor (repeatable)");
  cc->add_option("--as", c->as, "model name of the new version (default BASE-composed)");
  cc->add_flag("--stats", c->stats, "print time, bytes read and peak memory");

  auto cv = std::make_shared<std::pair<app::ConvertRequest, bool>>();
  CLI::App* cvc = cli.AddCommand(
      "convert",
      "derive the GGUF-layout version of a Hugging Face checkpoint version, for quantize, compose and merge",
      [&cli, cv] {
        auto ctx = cli.MakeContext();
        if (!ctx.ok()) return Fail(ctx.status());
        auto r = app::Convert(*ctx, cv->first);
        if (!r.ok()) return Fail(r.status());
        if (cli.json()) PrintJson(r->ToJson());
        else PrintDerived(r->result, cv->second);
        return kExitOk;
      });
  cvc->add_option("version", cv->first.version,
                  "MODEL[@V] ingested from a HF directory (safetensors + config.json + tokenizer.json)")
      ->required();
  cvc->add_option("--as", cv->first.as, "model name of the new version (default MODEL-gguf)");
  cvc->add_flag("--stats", cv->second, "print time, bytes read and peak memory");

  auto version = std::make_shared<std::string>();
  CLI::App* rc = cli.AddCommand("rebuild",
                                "re-run a derived version's recipe and check the file digest is identical",
                                [&cli, version] { return RunRebuild(cli, *version); });
  rc->add_option("version", *version, "MODEL[@V] of a derived version")->required();
}

}  // namespace hart::cli
