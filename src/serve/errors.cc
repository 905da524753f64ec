#include "serve/errors.h"

#include "app/errors.h"
#include "nlohmann/json.hpp"

namespace hart::serve {

int HttpStatusFor(const absl::Status& s) { return app::HttpStatusFor(s); }

std::string ErrorTypeFor(int st) {
  if (st == 401) return "authentication_error";
  if (st == 403) return "permission_error";
  if (st == 404) return "not_found_error";
  if (st == 429) return "rate_limit_error";
  if (st >= 500) return "server_error";
  return "invalid_request_error";
}

std::string ErrorBody(const std::string& message, const std::string& type, const std::string& param,
                      const std::string& code) {
  nlohmann::json e = {{"message", message},
                      {"type", type},
                      {"param", param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param)},
                      {"code", code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code)}};
  return nlohmann::json{{"error", e}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response ErrorResponse(int st, const std::string& message, const std::string& param, const std::string& code) {
  return Response::Json(st, ErrorBody(message, ErrorTypeFor(st), param, code));
}

Response ErrorResponse(const absl::Status& s, const std::string& param) {
  app::ErrorInfo info = app::ClassifyError(s);
  std::string body = ErrorBody(info.message, ErrorTypeFor(info.http_status), param, info.type);
  if (info.offset >= 0) {
    // Where in the request's SQL the error is (the UI's SQL console marks it).
    nlohmann::json j = nlohmann::json::parse(body);
    j["error"]["offset"] = info.offset;
    body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  Response r = Response::Json(info.http_status, body);
  if (info.retry_after > 0) r.headers["retry-after"] = std::to_string(info.retry_after);
  return r;
}

}  // namespace hart::serve
