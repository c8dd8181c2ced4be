// rproxy/rooms/rooms_block.hpp: the rooms block read from YAML (defaults, values, errors at their
// line), as an app that lists it gets it.
#include <catch2/catch.hpp>

#include <rproxy/rooms/rooms_block.hpp>

#include <optional>
#include <string>

#include <rproxy/config/decode.hpp>

namespace wsc {
struct app_config {
  rproxy::rooms::rooms_block rooms{};
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&app_config::rooms>("rooms"));
  }
};
}  // namespace wsc

TEST_CASE("rooms block: defaults, values and errors", "[rooms]") {
  namespace cfg = rproxy::config;
  auto d = cfg::load_string<wsc::app_config>("rooms: {}\n", "ws.yaml");
  REQUIRE(d);
  CHECK(d->rooms.history == 100);
  CHECK(d->rooms.password.iterations == 100000);

  auto v = cfg::load_string<wsc::app_config>(
      "rooms:\n  max_members: 50\n  history: 20\n  empty_room_ttl: 10m\n  password: { min_bytes: 12, iterations: 5000 }\n",
      "ws.yaml");
  REQUIRE(v);
  CHECK(v->rooms.max_members == 50);
  CHECK(v->rooms.history == 20);
  CHECK(v->rooms.empty_room_ttl == std::chrono::seconds(600));
  CHECK(v->rooms.password.min_bytes == 12);
  CHECK(v->rooms.password.iterations == 5000);

  auto bad = cfg::load_string<wsc::app_config>("rooms:\n  max_members: 0\n  password: { iterations: 0 }\n  colour: red\n",
                                               "ws.yaml");
  REQUIRE_FALSE(bad);
  std::string all;
  for (const auto& e : bad.error()) all += e.to_string() + "\n";
  INFO(all);
  CHECK(all.find("colour") != std::string::npos);
  CHECK(all.find("ws.yaml:4") != std::string::npos);
}

TEST_CASE("rooms block: cross-field checks", "[rooms]") {
  namespace cfg = rproxy::config;
  auto bad = cfg::load_string<wsc::app_config>(
      "rooms:\n  max_members: 0\n  max_name_bytes: 5000\n  password: { min_bytes: 10, max_bytes: 5 }\n", "ws.yaml");
  REQUIRE_FALSE(bad);
  std::string all;
  for (const auto& e : bad.error()) all += e.to_string() + "\n";
  INFO(all);
  CHECK(all.find("ws.yaml:2:16: must be at least 1") != std::string::npos);            // max_members
  CHECK(all.find("ws.yaml:3:19: must be between 1 and 1024") != std::string::npos);   // max_name_bytes
  CHECK(all.find("ws.yaml:4:41: must be between min_bytes") != std::string::npos);    // max_bytes
}
