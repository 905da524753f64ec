#include "cli/output.h"

#include <ctime>

#include "core/status.h"
#include "fmt/format.h"

namespace hart::cli {
namespace {

size_t DisplayWidth(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

void Pad(std::string& line, size_t n) { line.append(n, ' '); }

}  // namespace

int ExitCodeFor(const absl::Status& s) {
  if (s.ok()) return kExitOk;
  return s.code() == absl::StatusCode::kDataLoss ? kExitData : kExitUser;
}

int Fail(const absl::Status& s) { return Fail(Msg(s), ExitCodeFor(s)); }

int Fail(std::string_view message, int code) {
  std::fflush(stdout);
  // Parsers quote what they take from files (core/quote.h); this is the last
  // guard, so no message can put raw control bytes or pages of text on a
  // terminal.
  constexpr size_t kMaxMessage = 4096;
  std::string text = EscapeNonPrintable(message.substr(0, kMaxMessage));
  if (message.size() > kMaxMessage) text += fmt::format("…({} bytes)", message.size());
  fmt::print(stderr, "hart: {}\n", text);
  return code;
}

void PrintJson(const nlohmann::json& j) {
  // Invalid UTF-8 in names from a file must not abort the dump.
  std::string s = j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  fmt::print("{}\n", s);
  std::fflush(stdout);
}

void PrintJsonLine(const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  fmt::print("{}\n", s);
  std::fflush(stdout);
}

std::string FormatTime(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_seconds);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string Percent(double fraction) { return fmt::format("{:.1f}%", fraction * 100); }

double Fraction(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

void Table::Print(std::FILE* out) const {
  std::vector<size_t> width(columns_.size(), 0);
  for (size_t c = 0; c < columns_.size(); ++c) {
    width[c] = DisplayWidth(columns_[c].header);
    for (const auto& r : rows_) width[c] = std::max(width[c], DisplayWidth(r[c]));
  }
  auto print_row = [&](auto cell_of) {
    std::string line;
    for (size_t c = 0; c < columns_.size(); ++c) {
      const std::string& cell = cell_of(c);
      size_t pad = width[c] - DisplayWidth(cell);
      bool last = c + 1 == columns_.size();
      if (c > 0) line += "  ";
      if (columns_[c].align == Align::kRight) {
        Pad(line, pad);
        line += cell;
      } else {
        line += cell;
        if (!last) Pad(line, pad);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    fmt::print(out, "{}\n", line);
  };
  print_row([&](size_t c) -> const std::string& { return columns_[c].header; });
  for (const auto& r : rows_) print_row([&](size_t c) -> const std::string& { return r[c]; });
  std::fflush(out);
}

void PrintFields(const std::vector<std::pair<std::string, std::string>>& fields, std::FILE* out) {
  size_t w = 0;
  for (const auto& [k, v] : fields) w = std::max(w, DisplayWidth(k));
  for (const auto& [k, v] : fields)
    fmt::print(out, "  {}{}  {}\n", k, std::string(w - DisplayWidth(k), ' '), v);
}

}  // namespace hart::cli
