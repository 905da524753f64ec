// `hart serve` as a real child process for the server's C++ tests: on
// 127.0.0.1 with an OS-chosen port (read back from --port-file), its stdout
// and stderr in a temporary folder, SIGTERM and wait on destruction.
#pragma once

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/cli/cli_runner.h"

namespace hart::serve_test {

class ServeProcess {
 public:
  // `hart --store STORE serve --addr 127.0.0.1:0 --port-file DIR/port
  // EXTRA...`; waits up to 30 s for the port (port() stays 0 when the
  // process exits first or never writes it). `prefix` names the temp folder.
  ServeProcess(const cli_test::TempStore& store, const std::vector<std::string>& extra = {},
               const std::string& prefix = "hart_serve_") {
    base_ = cli_test::MakeTempDir(prefix);
    std::vector<std::string> args = store.Args({"serve", "--addr", "127.0.0.1:0", "--port-file", base_ + "/port"});
    args.insert(args.end(), extra.begin(), extra.end());
    proc_ = std::make_unique<cli_test::HartProcess>(args, base_ + "/out", base_ + "/err");
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::string p = cli_test::ReadAll(base_ + "/port");
      if (!p.empty()) port_ = static_cast<uint16_t>(std::stoi(p));
      if (port_ == 0) {
        if (proc_->Poll()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
  ~ServeProcess() {
    proc_->Kill(SIGTERM);
    proc_->Wait();
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  uint16_t port() const { return port_; }
  cli_test::HartProcess& proc() { return *proc_; }
  // What the server wrote to stderr so far.
  std::string Log() const { return cli_test::ReadAll(base_ + "/err"); }
  // Resident bytes of the server process (/proc/PID/statm).
  uint64_t Rss() const {
    std::ifstream f("/proc/" + std::to_string(proc_->pid()) + "/statm");
    uint64_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  }

 private:
  std::string base_;
  std::unique_ptr<cli_test::HartProcess> proc_;
  uint16_t port_ = 0;
};

// The value of an unlabelled metric line "name value" in a /metrics text; -1
// when there is none.
inline double Metric(const std::string& text, const std::string& name) {
  size_t pos = text.find("\n" + name + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(text.substr(pos + name.size() + 2));
}

}  // namespace hart::serve_test
