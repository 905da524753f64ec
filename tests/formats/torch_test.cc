// PyTorch checkpoints written by the real torch.save (tests/fixtures/
// make_torch.py), compared byte for byte with what torch.load reads back,
// and malicious pickles that must be refused without any side effect.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/file_util.h"
#include "core/status.h"
#include "formats/safetensors.h"
#include "formats/torch.h"
#include "nlohmann/json.hpp"

namespace hart::formats {
namespace {
namespace fs = std::filesystem;

class TorchTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "/hart_torch_" + std::to_string(::getpid()));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_);
    std::string cmd = "/usr/bin/python3 " HART_SOURCE_DIR "/tests/fixtures/make_torch.py " + *dir_;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    expected_ = new nlohmann::json(nlohmann::json::parse(*ReadFile(*dir_ + "/expected.json")));
    malicious_ = new nlohmann::json(nlohmann::json::parse(*ReadFile(*dir_ + "/malicious.json")));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
    delete expected_;
    delete malicious_;
  }
  void SetUp() override {
    if (!(*expected_)["torch"].get<bool>() && NeedsTorch())
      GTEST_SKIP() << "python3-torch is not installed (scripts/install-deps installs it)";
  }
  virtual bool NeedsTorch() const { return true; }

  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }
  static std::vector<uint8_t> Bytes(const std::string& path) {
    auto s = ReadFile(path);
    EXPECT_TRUE(s.ok()) << path;
    return std::vector<uint8_t>(s->begin(), s->end());
  }
  static const TensorDesc* Find(const ModelSource& src, const std::string& name) {
    for (const auto& t : src.tensors)
      if (t.name == name) return &t;
    return nullptr;
  }

  static std::string* dir_;
  static nlohmann::json* expected_;
  static nlohmann::json* malicious_;
};
std::string* TorchTest::dir_;
nlohmann::json* TorchTest::expected_;
nlohmann::json* TorchTest::malicious_;

class TorchMaliciousTest : public TorchTest {
  bool NeedsTorch() const override { return false; }
};

TEST_F(TorchTest, EveryCheckpointMatchesTorchLoadByteForByte) {
  for (const auto& [name, ck] : (*expected_)["checkpoints"].items()) {
    SCOPED_TRACE(name);
    auto src = ReadTorch(ck["file"].get<std::string>());
    ASSERT_TRUE(src.ok()) << src.status();
    EXPECT_EQ(src->format, Format::kTorch);
    EXPECT_TRUE(src->files[0].layout.empty());
    EXPECT_EQ(src->tensors.size(), ck["tensors"].size());
    for (const auto& want : ck["tensors"]) {
      std::string tname = want["name"];
      SCOPED_TRACE(tname);
      const TensorDesc* t = Find(*src, tname);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(Name(t->dtype), want["dtype"].get<std::string>());
      EXPECT_EQ(t->shape, want["shape"].get<Shape>());
      auto raw = Bytes(want["raw"]);
      auto got = src->TensorBytes(static_cast<size_t>(t - src->tensors.data()));
      ASSERT_EQ(got.size(), raw.size());
      EXPECT_TRUE(std::equal(got.begin(), got.end(), raw.begin()));
      // Contiguous views of STORED entries point into the file.
      if (name != "deflated" && t->nbytes > 0) {
        EXPECT_EQ(t->owned == nullptr, want["contiguous"].get<bool>());
      }
    }
  }
}

TEST_F(TorchTest, SharedStoragesAndTiedWeightsShareBytesInTheFile) {
  auto src = ReadTorch(Path("shared.pt"));
  ASSERT_TRUE(src.ok()) << src.status();
  const TensorDesc* embed = Find(*src, "embed.weight");
  const TensorDesc* head = Find(*src, "lm_head.weight");
  ASSERT_TRUE(embed && head);
  EXPECT_EQ(embed->offset, head->offset);  // one storage, one span
  EXPECT_EQ(embed->nbytes, head->nbytes);
  const TensorDesc* a = Find(*src, "first_half");
  const TensorDesc* b = Find(*src, "second_half");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(b->offset, a->offset + 12 * 4);  // slices of one storage, zero copy
  EXPECT_EQ(src->metadata["storages"], 2);
}

