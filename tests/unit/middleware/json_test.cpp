#include <rproxy/middleware/json.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace mw = rproxy::middleware;
namespace json = rproxy::middleware::json;

namespace {
std::error_code parse_ec(std::string_view s, const json::limits& lim = {}) {
  auto r = json::parse(s, lim);
  return r ? std::error_code{} : r.error();
}
}  // namespace

TEST_CASE("json: values, escapes, navigation", "[middleware][json]") {
  auto doc = json::parse(R"( {"s":"a\"b\\c\/d\n\u00e9\ud83d\ude00","n":-12.5e1,"z":0,"t":true,"f":false,"nul":null,
                              "arr":[1,[2,{}],[]],"o":{"k":"v"},"e":""} )");
  REQUIRE(doc);
  auto r = doc->root();
  REQUIRE(r.is_object());
  CHECK(r.size() == 9);
  CHECK(r.find("s")->as_string() == "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80");
  CHECK(r.find("n")->as_number() == -125.0);
  CHECK(r.find("n")->as_string() == "-12.5e1");
  CHECK(r.find("z")->as_number() == 0);
  CHECK(r.find("t")->as_bool());
  CHECK_FALSE(r.find("f")->as_bool());
  CHECK(r.find("nul")->is_null());
  CHECK(r.find("e")->as_string().empty());
  CHECK_FALSE(r.find("missing"));
  CHECK_FALSE(r.find("arr")->find("x"));
  auto arr = *r.find("arr");
  REQUIRE(arr.size() == 3);
  std::vector<json::kind> kinds;
  for (json::value v : arr.children()) kinds.push_back(v.type());
  CHECK(kinds == std::vector<json::kind>{json::kind::number, json::kind::array, json::kind::array});
  std::vector<std::string> keys;
  for (json::value m : r.children()) keys.emplace_back(m.key());
  CHECK(keys.front() == "s");
  CHECK(keys.back() == "e");
  CHECK(r.find("o")->find("k")->as_string() == "v");
  // scalars at top level are valid JSON texts
  CHECK(json::parse("42")->root().as_number() == 42);
  CHECK(json::parse(R"("x")")->root().as_string() == "x");
  CHECK(json::parse("\"\\u0000\"")->root().as_string() == std::string_view("\0", 1));
}

TEST_CASE("json: strict grammar", "[middleware][json]") {
  for (const char* bad : {"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{a:1}", "{'a':1}", "[01]", "[1.]", "[.5]", "[+1]",
                          "[1e]", "[-]", "[NaN]", "[Infinity]", "[tru]", "[nulll]", "{} {}", "{\"a\" 1}", "[1 2]",
                          "// c\n{}", "[1e999]", "[\"a\"\"b\"]", "{\"a\":}", "[,1]"}) {
    INFO(bad);
    CHECK(parse_ec(bad) == mw::error::json_syntax);
  }
  for (const char* bad : {"[\"\x01\"]", "[\"tab\there\"]", "[\"\\x41\"]", "[\"\\u12\"]", "[\"\\ud800\"]",
                          "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]", "[\"\xff\"]", "[\"\xc0\x80\"]", "[\"\xed\xa0\x80\"]",
                          "[\"\xf4\x90\x80\x80\"]", "[\"\xe2\x82\"]", "[\"\\\"]"}) {
    INFO(bad);
    auto ec = parse_ec(bad);
    CHECK((ec == mw::error::json_bad_encoding || ec == mw::error::json_syntax));
    CHECK(ec);
  }
  CHECK(parse_ec(R"({"a":1,"b":2,"a":3})") == mw::error::json_duplicate_key);
  CHECK(parse_ec(R"({"a":{"x":1,"x":1}})") == mw::error::json_duplicate_key);
  CHECK(parse_ec(R"([{"a":1},{"a":1}])") == std::error_code{});  // different objects
  CHECK(parse_ec("[\"\xe2\x82\xac \xf0\x9f\x98\x80\"]") == std::error_code{});
}

TEST_CASE("json: limits on size, depth and nodes", "[middleware][json]") {
  json::limits lim;
  lim.max_depth = 3;
  CHECK(parse_ec("[[[]]]", lim) == std::error_code{});
  CHECK(parse_ec("[[[[]]]]", lim) == mw::error::json_too_deep);
  CHECK(parse_ec(R"({"a":{"b":{"c":{}}}})", lim) == mw::error::json_too_deep);
  CHECK(parse_ec(std::string(100000, '['), {}) == mw::error::json_too_large);
  CHECK(parse_ec(std::string(5000, '[') + std::string(5000, ']'), {}) == mw::error::json_too_deep);
  json::limits small;
  small.max_bytes = 8;
  CHECK(parse_ec("[1,2,3,4]", small) == mw::error::json_too_large);
  json::limits few;
  few.max_nodes = 3;
  CHECK(parse_ec("[1,2]", few) == std::error_code{});
  CHECK(parse_ec("[1,2,3]", few) == mw::error::json_too_large);
}
