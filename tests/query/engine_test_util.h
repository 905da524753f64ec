// The fixture the MQE tests share: a fresh store (store::testing::StoreTest)
// with an Engine attached to it once the test's SetUp has ingested what it
// needs. TearDown closes the engine before the store goes.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "query/engine.h"
#include "tests/store/store_test_util.h"

namespace hart::query::testing {

class EngineFixture : public store::testing::StoreTest {
 protected:
  // Attaches engine_ to store_ as it is now.
  void AttachEngine() {
    auto e = Engine::Attach(*store_);
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
  }
  // Ingests `src` as a version of `model`, then AttachEngine().
  void IngestAndAttach(const formats::ModelSource& src, const std::string& model) {
    auto r = store_->Ingest(src, Opts(model));
    ASSERT_TRUE(r.ok()) << r.status();
    AttachEngine();
  }
  void TearDown() override {
    engine_.reset();
    StoreTest::TearDown();
  }
  std::unique_ptr<Engine> engine_;
};

}  // namespace hart::query::testing
