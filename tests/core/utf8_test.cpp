// core/utf8.hpp: malformed UTF-8 becomes U+FFFD exactly as Python's
// bytes.decode("utf-8", "replace") does, so a name reads the same in both languages.
#include <gtest/gtest.h>

#include <lightning/core/utf8.hpp>

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "support/python.hpp"

namespace L = lightning;

namespace {
std::string hex(const std::string& s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 0xF];
  }
  return out;
}
}  // namespace

TEST(Utf8, ValidTextIsKeptAndMalformedSequencesBecomeReplacementCharacters) {
  const std::string fffd = "\xEF\xBF\xBD";
  for (const std::string valid : {"", "val/loss", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x7F"}) {
    EXPECT_EQ(L::valid_utf8(valid), valid);
    EXPECT_TRUE(L::is_valid_utf8(valid));
  }
  EXPECT_EQ(L::valid_utf8("a\xFF"
                          "b"),
            "a" + fffd + "b");
  EXPECT_EQ(L::valid_utf8("\xC3\x28"), fffd + "(");              // a lead cut short
  EXPECT_EQ(L::valid_utf8("\xE0\x80"), fffd + fffd);             // overlong: two errors
  EXPECT_EQ(L::valid_utf8("\xED\xA0\x80"), fffd + fffd + fffd);  // a surrogate
  EXPECT_EQ(L::valid_utf8("\xF0\x9F\x98"), fffd);                // one maximal subpart
  EXPECT_FALSE(L::is_valid_utf8("\xC0\xAF"));
}

// Python decides: random byte strings rich in lead and continuation bytes.
TEST(Utf8, AgreesWithPythonsDecoderOnRandomBytes) {
  std::mt19937 random(7);
  const std::vector<unsigned char> alphabet = {'a',  0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                               0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED,
                                               0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF};
  std::vector<std::string> inputs;
  for (int n = 0; n < 2000; ++n) {
    std::string s;
    const auto length = random() % 9;
    for (unsigned i = 0; i < length; ++i)
      s += static_cast<char>(alphabet[random() % alphabet.size()]);
    inputs.push_back(s);
  }
  {
    std::ofstream out("inputs.txt");
    for (const auto& s : inputs) out << 'x' << hex(s) << '\n';  // 'x': no empty words
  }
  const auto result = lightning::testing::run_python_program(
      "for h in open('inputs.txt').read().split():\n"
      "    print(bytes.fromhex(h[1:]).decode('utf-8', 'replace').encode().hex())\n");
  LIGHTNING_EXPECT_PYTHON_OK(result);
  const auto lines = lightning::testing::lines_of(result.output);
  ASSERT_EQ(lines.size(), inputs.size());
  for (std::size_t i = 0; i < inputs.size(); ++i)
    EXPECT_EQ(hex(L::valid_utf8(inputs[i])), lines[i]) << "input " << hex(inputs[i]);
}
