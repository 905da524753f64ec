#include "serve/errors.h"

#include "nlohmann/json.hpp"

namespace hart::serve {

int HttpStatusFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kDataLoss: return 422;
    case absl::StatusCode::kResourceExhausted: return 413;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kCancelled: return 499;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

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
  int st = HttpStatusFor(s);
  std::string code(absl::StatusCodeToString(s.code()));
  for (char& c : code) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return Response::Json(st, ErrorBody(std::string(s.message()), ErrorTypeFor(st), param, code));
}

}  // namespace hart::serve
