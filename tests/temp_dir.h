// A scratch directory for one test process, removed when the process exits:
// ctest runs every test in a process of its own, so directories named by
// pid and left behind grew /tmp by gigabytes per suite run.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace hart::testing {

// <temp dir>/<prefix>_<pid>, created empty on the first call; removed at exit
// by the process that created it (a forked child leaving never removes it).
inline const std::string& ProcessTempDir(const std::string& prefix) {
  struct Dir {
    std::string path;
    pid_t owner;
    ~Dir() {
      std::error_code ec;
      if (::getpid() == owner) std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir = [&] {
    Dir d{(std::filesystem::temp_directory_path() / (prefix + "_" + std::to_string(::getpid()))).string(),
          ::getpid()};
    std::error_code ec;
    std::filesystem::remove_all(d.path, ec);
    std::filesystem::create_directories(d.path, ec);
    return d;
  }();
  return dir.path;
}

}  // namespace hart::testing
