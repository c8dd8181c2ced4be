#include <rproxy/codec/mc/frame.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/codec/mc/text_component.hpp>

#include <catch2/catch.hpp>

#include <initializer_list>
#include <string>

namespace mc = rproxy::codec::mc;
using namespace std::string_literals;

namespace {
mc::bytes b(std::initializer_list<int> v) {
  mc::bytes out;
  for (int x : v) out.push_back(static_cast<std::byte>(x));
  return out;
}
}  // namespace

TEST_CASE("text components", "[mc][status][json]") {
  CHECK(mc::text_component("Hello") == R"({"text":"Hello"})");
  CHECK(mc::text_component("say \"hi\"\nbye", "red") == R"({"text":"say \"hi\"\nbye","color":"red"})");
  CHECK(mc::plain_text(R"({"text":"A ","extra":[{"text":"B","bold":true},"C",{"translate":"k"}]})") == "A BCk");
  CHECK(mc::plain_text(R"("just a string")") == "just a string");
  CHECK(mc::plain_text("not json") == "not json");
  CHECK(mc::plain_text(R"({"text":"a","text":"b"})") == R"({"text":"a","text":"b"})");  // strict: not JSON
}

TEST_CASE("status response JSON from a struct", "[mc][status]") {
  mc::status_info s;
  s.version_name = "1.20.4";
  s.protocol = 765;
  s.players = mc::status_players{20, 0, {}};
  s.description = mc::text_component("A Minecraft Server");
  CHECK(mc::to_json(s) ==
        R"({"version":{"name":"1.20.4","protocol":765},"players":{"max":20,"online":0},)"
        R"("description":{"text":"A Minecraft Server"}})");

  s.players->online = 2;
  s.players->sample = {{"thinkofdeath", "4566e69f-c907-48ee-8d71-d7ba5aa00d20"}, {"Quote\"d", "00000000-0000-0000-0000-000000000000"}};
  s.favicon = mc::make_favicon(b({0x89, 'P', 'N', 'G'}));
  s.enforces_secure_chat = true;
  s.extra = {{"forgeData", R"({"channels":[],"mods":[],"fmlNetworkVersion":3})"}, {"broken", "{"}};
  CHECK(mc::to_json(s) ==
        R"({"version":{"name":"1.20.4","protocol":765},"players":{"max":20,"online":2,"sample":[)"
        R"({"name":"thinkofdeath","id":"4566e69f-c907-48ee-8d71-d7ba5aa00d20"},)"
        R"({"name":"Quote\"d","id":"00000000-0000-0000-0000-000000000000"}]},)"
        R"("description":{"text":"A Minecraft Server"},"favicon":"data:image/png;base64,iVBORw==",)"
        R"("enforcesSecureChat":true,"forgeData":{"channels":[],"mods":[],"fmlNetworkVersion":3}})");

  // description that is not JSON is sent as plain text; hidden player count
  mc::status_info t;
  t.version_name = "rproxy";
  t.protocol = -1;
  t.players.reset();
  t.description = "offline \"now\"";
  CHECK(mc::to_json(t) ==
        R"({"version":{"name":"rproxy","protocol":-1},"description":{"text":"offline \"now\""}})");
}

TEST_CASE("favicon base64 padding", "[mc][status]") {
  CHECK(mc::make_favicon({}) == "data:image/png;base64,");
  CHECK(mc::make_favicon(b({'f'})) == "data:image/png;base64,Zg==");
  CHECK(mc::make_favicon(b({'f', 'o'})) == "data:image/png;base64,Zm8=");
  CHECK(mc::make_favicon(b({'f', 'o', 'o'})) == "data:image/png;base64,Zm9v");
  CHECK(mc::make_favicon(b({'f', 'o', 'o', 'b', 'a', 'r'})) == "data:image/png;base64,Zm9vYmFy");
}

