// rproxy/rooms/protocol.hpp: strict parsing of requests, hostile input (deep or wide JSON, huge
// strings, bad UTF-8, controls, bidi overrides, HTML), the HTML-safe writer, error replies and
// the operation names a rate limiter counts.
#include "room_fixture.hpp"

#include <string>

#include <rproxy/middleware/request_view.hpp>

namespace {
using namespace ws_test;
using rproxy::rooms::errc;

std::optional<errc> parse_error(std::string_view text, rproxy::rooms::request* out = nullptr) {
  const auto cfg = small_config();
  rproxy::rooms::request r;
  auto f = rproxy::rooms::parse_request(text, cfg, r);
  if (out) *out = r;
  if (!f) return std::nullopt;
  CHECK_FALSE(f->text.empty());
  return f->code;
}
}  // namespace

TEST_CASE("requests parse into typed fields", "[rooms]") {
  rproxy::rooms::request r;
  REQUIRE_FALSE(parse_error(R"({"op":"create","id":"x","room":"lobby","private":true,"password":"abcdefgh","max_members":4})", &r));
  CHECK(r.kind == rproxy::rooms::op::create);
  CHECK(r.id_json == R"("x")");
  CHECK(r.room == "lobby");
  CHECK(r.is_private);
  CHECK(r.password == "abcdefgh");
  CHECK(r.max_members == 4u);
  REQUIRE_FALSE(parse_error(R"({"op":"history","room":"r","since":17,"id":-3})", &r));
  CHECK(r.since == 17u);
  CHECK(r.id_json == "-3");
  REQUIRE_FALSE(parse_error(R"({"op":"set_role","room":"r","user":"bob","role":"moderator"})", &r));
  CHECK(r.new_role == rproxy::rooms::role::moderator);
  REQUIRE_FALSE(parse_error(R"( {"op":"list"} )", &r));
  CHECK(r.kind == rproxy::rooms::op::list);
}

TEST_CASE("operation() names what the rate limiter counts", "[rooms]") {
  STATIC_REQUIRE(rproxy::middleware::has_operation<rproxy::rooms::request>);
  rproxy::rooms::request r;
  (void)parse_error(R"({"op":"private_message","user":"b","text":"x"})", &r);
  CHECK(rproxy::middleware::operation_of(r) == "private_message");
  (void)parse_error(R"({"op":"join","room":"a"})", &r);
  CHECK(r.operation() == "join");
  (void)parse_error(R"({"op":"message","room":"a","text":"x"})", &r);
  CHECK(r.operation() == "message");
  (void)parse_error(R"(not json)", &r);
  CHECK(r.operation() == "invalid");
}

TEST_CASE("malformed, unknown and mistyped requests are refused with a code", "[rooms]") {
  CHECK(parse_error("") == errc::bad_request);
  CHECK(parse_error("[]") == errc::bad_request);
  CHECK(parse_error(R"("join")") == errc::bad_request);
  CHECK(parse_error(R"({"room":"a"})") == errc::bad_request);
  CHECK(parse_error(R"({"op":5})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"fly"})") == errc::unknown_op);
  CHECK(parse_error(R"({"op":"join"})") == errc::bad_request);                       // room missing
  CHECK(parse_error(R"({"op":"join","room":"a","text":"x"})") == errc::bad_request);  // not taken by join
  CHECK(parse_error(R"({"op":"join","room":7})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"join","room":"a","room":"b"})") == errc::bad_request);  // duplicate member
  CHECK(parse_error(R"({"op":"create","room":"a","private":"yes"})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"create","room":"a","max_members":0})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"create","room":"a","max_members":1.5})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"history","room":"a","since":-1})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"ban","room":"a","user":"b","seconds":0})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"set_role","room":"a","user":"b","role":"god"})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"list","id":{"a":1}})") == errc::too_large);  // nested: depth 1 only
  CHECK(parse_error(R"({"op":"list","id":1.5})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"list","id":9007199254740992})") == errc::bad_request);  // over 2^53-1
  CHECK(parse_error(R"({"op":"list","id":")" + std::string(65, 'x') + R"("})") == errc::bad_request);
  CHECK(parse_error(R"({"op":"list"} x)") == errc::bad_request);
}

TEST_CASE("hostile sizes: deep, wide and long requests are bounded", "[rooms]") {
  CHECK(parse_error(std::string(10000, '[') + std::string(10000, ']')) == errc::too_large);
  std::string wide = R"({"op":"list")";
  for (int i = 0; i < 40; ++i) wide += joined({R"(,"k)", num(i), R"(":1)"});
  wide += "}";
  CHECK(parse_error(wide) == errc::too_large);
  CHECK(parse_error(R"({"op":"message","room":"a","text":")" + std::string(2000, 'x') + R"("})") ==
        errc::too_large);  // over max_request_bytes (1024)
  CHECK(parse_error(R"({"op":"message","room":"a","text":")" + std::string(65, 'x') + R"("})") ==
        errc::too_long);  // over max_message_bytes (64)
  CHECK_FALSE(parse_error(R"({"op":"message","room":"a","text":")" + std::string(64, 'x') + R"("})"));
  CHECK(parse_error(R"({"op":"join","room":")" + std::string(17, 'r') + R"("})") == errc::too_long);
  CHECK_FALSE(parse_error(R"({"op":"join","room":")" + std::string(16, 'r') + R"("})"));
  CHECK(parse_error(R"({"op":"join","room":"a","password":")" + std::string(300, 'p') + R"("})") == errc::too_long);
}

