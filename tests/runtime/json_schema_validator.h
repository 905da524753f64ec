// A small JSON Schema validator for tests, written apart from the grammar
// compiler (runtime/grammar) so that it checks the compiler's output
// independently: type (and type lists), properties, required,
// additionalProperties, items, prefixItems, minItems, maxItems,
// minLength, maxLength (in code points), enum, const, anyOf, oneOf (exactly
// one), $ref to #/... . Returns "" when `v` is valid, else
// where and why not.
#pragma once

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace hart::testing {

inline std::string ValidateJson(const nlohmann::json& v, const nlohmann::json& s, const nlohmann::json& root,
                                const std::string& where = "$") {
  using nlohmann::json;
  if (s.is_boolean()) return s.get<bool>() ? "" : where + ": schema false";
  if (s.contains("$ref")) {
    const std::string ref = s["$ref"].get<std::string>();
    return ValidateJson(v, root.at(json::json_pointer(ref.substr(1))), root, where);
  }
  if (s.contains("const") && v != s["const"]) return where + ": not the const " + s["const"].dump();
  if (s.contains("enum")) {
    bool found = false;
    for (const json& e : s["enum"]) found = found || e == v;
    if (!found) return where + ": not in enum";
  }
  if (s.contains("anyOf")) {
    bool any = false;
    for (const json& a : s["anyOf"]) any = any || ValidateJson(v, a, root, where).empty();
    if (!any) return where + ": matches no anyOf branch";
  }
  if (s.contains("oneOf")) {
    int n = 0;
    for (const json& a : s["oneOf"]) n += ValidateJson(v, a, root, where).empty();
    if (n != 1) return where + ": matches " + std::to_string(n) + " oneOf branches";
  }
  if (s.contains("type")) {
    auto is = [&](const std::string& t) {
      if (t == "object") return v.is_object();
      if (t == "array") return v.is_array();
      if (t == "string") return v.is_string();
      if (t == "number") return v.is_number();
      if (t == "integer") return v.is_number_integer();
      if (t == "boolean") return v.is_boolean();
      if (t == "null") return v.is_null();
      return false;
    };
    bool ok = false;
    if (s["type"].is_string()) {
      ok = is(s["type"].get<std::string>());
    } else {
      for (const json& t : s["type"]) ok = ok || is(t.get<std::string>());
    }
    if (!ok) return where + ": not of type " + s["type"].dump() + ": " + v.dump();
  }
  if (v.is_object()) {
    if (s.contains("required"))
      for (const json& k : s["required"])
        if (!v.contains(k.get<std::string>())) return where + ": missing required " + k.get<std::string>();
    for (const auto& [k, x] : v.items()) {
      if (s.contains("properties") && s["properties"].contains(k)) {
        std::string e = ValidateJson(x, s["properties"][k], root, where + "." + k);
        if (!e.empty()) return e;
      } else if (s.contains("additionalProperties")) {
        std::string e = ValidateJson(x, s["additionalProperties"], root, where + "." + k);
        if (!e.empty()) return e;
      }
    }
  }
  if (v.is_string()) {
    size_t chars = 0;
    for (unsigned char c : v.get_ref<const std::string&>()) chars += (c & 0xC0) != 0x80;
    if (s.contains("minLength") && chars < s["minLength"].get<size_t>()) return where + ": too short: " + v.dump();
    if (s.contains("maxLength") && chars > s["maxLength"].get<size_t>()) return where + ": too long: " + v.dump();
  }
  if (v.is_array()) {
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return where + ": too few items";
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return where + ": too many items";
    const size_t np = s.contains("prefixItems") ? s["prefixItems"].size() : 0;
    for (size_t i = 0; i < v.size(); ++i) {
      const json* item = i < np ? &s["prefixItems"][i] : s.contains("items") ? &s["items"] : nullptr;
      if (item == nullptr) continue;
      std::string e = ValidateJson(v[i], *item, root, where + "[" + std::to_string(i) + "]");
      if (!e.empty()) return e;
    }
  }
  return "";
}

// Schemas the structured-output tests run over: every supported feature.
inline std::vector<nlohmann::json> TestSchemas() {
  using nlohmann::json;
  return {
      json::parse(R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},
                      "required":["name","age"],"additionalProperties":false})"),
      json::parse(R"({"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"null"},
                      "x":{"type":"number"},"opt":{"type":"string"}},"required":["ok","x"]})"),
      json::parse(R"({"type":"object","properties":{"color":{"enum":["red","green","blue"]},
                      "kind":{"const":"fixed"},"tags":{"type":"array","items":{"type":"string"},
                      "minItems":1,"maxItems":3}},"required":["color","kind","tags"]})"),
      json::parse(R"({"type":"object","properties":{"v":{"anyOf":[{"type":"integer"},{"type":"string"},
                      {"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]}]},
                      "w":{"oneOf":[{"type":"null"},{"type":"array","items":{"type":"integer"},"maxItems":2}]},
                      "t":{"type":["string","null"]}},"required":["v","w","t"]})"),
      json::parse(R"({"$defs":{"point":{"type":"object","properties":{"x":{"type":"number"},
                      "y":{"type":"number"}},"required":["x","y"],"additionalProperties":false}},
                      "type":"object","properties":{"a":{"$ref":"#/$defs/point"},
                      "path":{"type":"array","items":{"$ref":"#/$defs/point"},"maxItems":2}},
                      "required":["a","path"]})"),
      json::parse(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
                      "next":{"$ref":"#/$defs/node"}},"required":["v"]}},"$ref":"#/$defs/node"})"),
      json::parse(R"({"type":"object","additionalProperties":{"type":"integer"}})"),
      json::parse(R"({"type":"object"})"),
      json::parse(R"({"type":"array","items":{"enum":[1,"two",null,true,{"k":[]}]},"minItems":2,"maxItems":4})"),
      json::parse(R"({"type":"object","properties":{"code":{"type":"string","minLength":2,"maxLength":4},
                      "note":{"type":"string","maxLength":3},"id":{"type":"string","minLength":5},
                      "any":{"minLength":1}},"required":["code","note","id","any"]})"),
      json::parse(R"({"type":"object","properties":{"pt":{"type":"array","prefixItems":[{"type":"integer"},
                      {"type":"string","maxLength":2}],"items":false,"minItems":1},
                      "row":{"type":"array","prefixItems":[{"type":"boolean"}],"items":{"type":"null"},"maxItems":4},
                      "open":{"prefixItems":[{"const":"a"}]}},"required":["pt","row","open"]})"),
      json::parse(R"({"oneOf":[{"type":"object","properties":{"kind":{"const":"circle"},"r":{"type":"number"}},
                      "required":["kind","r"]},{"type":"object","properties":{"kind":{"const":"square"},
                      "side":{"type":"number"}},"required":["kind","side"]},{"type":"string","minLength":1}]})"),
  };
}

}  // namespace hart::testing
