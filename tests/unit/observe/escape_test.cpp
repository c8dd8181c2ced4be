#include <rproxy/observe/escape.hpp>

#include <catch2/catch.hpp>

#include <limits>
#include <string>

namespace obs = rproxy::observe;

TEST_CASE("escape: UTF-8 sanitizing keeps valid text and replaces the rest", "[observe]") {
  CHECK(obs::utf8_sanitized("plain") == "plain");
  CHECK(obs::utf8_sanitized("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  const std::string bad = "\xef\xbf\xbd";
  CHECK(obs::utf8_sanitized("\xff") == bad);
  CHECK(obs::utf8_sanitized("\xc0\xaf") == bad + bad);            // overlong '/'
  CHECK(obs::utf8_sanitized("\xed\xa0\x80") == bad + bad + bad);  // surrogate
  CHECK(obs::utf8_sanitized("\xf4\x90\x80\x80") == bad + bad + bad + bad);  // > U+10FFFF
  CHECK(obs::utf8_sanitized("a\xe2\x82") == "a" + bad + bad);    // truncated
}

TEST_CASE("escape: JSON strings", "[observe]") {
  std::string out;
  obs::append_json_string(out, std::string("q\"b\\n\n\r\t\b\f\x01\x7f/\0z", 15));
  CHECK(out == "\"q\\\"b\\\\n\\n\\r\\t\\b\\f\\u0001\\u007f/\\u0000z\"");
}

TEST_CASE("escape: Prometheus label values and help", "[observe]") {
  std::string v;
  obs::append_label_value(v, "a\"b\\c\nd\te");
  CHECK(v == "a\\\"b\\\\c\\nd\te");
  std::string h;
  obs::append_help_text(h, "a\"b\\c\nd");
  CHECK(h == "a\"b\\\\c\\nd");
}

TEST_CASE("escape: numbers", "[observe]") {
  auto num = [](double d) {
    std::string s;
    obs::append_prometheus_number(s, d);
    return s;
  };
  CHECK(num(1) == "1");
  CHECK(num(0.005) == "0.005");
  CHECK(num(2.5) == "2.5");
  CHECK(num(-3) == "-3");
  CHECK(num(1e21) == "1e+21");
  CHECK(num(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(num(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(num(std::numeric_limits<double>::quiet_NaN()) == "NaN");
  std::string i;
  obs::append_integer(i, std::uint64_t{18446744073709551615ull});
  obs::append_integer(i, -5);
  CHECK(i == "18446744073709551615-5");
}
