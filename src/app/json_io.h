// Strict reading of request JSON for FromJson: every field typed, unknown
// fields refused, each error InvalidArgument naming the field
// ("field 'k': expected an integer, got string"). Also the JSON forms of
// the store's rows, shared by every response (moved from cli/store_json).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "store/store.h"

namespace hart::app {

// Reads the fields of one JSON object. Each getter leaves the target as it
// was when the field is absent (or null, for optional fields) and records
// the first error; Finish() adds "unknown field" for any field no getter
// asked for, and returns the first error.
class FieldReader {
 public:
  // `what` prefixes errors ("search request: field 'k': ..."). A non-object
  // `j` is an error at Finish().
  FieldReader(const nlohmann::json& j, std::string_view what);

  FieldReader& String(std::string_view key, std::string* out, bool required = false);
  FieldReader& OptString(std::string_view key, std::optional<std::string>* out);
  FieldReader& Int(std::string_view key, int64_t* out, bool required = false,
                   int64_t min = INT64_MIN, int64_t max = INT64_MAX);
  FieldReader& Int(std::string_view key, int* out, bool required = false, int min = INT32_MIN,
                   int max = INT32_MAX);
  FieldReader& Double(std::string_view key, double* out, bool required = false);
  FieldReader& Bool(std::string_view key, bool* out, bool required = false);
  FieldReader& Strings(std::string_view key, std::vector<std::string>* out, bool required = false);
  // One of `allowed` (an enum given as a string).
  FieldReader& Enum(std::string_view key, std::string* out, const std::vector<std::string>& allowed,
                    bool required = false);

  absl::Status Finish();

 private:
  const nlohmann::json* Take(std::string_view key, bool required);
  void Fail(std::string_view key, std::string_view msg);
  const nlohmann::json& j_;
  std::string what_;
  std::set<std::string, std::less<>> seen_;
  absl::Status status_;
};

// "string", "integer", "number", "boolean", "array", "object", "null".
std::string_view JsonTypeName(const nlohmann::json& j);

// The JSON forms of the store's rows, as `hart --json` prints them. Byte
// counts are exact integers.
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

// Serializes JSON that may hold invalid UTF-8 (names from files) without
// throwing: bad bytes become U+FFFD. indent < 0: one line.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace hart::app
