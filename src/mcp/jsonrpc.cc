#include "mcp/jsonrpc.h"

#include "fmt/format.h"

namespace hart::mcp {

using nlohmann::json;

namespace {

// The deepest nesting of [ and { outside strings, stopping once past `limit`
// (nlohmann's writer recurses, so depth is bounded before anything parses).
int Depth(std::string_view s, int limit) {
  int d = 0, max = 0;
  bool in_str = false, esc = false;
  for (char c : s) {
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
      continue;
    }
    if (c == '"') in_str = true;
    else if (c == '[' || c == '{') {
      if (++d > max) max = d;
      if (max > limit) return max;
    } else if (c == ']' || c == '}') {
      --d;
    }
  }
  return max;
}

}  // namespace

Parsed ParseMessage(std::string_view text, size_t max_bytes) {
  Parsed p;
  if (text.size() > max_bytes) {
    p.error = {kInvalidRequest, fmt::format("message of {} bytes is larger than the limit of {} bytes", text.size(),
                                            max_bytes)};
    return p;
  }
  if (Depth(text, kMaxDepth) > kMaxDepth) {
    p.error = {kInvalidRequest, fmt::format("message nests arrays and objects deeper than {} levels", kMaxDepth)};
    return p;
  }
  try {
    p.value = json::parse(text.begin(), text.end());
    p.ok = true;
  } catch (const json::parse_error& e) {
    p.error = {kParseError, fmt::format("parse error at byte {}: {}", e.byte, e.what())};
  } catch (const std::exception& e) {
    p.error = {kParseError, fmt::format("parse error: {}", e.what())};
  }
  return p;
}

Message Classify(const json& j) {
  Message m;
  auto invalid = [&](std::string msg) {
    m.kind = Kind::kInvalid;
    m.error = {kInvalidRequest, std::move(msg)};
    return m;
  };
  if (!j.is_object()) return invalid(fmt::format("a JSON-RPC message must be an object, got {}", j.type_name()));
  if (auto id = j.find("id"); id != j.end()) {
    if (id->is_string() || id->is_number_integer() || id->is_number_unsigned()) {
      m.id = *id;
    } else {
      // Keep nothing: an invalid id is answered with id null.
      return invalid(fmt::format("field 'id': expected a string or an integer, got {}", id->type_name()));
    }
  }
  auto ver = j.find("jsonrpc");
  if (ver == j.end() || !ver->is_string() || *ver != "2.0") {
    return invalid("field 'jsonrpc': must be the string \"2.0\"");
  }
  auto method = j.find("method");
  if (method == j.end()) {
    if (j.contains("result") || j.contains("error")) {
      if (m.id.is_null()) return invalid("a response needs an 'id'");
      m.kind = Kind::kResponse;
      return m;
    }
    return invalid("field 'method' is missing");
  }
  if (!method->is_string()) return invalid(fmt::format("field 'method': expected a string, got {}", method->type_name()));
  m.method = method->get<std::string>();
  if (auto params = j.find("params"); params != j.end()) {
    if (!params->is_object()) {
      m.kind = Kind::kInvalid;
      m.error = {kInvalidParams, fmt::format("field 'params': expected an object, got {}", params->type_name())};
      return m;
    }
    m.params = *params;
  }
  m.kind = j.contains("id") ? Kind::kRequest : Kind::kNotification;
  return m;
}

json ResultResponse(const json& id, json result) {
  return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json ErrorResponse(const json& id, const RpcError& e) {
  json err = {{"code", e.code}, {"message", e.message}};
  if (!e.data.is_null()) err["data"] = e.data;
  return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(err)}};
}

json Notification(std::string_view method, json params) {
  return {{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

std::string Serialize(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace hart::mcp
