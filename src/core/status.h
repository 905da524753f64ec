// Status helpers shared by every module. Note: Debian's abseil is built with
// its own absl::string_view (not std::string_view), so absl::StrCat does not
// take std::string_view; build messages with fmt::format.
// Public functions that can fail
// return absl::Status / absl::StatusOr<T>; these macros keep call sites short.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include <string_view>

#include "core/quote.h"
#include "fmt/format.h"

#define HART_CONCAT_INNER(a, b) a##b
#define HART_CONCAT(a, b) HART_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not ok.
#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    ::absl::Status hart_status_ = (expr);           \
    if (!hart_status_.ok()) return hart_status_;    \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, StatusOrExpr());` binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  HART_ASSIGN_OR_RETURN_IMPL(HART_CONCAT(hart_statusor_, __LINE__), lhs, rexpr)
#define HART_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                               \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

namespace hart {

// Error of bad input bytes: the message names the file, the byte offset and
// the field, e.g. "model.gguf: offset 24: tensor_count: 2^61 exceeds ...".
// Code kDataLoss so the CLI can map it to exit status 2.
inline absl::Status DataError(std::string_view file, uint64_t offset,
                              std::string_view field, std::string_view what) {
  return absl::DataLossError(fmt::format("{}: offset {}: {}: {}", file, offset, field, what));
}

// The message of a status as std::string_view (absl::string_view differs here).
inline std::string_view Msg(const absl::Status& s) {
  return std::string_view(s.message().data(), s.message().size());
}

// Adds context in front of an error message, keeping its code.
inline absl::Status Annotate(const absl::Status& s, std::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), fmt::format("{}: {}", context, Msg(s)));
}

}  // namespace hart
