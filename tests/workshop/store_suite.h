// The fixture the workshop suites (lora, merge, pieces) share: one
// initialised store for the whole suite (store_) and a temp folder for the
// models it generates (models_), both removed after the suite.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "tests/cli/cli_runner.h"

namespace hart::workshop::testing {

class StoreSuite : public ::testing::Test {
 protected:
  // First thing in the suite's SetUpTestSuite: the folder (its name starts
  // with `prefix`) and the store.
  static void MakeSuiteStore(const std::string& prefix) {
    models_ = new std::string(cli_test::MakeTempDir(prefix));
    store_ = new cli_test::TempStore();
    ASSERT_TRUE(store_->Init());
  }
  static void TearDownTestSuite() {
    delete store_;
    store_ = nullptr;
    std::error_code ec;
    std::filesystem::remove_all(*models_, ec);
    delete models_;
    models_ = nullptr;
  }
  static inline std::string* models_ = nullptr;
  static inline cli_test::TempStore* store_ = nullptr;
};

}  // namespace hart::workshop::testing