TEST_CASE("text: bad UTF-8, controls and bidi overrides refused; HTML kept", "[rooms]") {
  const auto msg = [](std::string text) { return R"({"op":"message","room":"a","text":")" + text + R"("})"; };
  CHECK(parse_error(msg("a\xff")) == errc::bad_request);        // the JSON reader refuses bad UTF-8
  CHECK(parse_error(msg("\xc0\xaf")) == errc::bad_request);     // overlong
  CHECK(parse_error(msg("\\ud800")) == errc::bad_request);      // lone surrogate
  CHECK(parse_error(msg("a\\u0000b")) == errc::invalid_text);   // NUL via an escape
  CHECK(parse_error(msg("a\\u001bb")) == errc::invalid_text);   // ESC
  CHECK(parse_error(msg("a\\u007fb")) == errc::invalid_text);   // DEL
  CHECK(parse_error(msg("a\\u0085b")) == errc::invalid_text);   // C1 (NEL)
  CHECK(parse_error(msg("a\\u202eb")) == errc::invalid_text);   // right-to-left override
  CHECK(parse_error(msg("a\\u2067b")) == errc::invalid_text);   // right-to-left isolate
  CHECK(parse_error(msg("")) == errc::invalid_text);
  CHECK_FALSE(parse_error(msg("<img src=x onerror=alert(1)> & \\\"q\\\" 'a'")));
  CHECK_FALSE(parse_error(msg("multi\\nline\\ttab")));
  CHECK_FALSE(parse_error(msg("h\xc3\xa9llo \xf0\x9f\x98\x80 \xe2\x80\x8d")));  // é, emoji, ZWJ
}

TEST_CASE("names: no HTML-special, control or invisible characters", "[rooms]") {
  const auto join = [](std::string name) { return R"({"op":"join","room":")" + name + R"("})"; };
  CHECK(parse_error(join("")) == errc::invalid_name);
  CHECK(parse_error(join("<b>")) == errc::invalid_name);
  CHECK(parse_error(join("a&b")) == errc::invalid_name);
  CHECK(parse_error(join("a'b")) == errc::invalid_name);
  CHECK(parse_error(join("a\\\"b")) == errc::invalid_name);
  CHECK(parse_error(join(" a")) == errc::invalid_name);
  CHECK(parse_error(join("a ")) == errc::invalid_name);
  CHECK(parse_error(join("a\\tb")) == errc::invalid_name);
  CHECK(parse_error(join("a\\u200bb")) == errc::invalid_name);  // zero-width space
  CHECK(parse_error(join("a\\ufeffb")) == errc::invalid_name);
  CHECK(parse_error(join("a\\u202eb")) == errc::invalid_name);
  CHECK_FALSE(parse_error(join("caf\xc3\xa9 lounge #1")));
  // the user name from the JWT gets the same check
  fixture f;
  CHECK(f.code(1, "<script>", R"({"op":"list"})") == "invalid_name");
  CHECK(f.code(1, std::string("a\0b", 3), R"({"op":"list"})") == "invalid_name");
}

TEST_CASE("error replies echo the id and escape what they quote", "[rooms]") {
  fixture f;
  auto out = f.send(1, "alice", R"({"op":"join","id":"<x>","room":"a","<img>":1})");
  CHECK(get(out.reply, "id") == "<x>");
  CHECK(get(out.reply, "code") == "bad_request");
  CHECK(get(out.reply, "op") == "join");
  CHECK(out.reply.find("\\u003cimg\\u003e") != std::string::npos);
  auto no_id = f.send(1, "alice", "{");
  CHECK_FALSE(get(no_id.reply, "id"));
  CHECK(get(no_id.reply, "op") == "invalid");
}

TEST_CASE("append_html_safe_string: JSON escaping plus < > & '", "[rooms]") {
  std::string out;
  rproxy::rooms::append_html_safe_string(out, "</script><!-- & 'x' \"y\" \\ \n \x01");
  CHECK(out == R"("\u003c/script\u003e\u003c!-- \u0026 \u0027x\u0027 \"y\" \\ \n \u0001")");
  auto doc = rproxy::json::parse(out);
  REQUIRE(doc);
  CHECK(doc->root().as_string() == "</script><!-- & 'x' \"y\" \\ \n \x01");
  out.clear();
  rproxy::rooms::append_html_safe_string(out, "plain");
  CHECK(out == R"("plain")");
}

TEST_CASE("append_html_safe_string equals json::append_string with < > & ' escaped, on any bytes", "[rooms]") {
  // The oracle: the project's JSON writer, then each of the four bytes replaced (none of them
  // occurs in that writer's escapes).
  const auto oracle = [](std::string_view s) {
    std::string j;
    rproxy::json::append_string(j, s);
    std::string out;
    for (char c : j) {
      if (c == '<') out += "\\u003c";
      else if (c == '>') out += "\\u003e";
      else if (c == '&') out += "\\u0026";
      else if (c == '\'') out += "\\u0027";
      else out.push_back(c);
    }
    return out;
  };
  std::uint64_t rng = 88172645463325252ull;
  for (int n = 0; n < 20000; ++n) {
    std::string s;
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    const std::size_t len = rng % 24;
    for (std::size_t k = 0; k < len; ++k) {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      // mostly interesting bytes: ASCII specials, controls, UTF-8 lead and continuation bytes
      static constexpr unsigned char pool[] = {'a', '<', '>', '&', '\'', '"', '\\', '\n', 0x01, 0x7F, 0xC3, 0xA9,
                                               0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0xFF, 0xC0, 0xED, 0xA0};
      s.push_back(static_cast<char>(rng & 1 ? pool[(rng >> 8) % sizeof pool] : (rng >> 16) & 0xFF));
    }
    std::string got;
    rproxy::rooms::append_html_safe_string(got, s);
    REQUIRE(got == oracle(s));
  }
}
