#include <rproxy/core/base64.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <tuple>

namespace b64 = rproxy::base64;

TEST_CASE("base64: RFC 4648 vectors, padded standard and unpadded url", "[core][base64]") {
  for (const auto& [in, padded, url] : {std::tuple<std::string, std::string, std::string>{"", "", ""},
                                        {"f", "Zg==", "Zg"},
                                        {"fo", "Zm8=", "Zm8"},
                                        {"foo", "Zm9v", "Zm9v"},
                                        {"foob", "Zm9vYg==", "Zm9vYg"},
                                        {"fooba", "Zm9vYmE=", "Zm9vYmE"},
                                        {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
                                        {"\xfb\xff\xfe", "+//+", "-__-"}}) {
    CAPTURE(in);
    CHECK(b64::encode(in) == padded);
    CHECK(b64::encode(in, b64::url) == url);
    CHECK(b64::encoded_size(in.size(), true) == padded.size());
    CHECK(b64::encoded_size(in.size(), false) == url.size());
    std::string back;
    REQUIRE(b64::decode(url, back, b64::url));
    CHECK(back == in);
  }
  std::string out = "prefix:";
  b64::append(out, "hi");
  CHECK(out == "prefix:aGk=");
}

TEST_CASE("base64: decoding accepts only the canonical unpadded form", "[core][base64]") {
  std::string out;
  CHECK_FALSE(b64::decode("Zg==", out, b64::url));  // padding
  CHECK_FALSE(b64::decode("Zh", out, b64::url));    // non-zero unused bits
  CHECK_FALSE(b64::decode("Z", out, b64::url));     // 4n+1
  CHECK_FALSE(b64::decode("+//+", out, b64::url));  // the other alphabet
  CHECK(b64::decode("+//+", out, b64::standard));
  CHECK(out == "\xfb\xff\xfe");
}
