// A real full disk: a store on an 8 MiB tmpfs (mounted in a private mount
// namespace, so nothing outlives the test), where ingesting a 32 MiB model
// runs out of space. The ingest fails with a message that says the disk is
// full, and the store keeps every promise: it reopens, verify is clean,
// what was committed before exports bit-exact, and gc gives the space back.
// Skipped, saying why, where mounting is not permitted.
#include <cstdlib>

#include "cli_runner.h"

namespace hart::cli_test {
namespace {

TEST(CliFullDisk, IngestThatFillsTheDiskFailsCleanly) {
  std::string root = MakeTempDir("hart_fulldisk_");
  ASSERT_TRUE(MakeModels(root + "/fx"));
  ASSERT_TRUE(MakeModels(root + "/fx", "--size-mb 32"));
  const std::string mnt = root + "/mnt", out = root + "/out";
  fs::create_directories(mnt);
  fs::create_directories(out);
  const std::string hart = std::string(HART_BIN) + " --no-progress --store " + mnt + "/store";
  // Everything that needs the mount runs inside the namespace; results come
  // out as files under `out` (outside the mount).
  std::string script =
      "set -u; mount -t tmpfs -o size=8m tmpfs '" + mnt + "' 2>'" + out + "/mount.err' || exit 77\n" +
      hart + " init >/dev/null || exit 10\n" +
      hart + " ingest '" + root + "/fx/base.safetensors' --license mit >/dev/null 2>'" + out +
      "/base.err' || exit 11\n" +
      hart + " ingest '" + root + "/fx/large.safetensors' --model large --license mit >/dev/null 2>'" +
      out + "/large.err'; echo $? >'" + out + "/large.rc'\n" +
      "df -k '" + mnt + "' | tail -1 >'" + out + "/df_full'\n" +
      hart + " verify >'" + out + "/verify1.out' 2>&1; echo $? >'" + out + "/verify1.rc'\n" +
      hart + " ls >'" + out + "/ls.out' 2>&1\n" +
      hart + " export base@1 -o '" + out + "/base1.safetensors' >/dev/null 2>'" + out + "/export1.err'\n" +
      hart + " gc >'" + out + "/gc.out' 2>&1; echo $? >'" + out + "/gc.rc'\n" +
      "df -k '" + mnt + "' | tail -1 >'" + out + "/df_gc'\n" +
      hart + " verify >'" + out + "/verify2.out' 2>&1; echo $? >'" + out + "/verify2.rc'\n" +
      hart + " ingest '" + root + "/fx/ft1.safetensors' --model after --license mit >/dev/null 2>'" +
      out + "/after.err'; echo $? >'" + out + "/after.rc'\n" +
      hart + " export base@1 -o '" + out + "/base2.safetensors' >/dev/null 2>'" + out + "/export2.err'\n" +
      "exit 0\n";
  std::string script_path = root + "/full_disk.sh";
  {
    FILE* f = std::fopen(script_path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(script.c_str(), f);
    std::fclose(f);
  }
  int rc = std::system(("unshare --mount --propagation private sh '" + script_path + "' 2>'" + out +
                        "/unshare.err'").c_str());
  int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  if (code == 77 || (code != 0 && code < 10)) {
    std::string why = ReadAll(out + "/mount.err") + ReadAll(out + "/unshare.err");
    fs::remove_all(root);
    GTEST_SKIP() << "cannot mount a small tmpfs here (needs CAP_SYS_ADMIN or user namespaces): " << why;
  }
  ASSERT_EQ(code, 0) << "setup step " << code << " failed: " << ReadAll(out + "/base.err");

  auto trim = [](std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  };
  std::string large_err = ReadAll(out + "/large.err");
  EXPECT_NE(trim(ReadAll(out + "/large.rc")), "0") << "a 32 MiB ingest fit on an 8 MiB disk?";
  EXPECT_NE(large_err.find("No space left on device"), std::string::npos)
      << "the error should say the disk is full: " << large_err;
  EXPECT_LT(large_err.size(), 1000u) << large_err;
  EXPECT_EQ(trim(ReadAll(out + "/verify1.rc")), "0") << ReadAll(out + "/verify1.out");
  EXPECT_EQ(ReadAll(out + "/ls.out").find("large"), std::string::npos)
      << "the failed ingest left a model: " << ReadAll(out + "/ls.out");
  const std::string base_sha = Sha256File(root + "/fx/base.safetensors");
  EXPECT_EQ(Sha256File(out + "/base1.safetensors"), base_sha) << ReadAll(out + "/export1.err");
  EXPECT_EQ(trim(ReadAll(out + "/gc.rc")), "0") << ReadAll(out + "/gc.out");
  EXPECT_EQ(trim(ReadAll(out + "/verify2.rc")), "0") << ReadAll(out + "/verify2.out");
  // gc gave the space back: a later small ingest fits.
  EXPECT_EQ(trim(ReadAll(out + "/after.rc")), "0") << ReadAll(out + "/after.err");
  EXPECT_EQ(Sha256File(out + "/base2.safetensors"), base_sha) << ReadAll(out + "/export2.err");
  std::printf("[full disk] ingest error: %s[full disk] df when full: %s[full disk] df after gc: %s",
              large_err.c_str(), ReadAll(out + "/df_full").c_str(), ReadAll(out + "/df_gc").c_str());
  fs::remove_all(root);
}

}  // namespace
}  // namespace hart::cli_test
