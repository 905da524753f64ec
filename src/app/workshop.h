// The workshop's use cases (src/workshop/): quantize, compose and rebuild a
// derived version, with their JSON. The CLI (cmd_workshop.cc) renders them.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/context.h"
#include "nlohmann/json.hpp"
#include "workshop/derive.h"
#include "workshop/recipe.h"

namespace hart::app {

// What every derivation reports: the new version, bytes written and stored,
// and the memory it took (--stats).
nlohmann::json DeriveResultJson(const workshop::DeriveResult& r);

struct QuantizeRequest {
  std::string version;             // MODEL[@V], a GGUF version with F32/F16/BF16 weights
  std::string type;                // q8_0 ... q6_k, q4_k_m, q5_k_m
  std::vector<std::string> keep;   // tensor-name globs left as they are
  std::string as;                  // output model name; default "<model>-<type>"
  static absl::StatusOr<QuantizeRequest> FromJson(const nlohmann::json& j);
};
// HF inputs converted on the way (workshop::ConvertInputs): [{"input",
// "hf", "converted", "created"}], the created ones with their new bytes.
nlohmann::json ConversionsJson(const std::vector<workshop::InputConversion>& c);

// Quantize and Compose take HF (safetensors + config.json) versions too:
// each is first converted to its GGUF layout (its stored `convert-hf`
// derivation reused, else one made and recorded; workshop/derive.h), and the
// method derives from that. The method is built and checked against the
// conversions made in memory before any is stored (workshop::PrepareInputs),
// so a refused operation leaves the store exactly as it was; the ones stored
// are deleted again only when writing fails after all (an I/O fault).
struct DeriveResponse {
  workshop::DeriveResult result;
  std::vector<workshop::InputConversion> conversions;
  nlohmann::json ToJson() const {
    nlohmann::json j = DeriveResultJson(result);
    j["conversions"] = ConversionsJson(conversions);
    return j;
  }
};
absl::StatusOr<DeriveResponse> Quantize(const Context& ctx, const QuantizeRequest& req);

struct ComposeRequest {
  nlohmann::json spec;  // see workshop/compose.h
  std::string as;       // output model name; default "<base model>-composed"
};
absl::StatusOr<DeriveResponse> Compose(const Context& ctx, const ComposeRequest& req);

// `hart convert`: the GGUF-layout version of an HF checkpoint version
// (workshop/hf_import.h), so the workshop's methods take it.
struct ConvertRequest {
  std::string version;  // MODEL[@V] ingested from a HF directory
  std::string as;       // output model name; default "<model>-gguf"
};
absl::StatusOr<DeriveResponse> Convert(const Context& ctx, const ConvertRequest& req);

struct RebuildResponse {
  workshop::RebuildResult result;
  nlohmann::json ToJson() const;
};
absl::StatusOr<RebuildResponse> Rebuild(const Context& ctx, std::string_view version);

}  // namespace hart::app
