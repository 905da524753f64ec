// libFuzzer target: arbitrary bytes as one MCP message (what `hart mcp`
// reads per line and /mcp per POST body). The first byte picks the session's
// revision (2025-11-25, 2025-06-18 or 2025-03-26, which takes batches); the
// rest goes through mcp::Server::HandleText on an empty store made once.
// Every input must be answered with nothing (notifications, responses) or
// with JSON-RPC 2.0: one response, or an array of them, each with a result
// or an error with one of the protocol's codes; never a crash or a throw.
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <unistd.h>

#include "mcp/jsonrpc.h"
#include "mcp/server.h"
#include "store/store.h"

namespace {

hart::mcp::Server* TheServer() {
  static hart::mcp::Server* server = [] {
    std::string dir = std::filesystem::temp_directory_path() / ("hart_mcp_fuzz_" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    static std::string cleanup = dir;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(cleanup, ec);
    });
    if (!hart::store::Store::Init(dir).ok()) std::abort();
    auto st = hart::store::Store::Open(dir);
    if (!st.ok()) std::abort();
    hart::mcp::ServerOptions o;
    o.sql_timeout_seconds = 1;
    o.max_message = 1 << 16;
    return new hart::mcp::Server(o, std::shared_ptr<hart::store::Store>(std::move(*st)));
  }();
  return server;
}

void CheckResponse(const nlohmann::json& r) {
  if (!r.is_object() || r.value("jsonrpc", "") != "2.0" || !r.contains("id")) std::abort();
  if (r.contains("result") == r.contains("error")) std::abort();
  if (r.contains("error")) {
    const auto& e = r["error"];
    if (!e.is_object() || !e.contains("code") || !e["code"].is_number_integer() || !e.contains("message")) std::abort();
    int c = e["code"].get<int>();
    if (c != -32700 && c != -32600 && c != -32601 && c != -32602 && c != -32603 && c != -32002) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char* kVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
  const char* version = kVersions[data[0] % 3];
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto session = std::make_shared<hart::mcp::Session>("fuzz", hart::app::Caller{});
  hart::mcp::Server& server = *TheServer();
  auto emit = [](const nlohmann::json& m) {
    (void)hart::mcp::Serialize(m);
    return true;
  };
  std::string init = std::string(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":")") +
                     version + "\"}}";
  if (server.HandleText(session, init, {}, emit).empty()) std::abort();
  std::string out = server.HandleText(session, text, {}, emit);
  if (out.empty()) return 0;
  nlohmann::json r = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (r.is_discarded()) std::abort();
  if (r.is_array()) {
    if (r.empty()) std::abort();
    for (const auto& x : r) CheckResponse(x);
  } else {
    CheckResponse(r);
  }
  return 0;
}
