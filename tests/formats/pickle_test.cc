// The restricted pickle machine on hand-assembled opcodes: values of every
// protocol, reference semantics of the memo, refusals with opcode, global and
// offset, scan mode, and the bounds that keep hostile input cheap.
#include "formats/pickle.h"

#include <gtest/gtest.h>

#include <string>

#include "core/status.h"

namespace hart::formats {
namespace {

std::span<const uint8_t> B(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
// A literal that may hold NUL bytes.
template <size_t N>
std::string S(const char (&s)[N]) {
  return std::string(s, N - 1);
}
std::string U(const std::string& s) {  // BINUNICODE
  uint32_t n = static_cast<uint32_t>(s.size());
  return std::string("X") + std::string(reinterpret_cast<const char*>(&n), 4) + s;
}
absl::StatusOr<PickleResult> Load(const std::string& s) { return RunPickle(B(s), {"t.pkl", 0, false}); }
PickleResult Scan(const std::string& s) { return *RunPickle(B(s), {"t.pkl", 0, true}); }
std::string Err(const absl::StatusOr<PickleResult>& r) {
  return r.ok() ? "ok" : std::string(Msg(r.status()));
}

TEST(PickleTest, Protocol2Scalars) {
  std::string p = "\x80\x02(K\x07M\x01\x02J\xfe\xff\xff\xff\x88\x89N" + U("h\xc3\xa9") +
                  std::string("G\x40\x09\x21\xfb\x54\x44\x2d\x18") + "\x8a\x01\xff" + "t.";
  auto r = Load(p);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& it = r->root->items;
  ASSERT_EQ(it.size(), 9u);
  EXPECT_EQ(it[0]->integer, 7);
  EXPECT_EQ(it[1]->integer, 0x0201);
  EXPECT_EQ(it[2]->integer, -2);
  EXPECT_TRUE(it[3]->boolean);
  EXPECT_FALSE(it[4]->boolean);
  EXPECT_EQ(it[5]->kind, PickleKind::kNone);
  EXPECT_EQ(it[6]->text, "h\xc3\xa9");
  EXPECT_DOUBLE_EQ(it[7]->real, 3.141592653589793);
  EXPECT_EQ(it[8]->integer, -1);
}

TEST(PickleTest, BigLongsKeepTheirValueAsText) {
  // torch's legacy magic number, as pickle writes it (LONG1, 10 bytes).
  std::string p = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
  auto r = Load(p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->root->kind, PickleKind::kBigInt);
  EXPECT_EQ(r->root->text, "0x1950a86a20f9469cfc6c");
  auto neg = Load(S("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff."));
  ASSERT_TRUE(neg.ok()) << neg.status();
  EXPECT_EQ(neg->root->text, "-0x10000000000000000");
}

TEST(PickleTest, Protocol0TextOpcodes) {
  std::string p =
      "(dp0\nS'a\\x41\\n'\np1\nI42\nsV\\u00e9t\\u00e9\np2\nL123456789012345678901234L\n"
      "sI01\n((lp3\nF2.5\naI-3\nag1\natp4\ns.";
  auto r = Load(p);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& d = r->root->items;
  ASSERT_EQ(d.size(), 6u);
  EXPECT_EQ(d[0]->text, "aA\n");
  EXPECT_EQ(d[1]->integer, 42);
  EXPECT_EQ(d[2]->text, "\xc3\xa9t\xc3\xa9");
  EXPECT_EQ(d[3]->kind, PickleKind::kBigInt);
  EXPECT_EQ(d[3]->text, "123456789012345678901234");
  EXPECT_TRUE(d[4]->boolean);
  const PickleValue* tup = d[5];
  ASSERT_EQ(tup->kind, PickleKind::kTuple);
  const PickleValue* list = tup->items[0];
  ASSERT_EQ(list->items.size(), 3u);
  EXPECT_DOUBLE_EQ(list->items[0]->real, 2.5);
  EXPECT_EQ(list->items[1]->integer, -3);
  EXPECT_EQ(list->items[2]->text, "aA\n");  // GET of memo 1
}

TEST(PickleTest, MemoSharesObjectsNotCopies) {
  // l = []; memo[0] = l; d = {"x": l}; l.append(1) through the memo: d sees it.
  std::string p = "\x80\x02}" + U("x") + S("]q\x00s") + S("h\x00K\x01" "a0.");
  auto r = Load(p);
  ASSERT_TRUE(r.ok()) << r.status();
  // POP removed the list; the dict's value is the same object, now [1].
  EXPECT_EQ(r->root->items[1]->items.size(), 1u);
}

TEST(PickleTest, CyclesDoNotHangTheMachine) {
  auto r = Load(S("\x80\x02]q\x00h\x00" "a."));  // a list containing itself
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->root->items[0], r->root);
}

TEST(PickleTest, AllowlistedCallsBuildValues) {
  std::string p = std::string("\x80\x02(") + "ccollections\nOrderedDict\n)R" + "}" + U("_metadata") +
                  "K\x01sb" + "ctorch\nSize\nK\x02K\x03\x86\x85R" + "ctorch\ndevice\n" + U("cuda") +
                  "K\x01\x86R" + "c_codecs\nencode\n" + U("\xc3\xbf\x01") + U("latin1") + "\x86R" +
                  "c__builtin__\nset\n]K\x05" "a\x85R" + "ctorch\nfloat16\nt.";
  auto r = Load(p);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& it = r->root->items;
  EXPECT_EQ(it[0]->kind, PickleKind::kDict);
  ASSERT_NE(it[0]->state, nullptr);
  EXPECT_EQ(it[1]->kind, PickleKind::kTuple);
  EXPECT_EQ(it[1]->items[1]->integer, 3);
  EXPECT_EQ(it[2]->text, "cuda:1");
  EXPECT_EQ(it[3]->kind, PickleKind::kBytes);
  EXPECT_EQ(it[3]->text, std::string("\xff\x01"));
  EXPECT_EQ(it[4]->kind, PickleKind::kSet);
  EXPECT_EQ(it[5]->global, PickleGlobal::kTorchDType);
  EXPECT_EQ(it[5]->dtype, DType::kF16);
}

TEST(PickleTest, RefusesUnknownGlobalsWithOpcodeNameAndOffset) {
  auto r = Load("\x80\x02K\x01" "0cos\nsystem\n" + U("id") + "\x85R.");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Err(r).rfind("t.pkl: offset 5: pickle GLOBAL os.system: refused", 0), 0u) << Err(r);
  // STACK_GLOBAL with names from the memo is resolved and refused the same way.
  auto sg = Load(S("\x80\x04\x8c\x08\x62uiltins\x94\x8c\x04\x65val\x94\x30\x30h\x00h\x01\x93."));
  EXPECT_NE(Err(sg).find("pickle STACK_GLOBAL builtins.eval: refused"), std::string::npos) << Err(sg);
}

TEST(PickleTest, RefusesCallsOfHarmlessNamesAndBuildOnOthers) {
  auto call_type = Load("\x80\x02\x63torch\nFloatStorage\n)R.");
  EXPECT_NE(Err(call_type).find("REDUCE torch.FloatStorage: refused"), std::string::npos) << Err(call_type);
  auto build_list = Load("\x80\x02]}b.");
  EXPECT_NE(Err(build_list).find("__setstate__ on a list"), std::string::npos) << Err(build_list);
  auto stack_global = Load("\x80\x04K\x01K\x02\x93.");
  EXPECT_NE(Err(stack_global).find("not strings"), std::string::npos) << Err(stack_global);
  auto ext = Load("\x80\x02\x82\x07.");
  EXPECT_NE(Err(ext).find("extension code 7"), std::string::npos) << Err(ext);
  auto bytes_n = Load("\x80\x02\x63__builtin__\nbytes\nJ\xff\xff\xff\x7f\x85R.");
  EXPECT_FALSE(bytes_n.ok());  // bytes(2**31-1) would allocate; only bytes() is applied
}

TEST(PickleTest, MalformedInputIsAnErrorNotACrash) {
  EXPECT_NE(Err(Load("\x80\x02")).find("ends before STOP"), std::string::npos);
  EXPECT_NE(Err(Load("\x80\x02.")).find("stack underflow"), std::string::npos);
  EXPECT_NE(Err(Load("\x80\x02K\x01(.")).find("stack underflow"), std::string::npos);  // mark scopes
  EXPECT_NE(Err(Load("\x80\x02h\x05.")).find("never stored"), std::string::npos);
  EXPECT_NE(Err(Load("\x80\x06N.")).find("protocol 6"), std::string::npos);
  EXPECT_NE(Err(Load("\x80\x02X\xff\xff\xff\x0f" "abc.")).find("needs"), std::string::npos);
  EXPECT_NE(Err(Load("\x80\x02\xffN.")).find("unknown opcode 0xff"), std::string::npos);
  EXPECT_NE(Err(Load(S("\x80\x02X\x02\x00\x00\x00\xc3\x28."))).find("UTF-8"), std::string::npos);
  EXPECT_NE(Err(Load("\x80\x02}K\x01s.")).find("stack underflow"), std::string::npos);
}

TEST(PickleTest, CopyingThroughTheMemoIsMetered) {
  // A list of 2000 pairs, then OrderedDict(list) 20000 times via BINGET:
  // 80 M pointer copies from a 100 KB input; refused long before.
  std::string p = "\x80\x02](";
  for (int i = 0; i < 2000; ++i) p += "K\x01K\x02\x86";
  p += S("eq\x00" "ccollections\nOrderedDict\nq\x01(");
  for (int i = 0; i < 20000; ++i) p += S("h\x01h\x00\x85R");
  p += "t.";
  auto r = Load(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Err(r).find("resource bomb"), std::string::npos) << Err(r);
}

TEST(PickleTest, ScanRecordsEverythingAndKeepsGoing) {
  // getattr(__import__('os'), 'system')('id')
  std::string p = "\x80\x02\x63__builtin__\ngetattr\n\x63__builtin__\n__import__\n" + U("os") + "\x85R" +
                  U("system") + "\x86R" + U("id") + "\x85R.";
  auto r = Scan(p);
  EXPECT_TRUE(r.error.ok()) << r.error;
  std::vector<std::string> seen;
  for (const auto& f : r.findings) seen.push_back(f.opcode + " " + f.target);
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0], "GLOBAL __builtin__.getattr");
  EXPECT_EQ(seen[1], "GLOBAL __builtin__.__import__");
  EXPECT_EQ(seen[2], "REDUCE __builtin__.__import__");
  EXPECT_EQ(seen[3], "REDUCE __builtin__.getattr");
  EXPECT_EQ(seen[4].rfind("REDUCE <refused object made at offset", 0), 0u) << seen[4];
  for (const auto& f : r.findings) EXPECT_FALSE(f.allowed);
  EXPECT_EQ(r.findings[0].offset, 2u);

  auto cut = Scan(p.substr(0, p.size() - 6));
  EXPECT_FALSE(cut.error.ok());
  EXPECT_EQ(cut.findings.size(), 4u);  // what was found before the end is kept
}

TEST(PickleTest, PersistentIdsBecomeStorages) {
  std::string p = "\x80\x02(" + U("storage") + "ctorch\nHalfStorage\n" + U("7") + U("cpu") +
                  "K\x0atQ.";
  auto r = Load(p);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->root->kind, PickleKind::kStorage);
  EXPECT_EQ(r->root->text, "7");
  EXPECT_EQ(r->root->integer, 10);
  EXPECT_EQ(r->root->dtype, DType::kF16);
  auto module_pid = Load("\x80\x02(" + U("module") + "NNNtQ.");
  EXPECT_NE(Err(module_pid).find("persistent id refused"), std::string::npos) << Err(module_pid);
}

}  // namespace
}  // namespace hart::formats