TEST_F(TorchTest, NestedStateDictsGetDottedNamesAndMetadata) {
  auto src = ReadTorch(Path("nested.pt"));
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_NE(Find(*src, "model.0.weight"), nullptr);
  EXPECT_NE(Find(*src, "model.2.bias"), nullptr);
  EXPECT_NE(Find(*src, "optimizer.state.0.exp_avg"), nullptr);
  const auto& m = src->metadata;
  EXPECT_EQ(m["torch_format"], "zip");
  EXPECT_EQ(m["byteorder"], "little");
  EXPECT_EQ(m["state_dict_keys"], src->tensors.size());
  EXPECT_EQ(m["values"]["epoch"], 3);
  EXPECT_EQ(m["values"]["config"]["name"], "tiny");
  EXPECT_EQ(m["values"]["optimizer.param_groups"][0]["lr"], 0.01);
  EXPECT_TRUE(m.contains("_metadata")) << m.dump();
  EXPECT_EQ(src->name_hint, "nested");
}

TEST_F(TorchTest, LegacyFormatReadsInPlace) {
  auto src = ReadTorch(Path("legacy.pt"));
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->metadata["torch_format"], "legacy");
  EXPECT_EQ(src->metadata["values"]["step"], 10);
  const TensorDesc* w = Find(*src, "w");
  const TensorDesc* tied = Find(*src, "tied");
  ASSERT_TRUE(w && tied);
  EXPECT_EQ(w->owned, nullptr);
  EXPECT_EQ(w->offset, tied->offset);
  EXPECT_NE(Find(*src, "w_t")->owned, nullptr);  // a transpose is made contiguous
}

TEST_F(TorchTest, ComplexTensorsAreRefusedClearly) {
  auto src = ReadTorch(Path("complex.pt"));
  ASSERT_FALSE(src.ok());
  EXPECT_NE(Msg(src.status()).find("ComplexFloatStorage"), std::string_view::npos) << src.status();
  EXPECT_NE(Msg(src.status()).find("tensor 'c'"), std::string_view::npos) << src.status();
}

TEST_F(TorchTest, CorruptStorageFailsItsCrc) {
  auto bytes = Bytes(Path("dtypes.pt"));
  auto good = ParseTorch(bytes, "dtypes.pt");
  ASSERT_TRUE(good.ok()) << good.status();
  size_t at = good->tensors[0].offset + 1;
  bytes[at] ^= 0x40;
  auto bad = ParseTorch(bytes, "dtypes.pt");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(Msg(bad.status()).find("CRC-32 mismatch"), std::string_view::npos) << bad.status();
  TorchReadOptions no_crc;
  no_crc.verify_crc = false;
  EXPECT_TRUE(ParseTorch(bytes, "dtypes.pt", no_crc).ok());
}

TEST_F(TorchTest, CopiesOutOfTheFileAreBounded) {
  TorchReadOptions tight;
  tight.max_owned_bytes = 16;
  auto src = ParseTorch(Bytes(Path("views.pt")), "views.pt", tight);
  ASSERT_FALSE(src.ok());
  EXPECT_NE(Msg(src.status()).find("exceed the limit"), std::string_view::npos) << src.status();
}

TEST_F(TorchTest, TruncatedAndFlippedFilesFailCleanly) {
  for (const char* name : {"nested.pt", "legacy.pt", "deflated.pt"}) {
    auto bytes = Bytes(Path(name));
    for (size_t len = 0; len < bytes.size(); len += 1 + bytes.size() / 97) {
      std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(len));
      EXPECT_FALSE(ParseTorch(cut, name).ok()) << name << " cut at " << len;
    }
    for (size_t at = 0; at < bytes.size(); at += 1 + bytes.size() / 211) {
      auto flipped = bytes;
      flipped[at] ^= 0xFF;
      (void)ParseTorch(flipped, name);  // any answer but a crash
    }
  }
}

TEST_F(TorchTest, ScanPassesRealCheckpoints) {
  for (const char* name : {"dtypes.pt", "nested.pt", "legacy.pt", "proto4.pt", "deflated.pt"}) {
    auto rep = ScanTorchFile(Path(name));
    ASSERT_TRUE(rep.ok()) << rep.status();
    EXPECT_TRUE(rep->safe) << name << ": " << rep->verdict;
    EXPECT_EQ(rep->verdict, "safe: only tensor rebuild globals");
  }
  auto legacy = ScanTorchFile(Path("legacy.pt"));
  EXPECT_EQ(legacy->format, "legacy");
  EXPECT_EQ(legacy->pickles.size(), 5u);
  bool rebuild = false;
  for (const auto& f : legacy->pickles[3].findings)
    rebuild |= f.target == "torch._utils._rebuild_tensor_v2" && f.allowed;
  EXPECT_TRUE(rebuild);
}

