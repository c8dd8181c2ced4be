#include <rproxy/core/utf8.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace utf8 = rproxy::utf8;
using namespace std::string_literals;

namespace {
// Every decode result of `s`, nullopt for an invalid byte.
std::vector<std::optional<char32_t>> decode_all(std::string_view s) {
  std::vector<std::optional<char32_t>> out;
  std::size_t i = 0;
  while (i < s.size()) {
    const std::size_t before = i;
    out.push_back(utf8::decode(s, i));
    REQUIRE(i > before);
    REQUIRE(i <= s.size());
  }
  return out;
}
}  // namespace

TEST_CASE("utf8: decodes every length, shortest form only", "[core][utf8]") {
  using v = std::vector<std::optional<char32_t>>;
  CHECK(decode_all("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == v{U'a', 0xE9, 0x20AC, 0x1F600});
  CHECK(decode_all("\0"s) == v{0});
  CHECK(decode_all("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf") ==
        v{0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF});
}

TEST_CASE("utf8: refuses what RFC 3629 forbids", "[core][utf8]") {
  for (const char* bad : {"\x80",              // lone continuation
                          "\xbf",              //
                          "\xc0\x80",          // overlong NUL
                          "\xc1\xbf",          // overlong
                          "\xe0\x80\x80",      // overlong 3-byte
                          "\xe0\x9f\xbf",      // overlong 3-byte (U+07FF)
                          "\xf0\x8f\xbf\xbf",  // overlong 4-byte (U+FFFF)
                          "\xed\xa0\x80",      // U+D800 (surrogate)
                          "\xed\xbf\xbf",      // U+DFFF
                          "\xf4\x90\x80\x80",  // U+110000
                          "\xf5\x80\x80\x80",  // lead over F4
                          "\xff", "\xfe",      //
                          "\xe2\x82",          // truncated
                          "\xf0\x9f\x98",      // truncated
                          "\xc3(",             // bad continuation
                          "\xe2(\xac"}) {
    INFO(bad);
    CHECK_FALSE(utf8::is_valid(bad));
    std::size_t i = 0;
    CHECK_FALSE(utf8::decode(bad, i));
    CHECK(i == 1);  // an invalid sequence costs one byte
  }
  CHECK(utf8::is_valid(""));
  CHECK(utf8::is_valid("plain ascii \x7f"));
  CHECK(utf8::is_valid("\xed\x9f\xbf\xee\x80\x80"));  // U+D7FF, U+E000 around the surrogates
  CHECK_FALSE(utf8::is_valid("ok\xff"));
}

TEST_CASE("utf8: encoding, replacement and sanitizing", "[core][utf8]") {
  std::string out;
  for (char32_t cp : {char32_t{'a'}, char32_t{0xE9}, char32_t{0x20AC}, char32_t{0x1F600}, char32_t{0x10FFFF}})
    utf8::append(out, cp);
  CHECK(out == "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
  out.clear();
  utf8::append(out, 0xD800);    // a surrogate
  utf8::append(out, 0x110000);  // out of range
  CHECK(out == "\xef\xbf\xbd\xef\xbf\xbd");

  // round trip over many scalars
  for (char32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x800 ? 1 : 97)) {
    if (!utf8::is_scalar(cp)) continue;
    std::string s;
    utf8::append(s, cp);
    std::size_t i = 0;
    REQUIRE(utf8::decode(s, i) == cp);
    REQUIRE(i == s.size());
  }

  std::u32string seen;
  utf8::for_each("a\xff\xc3\xa9\xe2\x82", [&](char32_t cp) { seen.push_back(cp); });
  CHECK(seen == U"a\uFFFD\u00E9\uFFFD\uFFFD");
  CHECK(utf8::sanitize("a\xff" "b") == "a\xef\xbf\xbd" "b");
  CHECK(utf8::sanitize("valid \xc3\xa9") == "valid \xc3\xa9");
  CHECK(utf8::is_valid(utf8::sanitize("\xed\xa0\x80\xc0\x80\xf4\x90\x80\x80")));
}

namespace {
/// Feeds `s` to a validator in pieces of `step` bytes; true if it is valid and complete.
bool validate_in_steps(std::string_view s, std::size_t step) {
  rproxy::utf8::validator v;
  for (std::size_t i = 0; i < s.size(); i += step)
    if (!v.feed(s.substr(i, step))) return false;
  return v.complete();
}
}  // namespace

TEST_CASE("utf8 validator: Autobahn section 6 cases, whole and split at every byte", "[core][utf8]") {
  const std::vector<std::string_view> valid = {
      "", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",  // 6.2: "kosme"
      "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
      "\xf4\x8f\xbf\xbf",                               // U+10FFFF
      "\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbe",   // around the surrogates; noncharacters
  };
  const std::vector<std::string_view> invalid = {
      "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",  // 6.3
      "\x80", "\xbf", "\x80\xbf\x80",                                  // lone continuations
      "\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf",  // overlong '/'
      "\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf",                  // largest overlongs
      "\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80",      // surrogates
      "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xfe", "\xff", "\xfe\xfe\xff\xff",
      "\xc2", "\xe0\xa0", "\xf0\x90\x80", "\xc2\x41", "\xe0\xa0\x41",  // truncated
  };
  for (auto s : valid) {
    INFO(rproxy::utf8::sanitize(s));
    CHECK(rproxy::utf8::is_valid(s));
    for (std::size_t step = 1; step <= s.size() + 1; ++step) CHECK(validate_in_steps(s, step));
  }
  for (auto s : invalid) {
    CHECK_FALSE(rproxy::utf8::is_valid(s));
    for (std::size_t step = 1; step <= s.size() + 1; ++step) CHECK_FALSE(validate_in_steps(s, step));
  }
}

TEST_CASE("utf8 validator: fails at the first byte no valid text can hold there", "[core][utf8]") {
  struct fail_case {
    std::string_view prefix;
    std::size_t offset;
  };
  // Each prefix is incomplete but already invalid: the validator must say so now.
  for (auto c : {fail_case{"ab\xed\xa0", 3}, fail_case{"\xf4\x90", 1}, fail_case{"\xc0", 0},
                 fail_case{"\xe0\x80", 1}, fail_case{"\xf0\x8f", 1}, fail_case{"abc\xff", 3},
                 fail_case{"\xc3\xa9\x80", 2}}) {
    rproxy::utf8::validator v;
    CHECK_FALSE(v.feed(c.prefix));
    CHECK(v.failed());
    CHECK(v.error_offset() == c.offset);
    CHECK_FALSE(v.feed("a"));  // stays failed
  }
  // A valid prefix of an incomplete sequence is not an error until the text ends.
  rproxy::utf8::validator v;
  CHECK(v.feed("ab\xf0\x9f"));
  CHECK_FALSE(v.complete());
  CHECK(v.feed("\x98\x80 done"));
  CHECK(v.complete());
}

TEST_CASE("utf8 validator agrees with is_valid on random text at random splits", "[core][utf8]") {
  std::uint32_t seed = 12345;
  const auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  const std::string_view alphabet = "a\x7f\xc2\xdf\xe0\xed\xef\xf0\xf4\xf5\x80\x8f\x90\x9f\xa0\xbf\xc0\xff";
  for (int round = 0; round < 20000; ++round) {
    std::string s;
    const std::size_t n = next() % 12;
    for (std::size_t i = 0; i < n; ++i) s.push_back(alphabet[(next() >> 8) % alphabet.size()]);
    const std::size_t step = 1 + (next() >> 8) % 5;
    INFO(rproxy::utf8::sanitize(s) << " step " << step);
    CHECK(validate_in_steps(s, step) == rproxy::utf8::is_valid(s));
  }
}
