#include <rproxy/codec/mc/versions.hpp>

#include <catch2/catch.hpp>

namespace mc = rproxy::codec::mc;

TEST_CASE("protocol numbers of the versions the proxy is tested with", "[mc][versions]") {
  CHECK(mc::protocol_of("1.7.2") == 4);
  CHECK(mc::protocol_of("1.7.10") == 5);
  CHECK(mc::protocol_of("1.8.8") == 47);
  CHECK(mc::protocol_of("1.12.2") == 340);
  CHECK(mc::protocol_of("1.16.5") == 754);
  CHECK(mc::protocol_of("1.19") == 759);
  CHECK(mc::protocol_of("1.19.2") == 760);
  CHECK(mc::protocol_of("1.20.4") == 765);
  CHECK(mc::protocol_of("1.21.4") == 769);
  CHECK(mc::protocol_of("1.21.11") == 774);
  CHECK_FALSE(mc::protocol_of("1.6.4"));
  CHECK(mc::version_name(765) == "1.20.4");
  CHECK(mc::version_name(47) == "1.8.9");
  CHECK(mc::version_name(3).empty());
  CHECK(mc::version_range(765) == "1.20.3-1.20.4");
  CHECK(mc::version_range(769) == "1.21.4");
  CHECK(mc::version_range(47) == "1.8-1.8.9");
  CHECK(mc::version_range(1).empty());
  CHECK(mc::is_known_protocol(772));
  CHECK_FALSE(mc::is_known_protocol(771 + 1000));
  STATIC_REQUIRE(mc::protocol_of("1.20.2") == mc::protocol::v1_20_2);
  STATIC_REQUIRE(mc::version_name(mc::protocol::newest) == "1.21.11");
}

TEST_CASE("the table is ordered and starts at 1.7.2", "[mc][versions]") {
  const auto all = mc::all_releases();
  REQUIRE(!all.empty());
  CHECK(all.front().name == "1.7.2");
  CHECK(all.front().protocol == mc::protocol::oldest);
  CHECK(all.back().protocol == mc::protocol::newest);
  for (std::size_t i = 1; i < all.size(); ++i) {
    CAPTURE(all[i].name);
    CHECK(all[i].protocol >= all[i - 1].protocol);
    CHECK(mc::protocol_of(all[i].name) == all[i].protocol);
  }
}

TEST_CASE("packet shapes by version", "[mc][versions]") {
  using s = mc::login_start_shape;
  CHECK(mc::login_start_shape_of(4) == s::name);
  CHECK(mc::login_start_shape_of(47) == s::name);
  CHECK(mc::login_start_shape_of(340) == s::name);
  CHECK(mc::login_start_shape_of(758) == s::name);
  CHECK(mc::login_start_shape_of(759) == s::name_sig);
  CHECK(mc::login_start_shape_of(760) == s::name_sig_optional_uuid);
  CHECK(mc::login_start_shape_of(761) == s::name_optional_uuid);
  CHECK(mc::login_start_shape_of(763) == s::name_optional_uuid);
  CHECK(mc::login_start_shape_of(764) == s::name_uuid);
  CHECK(mc::login_start_shape_of(769) == s::name_uuid);
  CHECK_FALSE(mc::supports_compression(5));
  CHECK(mc::supports_compression(47));
  CHECK(mc::has_configuration_state(764));
  CHECK_FALSE(mc::has_configuration_state(763));
  CHECK(mc::status_has_secure_chat(760));
  CHECK_FALSE(mc::status_has_secure_chat(759));
}