TEST_F(TorchTest, TorchCheckpointExportsAsIdenticalSafetensors) {
  auto src = ReadTorch(Path("nested.pt"));
  ASSERT_TRUE(src.ok()) << src.status();
  std::string out = Path("nested.safetensors");
  auto st = WriteSafetensors(out, src->tensors, {{"format", "pt"}},
                             [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
                               return src->TensorBytes(i);
                             });
  ASSERT_TRUE(st.ok()) << st;
  auto back = ReadSafetensors(out);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->tensors.size(), src->tensors.size());
  for (size_t i = 0; i < src->tensors.size(); ++i) {
    const TensorDesc* t = Find(*back, src->tensors[i].name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->shape, src->tensors[i].shape);
    auto a = src->TensorBytes(i);
    auto b = back->TensorBytes(static_cast<size_t>(t - back->tensors.data()));
    EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << t->name;
  }
}

// Hugging Face directories: pytorch_model.bin, or two shards and their
// index, each with config.json as a sidecar, open as one model whose tensors
// are what torch.load gives for the files together.
TEST_F(TorchTest, HuggingFaceDirectoriesOpenAsOneModelWithSidecars) {
  ASSERT_EQ((*expected_)["hf"].size(), 2u);
  for (const auto& [name, want] : (*expected_)["hf"].items()) {
    SCOPED_TRACE(name);
    auto src = OpenModel(want["dir"].get<std::string>());
    ASSERT_TRUE(src.ok()) << src.status();
    EXPECT_EQ(src->format, Format::kTorch);
    EXPECT_EQ(src->name_hint, name);
    EXPECT_EQ(src->architecture, "llama");
    EXPECT_EQ(src->metadata["config"]["hidden_size"], 8);
    std::vector<std::string> files;
    for (const auto& f : src->files) files.push_back(f.name);
    if (name == "tiny-sharded") {
      EXPECT_EQ(files, (std::vector<std::string>{"pytorch_model.bin.index.json",
                                                 "pytorch_model-00001-of-00002.bin",
                                                 "pytorch_model-00002-of-00002.bin", "config.json"}));
      EXPECT_EQ(src->metadata["shards"].size(), 2u);
      EXPECT_TRUE(src->metadata["index"].contains("total_size"));
    } else {
      EXPECT_EQ(files, (std::vector<std::string>{"pytorch_model.bin", "config.json",
                                                 "tokenizer_config.json"}));
    }
    ASSERT_EQ(src->tensors.size(), want["tensors"].size());
    for (const auto& wt : want["tensors"]) {
      std::string tname = wt["name"];
      SCOPED_TRACE(tname);
      const TensorDesc* t = Find(*src, tname);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(Name(t->dtype), wt["dtype"].get<std::string>());
      EXPECT_EQ(t->shape, wt["shape"].get<Shape>());
      auto raw = Bytes(wt["raw"]);
      auto got = src->TensorBytes(static_cast<size_t>(t - src->tensors.data()));
      EXPECT_TRUE(std::equal(got.begin(), got.end(), raw.begin(), raw.end()));
    }
  }
  // The index opened directly is the same model, named after the index.
  std::string dir = (*expected_)["hf"]["tiny-sharded"]["dir"];
  auto idx = OpenModel(dir + "/pytorch_model.bin.index.json");
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ(idx->format, Format::kTorch);
  EXPECT_EQ(idx->name_hint, "pytorch_model");
  EXPECT_EQ(idx->tensors.size(), 10u);
}

