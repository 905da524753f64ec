// libFuzzer target: arbitrary bytes as the JSON of an app-level generation
// request (completion, chat or embedding, by the first byte). Parsing must
// answer with a request that validates and converts back to JSON that parses
// to the same request, or with an error; never crash.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "app/generate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  auto round_trip = [](const auto& parsed, auto from_json) {
    if (!parsed.ok()) return;
    const nlohmann::json once = hart::app::ToJson(*parsed);
    (void)once.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    auto again = from_json(once);
    if (!again.ok() || hart::app::ToJson(*again) != once) std::abort();
  };
  switch (data[0] % 3) {
    case 0:
      round_trip(hart::app::CompletionRequestFromJson(j), hart::app::CompletionRequestFromJson);
      break;
    case 1:
      round_trip(hart::app::ChatRequestFromJson(j), hart::app::ChatRequestFromJson);
      break;
    default:
      round_trip(hart::app::EmbeddingRequestFromJson(j), hart::app::EmbeddingRequestFromJson);
      break;
  }
  return 0;
}
