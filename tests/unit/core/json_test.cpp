#include <rproxy/core/json.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace json = rproxy::json;
using namespace std::string_literals;

namespace {
std::error_code parse_ec(std::string_view s, const json::limits& lim = {}) {
  auto r = json::parse(s, lim);
  return r ? std::error_code{} : r.error();
}
}  // namespace

TEST_CASE("json: values, escapes, navigation", "[core][json]") {
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

TEST_CASE("json: strict grammar", "[core][json]") {
  for (const char* bad : {"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{a:1}", "{'a':1}", "[01]", "[1.]", "[.5]", "[+1]",
                          "[1e]", "[-]", "[NaN]", "[Infinity]", "[tru]", "[nulll]", "{} {}", "{\"a\" 1}", "[1 2]",
                          "// c\n{}", "[1e999]", "[\"a\"\"b\"]", "{\"a\":}", "[,1]"}) {
    INFO(bad);
    CHECK(parse_ec(bad) == json::error::syntax);
  }
  for (const char* bad : {"[\"\x01\"]", "[\"tab\there\"]", "[\"\\x41\"]", "[\"\\u12\"]", "[\"\\ud800\"]",
                          "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]", "[\"\xff\"]", "[\"\xc0\x80\"]", "[\"\xed\xa0\x80\"]",
                          "[\"\xf4\x90\x80\x80\"]", "[\"\xe2\x82\"]", "[\"\\\"]"}) {
    INFO(bad);
    auto ec = parse_ec(bad);
    CHECK((ec == json::error::bad_encoding || ec == json::error::syntax));
    CHECK(ec);
  }
  // every malformed text is refused, whatever the code
  for (const char* bad : {"{\"a\"}", "01", "1.", "-", "tru", "\"a", "{} x", "\"\\x\"", "\"\xff\"", "\"\\ud800\""}) {
    INFO(bad);
    CHECK(parse_ec(bad));
  }
  CHECK(parse_ec(R"({"a":1,"b":2,"a":3})") == json::error::duplicate_key);
  CHECK(parse_ec(R"({"a":{"x":1,"x":1}})") == json::error::duplicate_key);
  CHECK(parse_ec(R"([{"a":1},{"a":1}])") == std::error_code{});  // different objects
  CHECK(parse_ec("[\"\xe2\x82\xac \xf0\x9f\x98\x80\"]") == std::error_code{});
}

TEST_CASE("json: duplicate names in large objects, wherever they are", "[core][json]") {
  const json::limits big{.max_bytes = 1 << 20, .max_depth = 16, .max_nodes = 1 << 14};
  auto object = [](std::size_t n, std::size_t dup_of, std::size_t dup_at) {
    std::string s = "{";
    for (std::size_t i = 0; i < n; ++i) {
      if (i) s += ',';
      s += "\"k" + std::to_string(i == dup_at ? dup_of : i) + "\":" + std::to_string(i);
    }
    return s + "}";
  };
  const std::size_t none = static_cast<std::size_t>(-1);
  CHECK(json::parse(object(5000, 0, none), big));
  using sz = std::size_t;
  for (sz n : {sz{8}, sz{9}, sz{10}, sz{5000}})
    for (auto [of, at] : {std::pair{sz{0}, n - 1}, std::pair{n - 2, n - 1}, std::pair{sz{0}, sz{1}}, std::pair{sz{3}, sz{7}}}) {
      CAPTURE(n, of, at);
      CHECK(json::parse(object(n, of, at), big).error() == json::error::duplicate_key);
    }
  // each object on its own: equal names in two large sibling objects are fine
  CHECK(json::parse("[" + object(20, 0, none) + "," + object(20, 0, none) + "]", big));
  CHECK(json::parse("{\"a\":" + object(20, 0, none) + ",\"b\":" + object(20, 3, 19) + "}", big).error() ==
        json::error::duplicate_key);
}

TEST_CASE("json: limits on size, depth and nodes", "[core][json]") {
  json::limits lim;
  lim.max_depth = 3;
  CHECK(parse_ec("[[[]]]", lim) == std::error_code{});
  CHECK(parse_ec("[[[[]]]]", lim) == json::error::too_deep);
  CHECK(parse_ec(R"({"a":{"b":{"c":{}}}})", lim) == json::error::too_deep);
  CHECK(parse_ec(std::string(100000, '['), {}) == json::error::too_large);
  CHECK(parse_ec(std::string(5000, '[') + std::string(5000, ']'), {}) == json::error::too_deep);
  json::limits small;
  small.max_bytes = 8;
  CHECK(parse_ec("[1,2,3,4]", small) == json::error::too_large);
  json::limits few;
  few.max_nodes = 3;
  CHECK(parse_ec("[1,2]", few) == std::error_code{});
  CHECK(parse_ec("[1,2,3]", few) == json::error::too_large);
}

TEST_CASE("json: integers keep their exact text", "[core][json]") {
  auto doc = json::parse(R"([1, -2.5e3, 0, -0, 9223372036854775807, 9223372036854775808, 1e2, 1.0, 765, "7"])");
  REQUIRE(doc);
  std::vector<json::value> v(doc->root().children().begin(), doc->root().children().end());
  REQUIRE(v.size() == 10);
  CHECK(v[0].as_int() == 1);
  CHECK(v[1].as_string() == "-2.5e3");
  CHECK_FALSE(v[1].as_int());
  CHECK(v[2].as_int() == 0);
  CHECK(v[3].as_int() == 0);
  CHECK(v[4].as_int() == INT64_MAX);
  CHECK_FALSE(v[5].as_int());  // out of range
  CHECK_FALSE(v[6].as_int());  // exponent
  CHECK_FALSE(v[7].as_int());  // fraction
  CHECK(v[8].as_int(INT32_MIN, INT32_MAX) == 765);
  CHECK_FALSE(v[8].as_int(0, 100));
  CHECK_FALSE(v[9].as_int());  // a string is not a number
}

TEST_CASE("json: string escaping", "[core][json]") {
  auto esc = [](std::string_view s) {
    std::string out;
    json::append_string(out, s);
    return out;
  };
  CHECK(esc("plain") == R"("plain")");
  CHECK(esc("a\"b\\c") == R"("a\"b\\c")");
  CHECK(esc("l1\nl2\r\t\b\f") == R"("l1\nl2\r\t\b\f")");
  CHECK(esc("\x01\x1f"s) == R"("\u0001\u001f")");
  CHECK(esc("nul\0"s) == R"("nul\u0000")");
  CHECK(esc("</script>") == R"("</script>")");
  CHECK(esc("\xc2\xa7" "6gold \xf0\x9f\x98\x80") == "\"\xc2\xa7" "6gold \xf0\x9f\x98\x80\"");
  CHECK(esc("bad\xff") == "\"bad\xef\xbf\xbd\"");  // invalid UTF-8 -> U+FFFD
  // whatever goes in, the result is one valid JSON string holding the sanitized text
  const std::string nasty = "q\"\\\x00\x1f\x7f\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82"s;
  auto back = json::parse(esc(nasty));
  REQUIRE(back);
  CHECK(back->root().as_string() == rproxy::utf8::sanitize(nasty));
}

TEST_CASE("json: dump is compact and parses back to the same text", "[core][json]") {
  auto doc = json::parse(R"( {"a": [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00\/\u0001"], "b": {}, "c": []} )");
  REQUIRE(doc);
  const std::string text = json::dump(doc->root());
  CHECK(text == "{\"a\":[1,-2.5e3,true,false,null,\"x\xc3\xa9\xf0\x9f\x98\x80/\\u0001\"],\"b\":{},\"c\":[]}");
  auto again = json::parse(text);
  REQUIRE(again);
  CHECK(json::dump(again->root()) == text);
  CHECK(json::dump(doc->root().find("a")->children().begin().operator*()) == "1");
  CHECK(json::dump(json::parse(R"("\ud83d\ude00")")->root()) == "\"\xf0\x9f\x98\x80\"");
}

TEST_CASE("json: depth limit is configurable", "[core][json]") {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  json::limits lim;
  lim.max_depth = 64;
  CHECK(parse_ec(deep, lim) == json::error::too_deep);
  lim.max_depth = 128;
  CHECK(parse_ec(deep, lim) == std::error_code{});
  lim.max_depth = 100;
  CHECK(parse_ec(deep, lim) == std::error_code{});
  lim.max_depth = 99;
  CHECK(parse_ec(deep, lim) == json::error::too_deep);
}

TEST_CASE("json: errors carry the rproxy.json category", "[core][json]") {
  std::error_code ec = json::error::duplicate_key;
  CHECK(std::string(ec.category().name()) == "rproxy.json");
  CHECK(ec.message() == "JSON object has a duplicate member name");
  CHECK(ec == rproxy::condition::downstream);
}
