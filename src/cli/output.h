// Output conventions shared by every `hart` command: exit statuses, errors on
// stderr as "hart: <message>", JSON documents on stdout, aligned text tables.
// Tables show human-readable sizes; JSON always carries exact byte counts.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace hart::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUser = 1;  // usage or user error: bad arguments, unknown model, ...
inline constexpr int kExitData = 2;  // bad data: unreadable input (kDataLoss), failed verify

// kDataLoss -> kExitData, any other error -> kExitUser, ok -> kExitOk.
int ExitCodeFor(const absl::Status& s);
// Prints "hart: <message>" on stderr and returns ExitCodeFor(s).
int Fail(const absl::Status& s);
int Fail(std::string_view message, int code = kExitUser);

// One JSON document on stdout, pretty-printed, newline-terminated.
void PrintJson(const nlohmann::json& j);
// One JSON document on one line (JSON lines), flushed at once.
void PrintJsonLine(const nlohmann::json& j);

// "2024-05-01 12:34:56 UTC"
std::string FormatTime(int64_t unix_seconds);
// 0.913 -> "91.3%"
std::string Percent(double fraction);
// Fraction of `part` in `whole`, 0 when whole is 0.
double Fraction(uint64_t part, uint64_t whole);

// Plain aligned columns: two spaces between, numbers right-aligned, the last
// column unpadded. Widths count UTF-8 code points.
class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  void AddRow(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  void Print(std::FILE* out = stdout) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// Key/value lines ("  license       mit") with the keys padded to one width.
void PrintFields(const std::vector<std::pair<std::string, std::string>>& fields,
                 std::FILE* out = stdout);

}  // namespace hart::cli
