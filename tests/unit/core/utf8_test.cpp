#include <rproxy/core/utf8.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <optional>
#include <string>
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
