// Tests for rproxy/flow/config.hpp: the relay block's bounds are checked where the config
// declares them (file, line, what is wrong), not met at the first connection.
#include <rproxy/flow/config.hpp>

#include <rproxy/config/decode.hpp>

#include <catch2/catch.hpp>

TEST_CASE("relay.buffer_size: 1KiB to 1GiB; outside, an error at the key's line", "[flow][config]") {
  using rproxy::flow::relay_config;
  auto ok = rproxy::config::load_string<relay_config>("buffer_size: 16KiB\nsplice: false\n", "app.yaml");
  REQUIRE(ok);
  CHECK((*ok).buffer_size.bytes == 16 * 1024);
  for (const char* text : {"splice: true\nbuffer_size: 4GiB\n", "splice: true\nbuffer_size: 512\n"}) {
    auto r = rproxy::config::load_string<relay_config>(text, "app.yaml");
    REQUIRE_FALSE(r);
    REQUIRE(r.error().size() == 1);
    CHECK_THAT(r.error()[0].to_string(), Catch::StartsWith("app.yaml:2:") && Catch::Contains("must be between 1KiB and 1GiB"));
  }
}
