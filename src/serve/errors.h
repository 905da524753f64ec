// Every failure the server answers, in OpenAI's error object:
//   {"error": {"message": "...", "type": "invalid_request_error",
//              "param": "messages[0].role" | null, "code": "not_found" | null}}
// `code` is the app layer's stable error type (app/errors.h); `type` is
// OpenAI's family for the HTTP status.
// with the HTTP status chosen from the absl::Status code, so user mistakes
// are 4xx and only the server's own faults are 5xx.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "serve/http.h"

namespace hart::serve {

// The HTTP status for a Status code: app/errors.h decides (one table for
// every transport).
int HttpStatusFor(const absl::Status& s);
// OpenAI's `type` for an HTTP status: invalid_request_error (4xx),
// authentication_error (401), permission_error (403), not_found_error (404),
// rate_limit_error (429), server_error (5xx).
std::string ErrorTypeFor(int http_status);

// The JSON text of the error object.
std::string ErrorBody(const std::string& message, const std::string& type, const std::string& param = "",
                      const std::string& code = "");
Response ErrorResponse(int http_status, const std::string& message, const std::string& param = "",
                       const std::string& code = "");
Response ErrorResponse(const absl::Status& s, const std::string& param = "");

}  // namespace hart::serve