TEST_F(TorchTest, LyingOrBrokenBinIndexIsRefusedNamingFileAndField) {
  ASSERT_GE((*expected_)["hf_lies"].size(), 8u);
  for (const auto& [name, lie] : (*expected_)["hf_lies"].items()) {
    SCOPED_TRACE(name);
    auto src = OpenModel(lie["dir"].get<std::string>());
    ASSERT_FALSE(src.ok());
    std::string msg(Msg(src.status()));
    EXPECT_NE(msg.find("pytorch_model.bin.index.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(lie["field"].get<std::string>()), std::string::npos) << msg;
  }
}

TEST_F(TorchTest, DirectoryPrefersSafetensorsAndRefusesAmbiguousCheckpoints) {
  std::string d = Path("ambiguous");
  fs::create_directories(d);
  std::string bin = (*expected_)["hf"]["tiny-bin"]["dir"].get<std::string>() + "/pytorch_model.bin";
  fs::copy_file(bin, d + "/a.bin");
  fs::copy_file(bin, d + "/b.pt");
  auto src = OpenModel(d);
  ASSERT_FALSE(src.ok());
  EXPECT_NE(Msg(src.status()).find("several PyTorch checkpoints"), std::string::npos) << src.status();
  fs::remove(d + "/b.pt");
  src = OpenModel(d);  // the one checkpoint there
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->format, Format::kTorch);
  EXPECT_EQ(src->files[0].name, "a.bin");
  // With a .safetensors beside it, the safetensors weights win.
  auto st = WriteSafetensors(d + "/model.safetensors", src->tensors, {},
                             [&](size_t i) -> absl::StatusOr<std::span<const uint8_t>> {
                               return src->TensorBytes(i);
                             });
  ASSERT_TRUE(st.ok()) << st;
  src = OpenModel(d);
  ASSERT_TRUE(src.ok()) << src.status();
  EXPECT_EQ(src->format, Format::kSafetensors);
}

TEST_F(TorchMaliciousTest, EveryPayloadIsRefusedNamingItsGlobalAndNothingRuns) {
  ASSERT_GE(malicious_->size(), 20u);
  for (const auto& [name, m] : malicious_->items()) {
    SCOPED_TRACE(name);
    std::string file = m["file"], global = m["global"];
    auto src = ReadTorch(file);
    ASSERT_FALSE(src.ok());
    EXPECT_NE(Msg(src.status()).find(global), std::string_view::npos) << src.status();
    EXPECT_NE(Msg(src.status()).find("refused"), std::string_view::npos) << src.status();
    EXPECT_NE(Msg(src.status()).find("offset "), std::string_view::npos) << src.status();

    auto rep = ScanTorchFile(file);
    ASSERT_TRUE(rep.ok()) << rep.status();
    EXPECT_FALSE(rep->safe);
    EXPECT_EQ(rep->verdict.rfind("UNSAFE: ", 0), 0u) << rep->verdict;
    bool named = false;
    for (const auto& p : rep->pickles)
      for (const auto& f : p.findings) named |= f.target == global && !f.allowed;
    EXPECT_TRUE(named) << rep->verdict;

    std::string marker = m["marker"], live = m["live_marker"];
    if (marker.empty()) continue;
    EXPECT_TRUE(fs::exists(live)) << "the payload is not live: Python did not create " << live;
    EXPECT_FALSE(fs::exists(marker)) << "side effect happened: " << marker;
  }
}

TEST_F(TorchMaliciousTest, ScanNamesTheCallAndItsOffset) {
  auto rep = ScanTorchFile(Path("malicious/os_system_reduce.pkl"));
  ASSERT_TRUE(rep.ok()) << rep.status();
  // \x80\x02 then GLOBAL at 2 (import); REDUCE comes after the argument tuple.
  ASSERT_GE(rep->pickles[0].findings.size(), 2u);
  EXPECT_EQ(rep->pickles[0].findings[0].offset, 2u);
  EXPECT_EQ(rep->pickles[0].findings[0].opcode, "GLOBAL");
  EXPECT_EQ(rep->pickles[0].findings[1].opcode, "REDUCE");
  EXPECT_EQ(rep->verdict, "UNSAFE: would call posix.system at offset " +
                              std::to_string(rep->pickles[0].findings[1].offset));
  auto memo = ScanTorchFile(Path("malicious/stack_global_memo.pkl"));
  ASSERT_TRUE(memo.ok());
  EXPECT_NE(memo->verdict.find("posix.system"), std::string::npos) << memo->verdict;
}

// Inputs the fuzzers once crashed on (fuzz/regressions/) and the corpora
// stay answered with a status.
TEST(TorchRegressionTest, FuzzFindingsAndCorporaParseWithoutCrashing) {
  size_t files = 0;
  for (const char* dir : {"/fuzz/regressions/torch", "/fuzz/regressions/pickle", "/fuzz/corpus/torch",
                          "/fuzz/corpus/pickle"}) {
    std::string path = std::string(HART_SOURCE_DIR) + dir;
    if (!fs::exists(path)) continue;
    for (const auto& e : fs::directory_iterator(path)) {
      if (!e.is_regular_file()) continue;
      auto s = ReadFile(e.path().string());
      ASSERT_TRUE(s.ok());
      std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(s->data()), s->size());
      TorchReadOptions opt;
      opt.max_owned_bytes = 64 << 20;
      auto ck = ParseTorch(bytes, "regression", opt);
      if (!ck.ok()) {
        EXPECT_EQ(ck.status().code(), absl::StatusCode::kDataLoss) << e.path() << ck.status();
      }
      auto rep = ScanTorch(bytes, "regression");
      EXPECT_TRUE(rep.ok() || rep.status().code() == absl::StatusCode::kDataLoss) << e.path();
      for (bool scan : {false, true}) {
        auto r = RunPickle(bytes, {"regression", 0, scan});
        if (!r.ok()) {
          EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << e.path();
        }
      }
      ++files;
    }
  }
  EXPECT_GT(files, 0u);
}

}  // namespace
}  // namespace hart::formats
