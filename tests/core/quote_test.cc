#include "core/quote.h"

#include <gtest/gtest.h>

namespace hart {
namespace {

TEST(Quote, PrintableTextStaysAsItIs) {
  EXPECT_EQ(Quote("blk.0.attn_q.weight"), "'blk.0.attn_q.weight'");
  EXPECT_EQ(Quote("café 中文"), "'café 中文'");
  EXPECT_EQ(Quote(""), "''");
}

TEST(Quote, ControlBytesAndBadUtf8AreEscaped) {
  EXPECT_EQ(Quote(std::string("a\0b\n\x1b[31m", 9)), "'a\\x00b\\x0a\\x1b[31m'");
  EXPECT_EQ(Quote("\xff\xc3("), "'\\xff\\xc3('");
  EXPECT_EQ(Quote("it's \\"), "'it\\'s \\\\'");
  EXPECT_EQ(Quote("\x7f"), "'\\x7f'");
  // C1 controls and bidi overrides are valid UTF-8 but not shown raw.
  EXPECT_EQ(Quote("\xc2\x85"), "'\\xc2\\x85'");
  EXPECT_EQ(Quote("\xe2\x80\xae"), "'\\xe2\\x80\\xae'");
  EXPECT_EQ(Quote("\xed\xa0\x80"), "'\\xed\\xa0\\x80'");  // a surrogate
}

TEST(Quote, LongInputIsCutWithItsLength) {
  std::string s(12'900, 'x');
  std::string q = Quote(s);
  EXPECT_EQ(q, "'" + std::string(kQuoteMaxBytes, 'x') + "'…(12900 bytes)");
  // Never inside a UTF-8 character.
  std::string e;
  for (int i = 0; i < 100; ++i) e += "é";
  q = Quote(e, 5);
  EXPECT_EQ(q, "'éé'…(200 bytes)");
  EXPECT_EQ(Printable(std::string(300, '\0'), 4), "\\x00\\x00\\x00\\x00…(300 bytes)");
}

TEST(Quote, EscapeNonPrintableKeepsLinesAndTabs) {
  EXPECT_EQ(EscapeNonPrintable("a\tb\nc\rd\x01"), "a\tb\nc\\x0dd\\x01");
  EXPECT_EQ(EscapeNonPrintable("naïve"), "naïve");
}

}  // namespace
}  // namespace hart
