// core/file_util: ReadFile reads regular files and refuses anything else at
// once (a FIFO must not block the caller waiting for a writer).
#include "core/file_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/temp_dir.h"

namespace hart {
namespace {

std::filesystem::path TempDir() {
  return std::filesystem::path(testing::ProcessTempDir("hart_file_util"));
}

TEST(ReadFile, ReadsARegularFile) {
  auto path = TempDir() / "config.json";
  std::ofstream(path) << "{\"a\": 1}";
  auto text = ReadFile(path.string());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "{\"a\": 1}");
}

TEST(ReadFile, RefusesAFifoWithoutBlocking) {
  auto path = TempDir() / "fifo.json";
  std::filesystem::remove(path);
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  auto text = ReadFile(path.string());  // would hang forever without O_NONBLOCK
  ASSERT_FALSE(text.ok());
  EXPECT_NE(std::string(text.status().message()).find("not a regular file"), std::string::npos)
      << text.status();
  std::filesystem::remove(path);
}

TEST(ReadFile, RefusesADirectory) {
  auto text = ReadFile(TempDir().string());
  ASSERT_FALSE(text.ok());
}

}  // namespace
}  // namespace hart
