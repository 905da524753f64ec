// Test helpers for tests/app: a real store in a temp dir (an app::Context
// over it) and the CLI suites' generated fixtures (tests/fixtures/
// make_models.py: tiny llama-shaped safetensors, shards, GGUF).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "app/context.h"
#include "app/transfer.h"
#include "core/progress.h"
#include "tests/cli/cli_runner.h"

namespace hart::app::testing {

namespace fs = std::filesystem;
using cli_test::MakeModels;
using cli_test::MakeTempDir;

// Generated once per test binary (make_models.py is deterministic).
inline std::string* g_fixtures = nullptr;
inline const std::string& Fixtures() {
  if (!g_fixtures) {
    g_fixtures = new std::string(MakeTempDir("hart_app_fx_"));
    EXPECT_TRUE(MakeModels(*g_fixtures));
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(*g_fixtures, ec);
    });
  }
  return *g_fixtures;
}
inline std::string Fixture(const std::string& name) { return Fixtures() + "/" + name; }

class AppTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Progress::SetEnabled(false);
    root_ = MakeTempDir("hart_app_");
    dir_ = root_ + "/store";
    ASSERT_TRUE(store::Store::Init(dir_).ok());
    auto s = store::Store::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status();
    ctx_.store = std::move(*s);
    ctx_.actor = "tester";
  }
  void TearDown() override {
    ctx_.store.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  // Ingests fixture `name` as `model` (license mit); fails the test on error.
  IngestResponse Ingest(const std::string& name, const std::string& model,
                        const std::string& parent = "") {
    IngestRequest req;
    req.path = Fixture(name);
    req.model = model;
    req.license = "mit";
    req.parent = parent;
    auto r = app::Ingest(ctx_, req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : IngestResponse{};
  }
  std::string root_, dir_;
  Context ctx_;
};

}  // namespace hart::app::testing
