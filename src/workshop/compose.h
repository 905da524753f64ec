// `hart compose`: a version assembled from named components of others,
// with no tensor bytes computed: every tensor is taken unchanged, so the
// new version stores zero new tensor bytes.
//
// Spec (JSON):
//   {"base": "A@1",                      // metadata and non-block tensors
//    "parts": [{"from": "A@1", "blocks": [0, 11]},   // inclusive range
//              {"from": "B@2", "blocks": [12, 23]},
//              {"from": "C",   "tensors": ["token_embd.weight"]}]}
// Blocks are appended in part order and renumbered from 0 (so a part may
// repeat or stack layers); `tensors` replace the base's tensors of the same
// name. Every source must have the base's architecture and the
// hyper-parameters that shape a block (embedding and feed-forward length,
// head counts, key/value lengths, rope dimensions), and every tensor the
// base's shape for its role; `<arch>.block_count` is rewritten.
#pragma once

#include "nlohmann/json.hpp"
#include "workshop/derive.h"

namespace hart::workshop {

// Parses and checks the spec against the stored versions; errors name the
// field ("parts[1].blocks: 30 is past the last block 23 of B@2").
// The derivation's parameters are the spec with every ref resolved to
// "model@N", its inputs the versions in spec order (base first).
absl::StatusOr<Derivation> BuildCompose(store::Store& store, const nlohmann::json& spec);

}  // namespace hart::workshop
