// Router: the route table. Each route is a method, a path template with
// {name} segments, the handler, and what OpenAPI needs to describe it; the
// same table serves requests, builds /openapi.json and (issue 15) lets the
// MCP transport register its endpoint the same way.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "app/caller.h"
#include "nlohmann/json.hpp"
#include "serve/http.h"

namespace hart::serve {

// Who is calling (app/caller.h): filled per request by the service's auth
// hook (issue 14 replaces the default, which is the local user on loopback).
using Caller = app::Caller;

// A route's handler: runs on a worker with the request's caller.
using RouteHandler = std::function<void(Exchange&, const Caller&)>;

struct Route {
  std::string method;  // "GET", "POST", "DELETE"
  std::string path;    // "/v1/models/{model}"; a param matches one segment
  std::string operation_id;
  std::string summary;
  std::string tag;  // OpenAPI tag: "openai", "store", "query", "transfer", "operations"
  RouteHandler handler;
  // Query parameters: [{"name":..,"schema":{..},"description":..,"required":bool}].
  nlohmann::json query_params = nlohmann::json::array();
  // JSON schema of the request body (null: no body).
  nlohmann::json request_schema = nullptr;
  std::string request_type = "application/json";
  // Content types the 200 answer may have.
  std::vector<std::string> response_types = {"application/json"};
  // The request body is streamed to a temp file (uploads) instead of memory.
  bool upload = false;
  // Left out of /openapi.json (the Swagger UI's own asset files).
  bool hidden = false;
  // Answered without sign-in (health, the sign-in metadata): the handler
  // gets an unauthenticated Reader that owns nothing.
  bool anonymous = false;
  // Upload routes (issue 14): run on the I/O thread once the header is in,
  // after sign-in; an error is the answer and no byte of the body is read.
  std::function<absl::Status(const Request&, const Caller&)> before_body;
};

struct RouteMatch {
  const Route* route = nullptr;  // null: no route for this method
  std::map<std::string, std::string> params;
  bool path_known = false;  // some route has this path (so 405, not 404)
  std::vector<std::string> allowed;  // methods of that path
};

class Router {
 public:
  void Add(Route r);
  RouteMatch Match(const std::string& method, const std::string& path) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

// Splits "/a/b/c" into {"a","b","c"}.
std::vector<std::string> SplitPath(const std::string& path);

}  // namespace hart::serve
