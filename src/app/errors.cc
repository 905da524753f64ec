#include "app/errors.h"

#include <cstdlib>
#include <string>

#include "absl/strings/cord.h"

namespace hart::app {
namespace {

// Payload that turns a ResourceExhausted into 429 (value: Retry-After seconds).
constexpr const char* kRetryAfterUrl = "hart/retry-after";
// Payload with the byte offset of the error in the request's text.
constexpr const char* kErrorOffsetUrl = "hart/error-offset";

}  // namespace

ErrorInfo ClassifyError(const absl::Status& s) {
  ErrorInfo e;
  e.message = std::string(s.message().data(), s.message().size());
  if (auto p = s.GetPayload(kErrorOffsetUrl)) e.offset = std::atoll(std::string(*p).c_str());
  switch (s.code()) {
    case absl::StatusCode::kOk: e.http_status = 200; e.type = "ok"; break;
    case absl::StatusCode::kInvalidArgument: e.http_status = 400; e.type = "invalid_request"; break;
    case absl::StatusCode::kUnauthenticated: e.http_status = 401; e.type = "unauthenticated"; break;
    case absl::StatusCode::kPermissionDenied: e.http_status = 403; e.type = "permission_denied"; break;
    case absl::StatusCode::kNotFound: e.http_status = 404; e.type = "not_found"; break;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted: e.http_status = 409; e.type = "conflict"; break;
    case absl::StatusCode::kDeadlineExceeded: e.http_status = 408; e.type = "timeout"; break;
    case absl::StatusCode::kOutOfRange: e.http_status = 416; e.type = "range_not_satisfiable"; break;
    case absl::StatusCode::kDataLoss: e.http_status = 422; e.type = "bad_data"; break;
    case absl::StatusCode::kResourceExhausted: {
      auto p = s.GetPayload(kRetryAfterUrl);
      if (p) {
        e.http_status = 429;
        e.type = "rate_limited";
        e.retry_after = std::max(1, std::atoi(std::string(*p).c_str()));
      } else {
        e.http_status = 413;
        e.type = "too_large";
      }
      break;
    }
    case absl::StatusCode::kCancelled: e.http_status = 499; e.type = "cancelled"; break;
    case absl::StatusCode::kUnimplemented: e.http_status = 501; e.type = "not_implemented"; break;
    case absl::StatusCode::kUnavailable:
      e.http_status = 503;
      e.type = "unavailable";
      e.retry_after = 1;
      break;
    default: e.http_status = 500; e.type = "internal"; break;
  }
  return e;
}

int HttpStatusFor(const absl::Status& s) { return ClassifyError(s).http_status; }

std::string_view ErrorType(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return "ok";
    case absl::StatusCode::kInvalidArgument: return "invalid_request";
    case absl::StatusCode::kUnauthenticated: return "unauthenticated";
    case absl::StatusCode::kPermissionDenied: return "permission_denied";
    case absl::StatusCode::kNotFound: return "not_found";
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted: return "conflict";
    case absl::StatusCode::kDeadlineExceeded: return "timeout";
    case absl::StatusCode::kOutOfRange: return "range_not_satisfiable";
    case absl::StatusCode::kDataLoss: return "bad_data";
    case absl::StatusCode::kResourceExhausted:
      return s.GetPayload(kRetryAfterUrl) ? "rate_limited" : "too_large";
    case absl::StatusCode::kCancelled: return "cancelled";
    case absl::StatusCode::kUnimplemented: return "not_implemented";
    case absl::StatusCode::kUnavailable: return "unavailable";
    default: return "internal";
  }
}

nlohmann::json ErrorJson(const absl::Status& s) {
  ErrorInfo e = ClassifyError(s);
  nlohmann::json j = {{"error", {{"type", e.type}, {"message", e.message}, {"code", e.http_status}}}};
  if (e.offset >= 0) j["error"]["offset"] = e.offset;
  return j;
}

absl::Status TooManyRequests(std::string_view message, int retry_after_seconds) {
  absl::Status s = absl::ResourceExhaustedError(absl::string_view(message.data(), message.size()));
  s.SetPayload(kRetryAfterUrl, absl::Cord(std::to_string(std::max(1, retry_after_seconds))));
  return s;
}

absl::Status WithErrorOffset(absl::Status s, int64_t offset) {
  if (!s.ok() && offset >= 0) s.SetPayload(kErrorOffsetUrl, absl::Cord(std::to_string(offset)));
  return s;
}

}  // namespace hart::app