TEST_CASE("status JSON from a backend is read back", "[mc][status]") {
  // What a vanilla 1.20.4 server sends (Gson, with a legacy string description variant too).
  auto s = mc::parse_status_json(
      R"({"description":{"extra":[{"color":"gold","text":"Hi"}],"text":""},"players":{"max":20,"online":1,)"
      R"("sample":[{"id":"069a79f4-44e9-4726-a5be-fca90e38aaf5","name":"Notch"}]},)"
      R"("version":{"name":"Paper 1.20.4","protocol":765},"favicon":"data:image/png;base64,AA==",)"
      R"("enforcesSecureChat":false,"preventsChatReports":true})");
  REQUIRE(s);
  CHECK(s->version_name == "Paper 1.20.4");
  CHECK(s->protocol == 765);
  REQUIRE(s->players);
  CHECK(s->players->max == 20);
  CHECK(s->players->online == 1);
  REQUIRE(s->players->sample.size() == 1);
  CHECK(s->players->sample[0].name == "Notch");
  CHECK(mc::plain_text(s->description) == "Hi");
  CHECK(s->favicon == "data:image/png;base64,AA==");
  CHECK(s->enforces_secure_chat == false);
  REQUIRE(s->extra.size() == 1);
  CHECK(s->extra[0] == std::pair<std::string, std::string>{"preventsChatReports", "true"});

  auto old = mc::parse_status_json(R"({"description":"A Minecraft Server","players":{"max":20,"online":0},"version":{"name":"1.8.8","protocol":47}})");
  REQUIRE(old);
  CHECK(old->description == R"("A Minecraft Server")");
  CHECK(mc::plain_text(old->description) == "A Minecraft Server");

  CHECK_FALSE(mc::parse_status_json(R"({"players":{"max":1,"online":0}})"));  // no version
  CHECK_FALSE(mc::parse_status_json(R"({"version":{"name":"x","protocol":"765"}})"));
  CHECK_FALSE(mc::parse_status_json(R"({"version":{"name":"x","protocol":1},"players":{"max":1}})"));
  CHECK_FALSE(mc::parse_status_json("[]"));
  // the reader is strict (core/json.hpp): every refusal is bad_json
  CHECK(mc::parse_status_json(R"({"version":{"name":"x","protocol":1}})"));
  for (const auto& bad : {R"({"version":{"name":"x","protocol":1},"version":{"name":"y","protocol":2}})"s,
                          R"({"version":{"name":"\ud800","protocol":1}})"s,
                          "{\"version\":{\"name\":\"\xff\",\"protocol\":1}}"s,
                          R"({"version":{"name":"x","protocol":1},})"s,
                          R"({"version":{"name":"x","protocol":2147483648}})"s,
                          R"({"version":{"name":"x","protocol":1},"x":)"s + std::string(65, '[') + std::string(65, ']') + "}"}) {
    CAPTURE(bad);
    CHECK(mc::parse_status_json(bad).error() == mc::error::bad_json);
  }
}

TEST_CASE("status packets", "[mc][status]") {
  mc::bytes out;
  mc::append_status_request(out);
  CHECK(out == b({0x01, 0x00}));
  CHECK(mc::parse_status_request(b({0x00})));
  CHECK(mc::parse_status_request(b({0x00, 0x00})).error() == mc::error::trailing_bytes);
  CHECK(mc::parse_status_request(b({0x01})).error() == mc::error::unexpected_packet_id);

  out.clear();
  mc::append_ping(out, 42);
  CHECK(out == b({0x09, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x2a}));
  CHECK(*mc::parse_ping(mc::byte_view(out).subspan(1)) == 42);
  out.clear();
  mc::append_pong(out, -2);
  CHECK(out == b({0x09, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}));
  CHECK(*mc::parse_pong(mc::byte_view(out).subspan(1)) == -2);
  CHECK(mc::parse_ping(b({0x01, 0, 0, 0})).error() == mc::error::truncated);
  CHECK(mc::parse_ping(b({0x00, 0, 0, 0, 0, 0, 0, 0, 0})).error() == mc::error::unexpected_packet_id);

  out.clear();
  mc::append_status_response(out, R"({"a":1})");
  CHECK(out == b({0x09, 0x00, 0x07, '{', '"', 'a', '"', ':', '1', '}'}));
  CHECK(*mc::parse_status_response(mc::byte_view(out).subspan(1)) == R"({"a":1})");

  // The response string is limited to 32767 chars.
  std::string big(32768, 'x');
  out.clear();
  mc::append_status_response(out, big);
  auto f = mc::decode_frame(out);
  REQUIRE(f);
  CHECK(mc::parse_status_response(f->payload).error() == mc::error::string_too_long);
}
