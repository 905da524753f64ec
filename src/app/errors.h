// Errors of the app layer and how a transport answers them. Every use case
// returns absl::Status; its code says whose fault it is, and this file maps
// it to an HTTP status and a stable, documented error `type` string (the
// server's error object, the MCP error; OpenAI's error object uses `type`
// too). Malformed input is never a 500: the use cases return
// InvalidArgument (bad JSON, wrong type, unknown field, bad name), NotFound
// (no such model/version/tensor/file), DataLoss (the bytes given are not a
// valid model), ResourceExhausted (too big / too many), OutOfRange (a byte
// range past the end). Messages name the field or file and never a CLI flag.
//
//   code                 HTTP  type
//   InvalidArgument      400   invalid_request
//   Unauthenticated      401   unauthenticated
//   PermissionDenied     403   permission_denied   (the read-only SQL guard)
//   NotFound             404   not_found
//   AlreadyExists        409   conflict
//   FailedPrecondition   409   conflict            (e.g. rm of a parent without force)
//   Aborted              409   conflict
//   DeadlineExceeded     408   timeout             (a query past its time cap)
//   OutOfRange           416   range_not_satisfiable
//   DataLoss             422   bad_data
//   ResourceExhausted    413   too_large; 429 rate_limited when marked with TooManyRequests()
//   Cancelled            499   cancelled           (the client went away)
//   Unimplemented        501   not_implemented
//   Unavailable          503   unavailable
//   anything else        500   internal
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace hart::app {

struct ErrorInfo {
  int http_status = 500;
  std::string type;     // stable, lower_snake_case
  std::string message;  // the status message
  // Seconds a client should wait before retrying (429/503), 0: none.
  int retry_after = 0;
  // Byte offset in the request's SQL where the error is (SQLite's
  // sqlite3_error_offset), -1: none. The error JSON carries it as "offset".
  int64_t offset = -1;
};

ErrorInfo ClassifyError(const absl::Status& s);
int HttpStatusFor(const absl::Status& s);
std::string_view ErrorType(const absl::Status& s);

// {"error": {"type": ..., "message": ..., "code": <http status>}}: the app's
// error document (the REST routes answer it; the OpenAI routes wrap the same
// ErrorInfo in OpenAI's object).
nlohmann::json ErrorJson(const absl::Status& s);

// ResourceExhausted that answers 429 with Retry-After (a full queue), where
// a plain ResourceExhausted answers 413 (a body or result too large).
absl::Status TooManyRequests(std::string_view message, int retry_after_seconds = 1);

// `s` with the byte offset in the request's text where the error lies (a SQL
// syntax error's position), for ClassifyError's `offset`.
absl::Status WithErrorOffset(absl::Status s, int64_t offset);

}  // namespace hart::app
