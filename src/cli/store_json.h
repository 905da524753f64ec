// JSON forms of the store's result rows, as `hart --json` prints them and as
// later surfaces (the HTTP API) can reuse. Byte counts are exact integers.
#pragma once

#include "nlohmann/json.hpp"
#include "store/store.h"

namespace hart::cli {

nlohmann::json ToJson(const store::IngestResult& r);
nlohmann::json ToJson(const store::ModelRow& r);
nlohmann::json ToJson(const store::VersionRow& r, bool with_metadata = false);
nlohmann::json ToJson(const store::TensorRow& r);
nlohmann::json ToJson(const store::FileRow& r);
nlohmann::json ToJson(const store::DiffRow& r);
nlohmann::json ToJson(const store::VerifyReport& r);
nlohmann::json ToJson(const store::GcReport& r);
nlohmann::json ToJson(const store::StatsRow& r);
nlohmann::json ToJson(const store::StatsReport& r);
nlohmann::json ToJson(const store::Event& e);

std::string_view DiffKindName(store::DiffRow::Kind k);  // "added", "removed", "changed"

}  // namespace hart::cli
