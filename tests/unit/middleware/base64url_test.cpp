#include <rproxy/middleware/base64url.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>

namespace b64 = rproxy::middleware::base64url;

TEST_CASE("base64url: RFC 4648 vectors without padding", "[middleware][base64url]") {
  const std::pair<const char*, const char*> v[] = {{"", ""},         {"f", "Zg"},         {"fo", "Zm8"},
                                                   {"foo", "Zm9v"},  {"foob", "Zm9vYg"},  {"fooba", "Zm9vYmE"},
                                                   {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
  for (auto [plain, enc] : v) {
    CHECK(b64::encode(plain) == enc);
    std::string out;
    REQUIRE(b64::decode(enc, out));
    CHECK(out == plain);
  }
}

TEST_CASE("base64url: only the canonical encoding decodes", "[middleware][base64url]") {
  std::string out;
  for (const char* bad : {"Zg==", "Zg=", "Z", "Zm9vY", "Zh", "Zm9=", "Zm+v", "Zm/v", "Zm9 v", "Zm9\nv", "-_9"}) {
    INFO(bad);
    CHECK_FALSE(b64::decode(bad, out));
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 500; ++i) {
    std::string s(static_cast<std::size_t>(rng() % 40), '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    std::string e = b64::encode(s);
    CHECK(e.size() == (s.size() * 4 + 2) / 3);
    REQUIRE(b64::decode(e, out));
    CHECK(out == s);
  }
}
