// JSON-RPC 2.0 as MCP uses it: reading one message (or, in revision
// 2025-03-26, a batch) from untrusted bytes, and building responses and
// errors. Everything a transport receives goes through ParseMessage first;
// it never throws and bounds size and nesting, so hostile input is an error
// object, never a crash (fuzz/mcp_jsonrpc_fuzz.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace hart::mcp {

// JSON-RPC 2.0 error codes (and the MCP ones above them).
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kResourceNotFound = -32002;  // MCP: resources/read of an unknown URI

inline constexpr size_t kDefaultMaxMessage = size_t{4} << 20;  // bytes
inline constexpr int kMaxDepth = 64;                            // nesting of arrays and objects

// An error to answer with: the code, a message naming what and where, and
// optional data.
struct RpcError {
  int code = kInternalError;
  std::string message;
  nlohmann::json data = nullptr;
};

// Reads one JSON text of at most max_bytes: a parse error (-32700, naming
// the byte offset), too large or too deep (-32600) as an RpcError.
struct Parsed {
  bool ok = false;
  nlohmann::json value;
  RpcError error;
};
Parsed ParseMessage(std::string_view text, size_t max_bytes = kDefaultMaxMessage);

// What one element of a message is.
enum class Kind { kRequest, kNotification, kResponse, kInvalid };
struct Message {
  Kind kind = Kind::kInvalid;
  nlohmann::json id = nullptr;  // string or integer (requests and responses)
  std::string method;
  nlohmann::json params = nlohmann::json::object();  // object (absent: {})
  RpcError error;  // kInvalid: why (-32600 or -32602)
};
// Classifies one JSON value as a request, notification or response, checking
// the envelope: "jsonrpc": "2.0", a string or integer id (never null), a
// string method, params an object when present.
Message Classify(const nlohmann::json& j);

nlohmann::json ResultResponse(const nlohmann::json& id, nlohmann::json result);
nlohmann::json ErrorResponse(const nlohmann::json& id, const RpcError& e);
nlohmann::json Notification(std::string_view method, nlohmann::json params);

// One line of newline-delimited JSON (no raw newline inside; invalid UTF-8
// replaced), without the trailing '\n'.
std::string Serialize(const nlohmann::json& j);

}  // namespace hart::mcp
