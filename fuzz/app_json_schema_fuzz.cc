// libFuzzer target: a JSON Schema (from a request's response_format or a
// tool's parameters), then after the first newline some bytes of output.
// The compiler must answer with a grammar or an InvalidArgument, never
// crash; the response_format and tool parsers of app/structured likewise.
// With a grammar, the bytes are fed to its automaton: wherever it says the
// value may end, what it accepted must parse as JSON, and every live state
// must have a finite way to complete.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "app/structured.h"
#include "runtime/grammar/json_grammar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace g = hart::runtime::grammar;
  const std::string in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string schema_text = in.substr(0, nl);
  const std::string output = nl == std::string::npos ? "" : in.substr(nl + 1);
  nlohmann::json schema = nlohmann::json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return 0;
  (void)hart::app::ResponseFormatFromJson(
      {{"type", "json_schema"}, {"json_schema", {{"name", "f"}, {"schema", schema}}}}, "response_format");
  (void)hart::app::ToolFromJson({{"type", "function"}, {"function", {{"name", "f"}, {"parameters", schema}}}},
                                "tools[0]");
  auto gr = g::JsonGrammar::FromSchema(schema);
  if (!gr.ok()) {
    if (gr.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
    return 0;
  }
  const g::JsonGrammar& grammar = **gr;
  g::State s = grammar.Start(), tmp;
  std::string accepted;
  for (char c : output) {
    if (grammar.Remaining(s) > (1ull << 40)) std::abort();  // a live state that can never complete
    if (!grammar.Advance(s, static_cast<uint8_t>(c), &tmp)) break;
    std::swap(s, tmp);
    accepted += c;
    if (grammar.CanEnd(s) && !nlohmann::json::accept(accepted)) std::abort();
  }
  return 0;
}
