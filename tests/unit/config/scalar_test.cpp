// Tests for rproxy/config/scalar.hpp (and the endpoint, duration, byte_size and suggest parts it
// builds on): each scalar reads its documented forms, refuses the rest, and formats back.
#include <catch2/catch.hpp>

#include <rproxy/config/scalar.hpp>

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace st {
enum class mode { passthrough, intercept };
constexpr auto config_enum_names(mode) {
  using rproxy::config::enum_name;
  return std::array{enum_name{"passthrough", mode::passthrough}, enum_name{"intercept", mode::intercept}};
}
enum class unnamed { a, b };
}  // namespace st

namespace {
using namespace std::chrono_literals;
namespace cfg = rproxy::config;

template <class T>
T ok(std::string_view text) {
  auto r = cfg::scalar_traits<T>::parse(text);
  INFO(text << ": " << (r ? std::string() : r.error().message));
  REQUIRE(r);
  return *r;
}

template <class T>
cfg::value_error bad(std::string_view text) {
  auto r = cfg::scalar_traits<T>::parse(text);
  INFO(text);
  REQUIRE_FALSE(r);
  return r.error();
}

// format() writes YAML text that, once YAML has unquoted it, parse() reads back to the value.
template <class T>
void round_trips(const T& v) {
  const YAML::Node n = YAML::Load(cfg::scalar_traits<T>::format(v));
  REQUIRE(n.IsScalar());
  CHECK(ok<T>(n.Scalar()) == v);
}
}  // namespace

TEST_CASE("scalar: which types are scalars", "[config]") {
  STATIC_REQUIRE(cfg::scalar<bool>);
  STATIC_REQUIRE(cfg::scalar<std::uint16_t>);
  STATIC_REQUIRE(cfg::scalar<long long>);
  STATIC_REQUIRE(cfg::scalar<double>);
  STATIC_REQUIRE(cfg::scalar<std::string>);
  STATIC_REQUIRE(cfg::scalar<std::chrono::milliseconds>);
  STATIC_REQUIRE(cfg::scalar<cfg::byte_size>);
  STATIC_REQUIRE(cfg::scalar<cfg::endpoint>);
  STATIC_REQUIRE(cfg::scalar<st::mode>);
  STATIC_REQUIRE_FALSE(cfg::scalar<st::unnamed>);  // no names declared
  STATIC_REQUIRE_FALSE(cfg::scalar<std::vector<int>>);
  STATIC_REQUIRE_FALSE(cfg::scalar<char>);
}

TEST_CASE("scalar: integers are range-checked", "[config]") {
  CHECK(ok<std::uint16_t>("65535") == 65535);
  CHECK(ok<std::uint16_t>("0x1F") == 31);
  CHECK(ok<std::uint16_t>("+7") == 7);
  CHECK(ok<std::uint16_t>("-0") == 0);
  CHECK(ok<std::int8_t>("-128") == -128);
  CHECK(ok<std::int64_t>("-9223372036854775808") == INT64_MIN);
  CHECK(ok<std::int64_t>("9223372036854775807") == INT64_MAX);
  CHECK(bad<std::uint16_t>("65536").message == "value 65536 out of range for uint16 (0..65535)");
  CHECK(bad<std::uint16_t>("65536").code == cfg::error::out_of_range);
  CHECK(bad<std::int8_t>("128").message == "value 128 out of range for int8 (-128..127)");
  CHECK(bad<std::int64_t>("9223372036854775808").code == cfg::error::out_of_range);
  CHECK(bad<std::uint32_t>("-5").message == "value -5 out of range for uint32 (0..4294967295)");
  CHECK(bad<int>("12abc").message == "expected int32, got '12abc'");
  CHECK(bad<int>("1.5").code == cfg::error::wrong_type);
  CHECK(bad<int>("").code == cfg::error::wrong_type);
  CHECK(bad<int>("--1").code == cfg::error::wrong_type);
  CHECK(bad<int>("0x").code == cfg::error::wrong_type);
  round_trips<std::int32_t>(-42);
  round_trips<std::uint64_t>(UINT64_MAX);
  CHECK(cfg::scalar_traits<unsigned char>::type_name() == "uint8");
}

TEST_CASE("scalar: bool, number, string", "[config]") {
  for (auto t : {"true", "True", "yes", "on", "ON"}) CHECK(ok<bool>(t));
  for (auto t : {"false", "FALSE", "no", "off", "Off"}) CHECK_FALSE(ok<bool>(t));
  CHECK(bad<bool>("1").message == "expected bool (true or false), got '1'");

  CHECK(ok<double>("2.5") == 2.5);
  CHECK(ok<double>("-1e3") == -1000.0);
  CHECK(ok<double>("+4") == 4.0);
  CHECK(std::isinf(ok<double>(".inf")));
  CHECK(std::isnan(ok<float>(".nan")));
  CHECK(bad<double>("1,5").message == "expected number, got '1,5'");
  CHECK(bad<float>("1e39").message == "value 1e39 out of range for number");
  CHECK(bad<double>("1e999").code == cfg::error::out_of_range);
  round_trips(0.1);
  round_trips(-1e300);
  round_trips(1.0f / 3.0f);

  CHECK(ok<std::string>("any text: even this") == "any text: even this");
  CHECK(cfg::scalar_traits<std::string>::format("a \"q\"\\\n\x01") == R"("a \"q\"\\\n\x01")");
  CHECK(cfg::detail::quote_text(std::string(50, 'x')) == "'" + std::string(37, 'x') + "...'");
}

TEST_CASE("scalar: durations", "[config]") {
  using ms = std::chrono::milliseconds;
  CHECK(ok<ms>("250ms") == 250ms);
  CHECK(ok<ms>("5s") == 5000ms);
  CHECK(ok<ms>("2m") == 120000ms);
  CHECK(ok<ms>("1h") == 3600000ms);
  CHECK(ok<ms>("1d") == 86400000ms);
  CHECK(ok<ms>("1h30m") == 5400000ms);
  CHECK(ok<ms>("1m30s500ms") == 90500ms);
  CHECK(ok<ms>("1.5s") == 1500ms);
  CHECK(ok<ms>("0") == 0ms);
  CHECK(ok<std::chrono::nanoseconds>("3us") == 3000ns);
  CHECK(ok<std::chrono::seconds>("2m") == 120s);
  CHECK(ok<std::chrono::duration<double>>("250ms").count() == Approx(0.25));

  CHECK(bad<ms>("5").message ==
        "bad duration '5': expected a number with a unit (ns, us, ms, s, m, h, d), e.g. 250ms, 5s, 1h30m");
  for (auto t : {"", "s", "5 s", "-5s", "5sec", "1.s", ".5s", "5s3", "1h 30m"}) CHECK(bad<ms>(t).code == cfg::error::bad_value);
  CHECK(bad<ms>("1500us").message == "duration '1500us' is not a whole number of ms");
  CHECK(bad<std::chrono::seconds>("1.5s").message == "duration '1.5s' is not a whole number of s");
  CHECK(bad<ms>("0.5ns").message == "duration '0.5ns' is finer than a nanosecond");
  CHECK(bad<ms>("99999999999d").code == cfg::error::out_of_range);
  CHECK(bad<std::chrono::duration<std::int16_t, std::milli>>("40s").message == "duration '40s' is too large");

  CHECK(cfg::format_duration(30000ms) == "30s");
  CHECK(cfg::format_duration(90s) == "90s");
  CHECK(cfg::format_duration(std::chrono::hours(2)) == "2h");
  CHECK(cfg::format_duration(1500ms) == "1500ms");
  CHECK(cfg::format_duration(0ms) == "0");
  CHECK(cfg::format_duration(std::chrono::duration<double>(0.25)) == "250ms");
  round_trips(std::chrono::milliseconds(86400001));
  round_trips(std::chrono::minutes(90));
}

TEST_CASE("scalar: byte sizes", "[config]") {
  CHECK(ok<cfg::byte_size>("4096") == cfg::byte_size{4096});
  CHECK(ok<cfg::byte_size>("4096B") == cfg::byte_size{4096});
  CHECK(ok<cfg::byte_size>("64KiB") == cfg::byte_size::kib(64));
  CHECK(ok<cfg::byte_size>("1MiB") == cfg::byte_size::mib(1));
  CHECK(ok<cfg::byte_size>("2 GiB") == cfg::byte_size::gib(2));
  CHECK(ok<cfg::byte_size>("1TiB") == cfg::byte_size{1ull << 40});
  CHECK(ok<cfg::byte_size>("64KB") == cfg::byte_size{64000});
  CHECK(ok<cfg::byte_size>("3MB") == cfg::byte_size{3000000});
  for (auto t : {"", "KiB", "64kib", "64 ", "1.5MiB", "-1", "64KiBs"}) CHECK(bad<cfg::byte_size>(t).code == cfg::error::bad_value);
  CHECK(bad<cfg::byte_size>("20000000TiB").message == "size '20000000TiB' is too large");
  CHECK(bad<cfg::byte_size>("99999999999999999999").code == cfg::error::out_of_range);
  CHECK(cfg::format_byte_size(cfg::byte_size::kib(64)) == "64KiB");
  CHECK(cfg::format_byte_size(cfg::byte_size{1536}) == "1536");  // not a whole KiB... 1.5KiB
  CHECK(cfg::format_byte_size(cfg::byte_size{1000}) == "1000");
  CHECK(cfg::format_byte_size(cfg::byte_size{0}) == "0");
  CHECK(cfg::format_byte_size(cfg::byte_size::mib(3)) == "3MiB");
  round_trips(cfg::byte_size{123456789});
}

TEST_CASE("scalar: endpoints", "[config]") {
  CHECK(ok<cfg::endpoint>("127.0.0.1:8080") == cfg::endpoint{"127.0.0.1", 8080});
  CHECK(ok<cfg::endpoint>("[::1]:25565") == cfg::endpoint{"::1", 25565});
  CHECK(ok<cfg::endpoint>("[fe80::1%eth0]:80") == cfg::endpoint{"fe80::1%eth0", 80});
  CHECK(ok<cfg::endpoint>("lobby.example.com:25566") == cfg::endpoint{"lobby.example.com", 25566});
  CHECK(ok<cfg::endpoint>("0.0.0.0:0") == cfg::endpoint{"0.0.0.0", 0});
  CHECK(ok<cfg::endpoint>("[::]:443").is_ipv6());
  CHECK_FALSE(ok<cfg::endpoint>("h:1").is_ipv6());

  CHECK(bad<cfg::endpoint>("host").message == "bad endpoint 'host': missing port, expected host:port or [ipv6]:port");
  CHECK(bad<cfg::endpoint>(":80").message == "bad endpoint ':80': missing host (use 0.0.0.0 or [::] for every address)");
  CHECK(bad<cfg::endpoint>("h:").message == "bad endpoint 'h:': missing port number");
  CHECK(bad<cfg::endpoint>("h:http").message == "bad endpoint 'h:http': port 'http' is not a number");
  CHECK(bad<cfg::endpoint>("h:65536").message == "bad endpoint 'h:65536': port 65536 out of range (0..65535)");
  CHECK(bad<cfg::endpoint>("h:65536").code == cfg::error::out_of_range);
  CHECK(bad<cfg::endpoint>("[::1:80").message == "bad endpoint '[::1:80': missing ']' after the IPv6 address");
  CHECK(bad<cfg::endpoint>("[::1]").message == "bad endpoint '[::1]': missing port, expected [ipv6]:port");
  CHECK(bad<cfg::endpoint>("[nope]:1").message == "bad endpoint '[nope]:1': 'nope' is not an IPv6 address");
  CHECK(bad<cfg::endpoint>("a b:1").message == "bad endpoint 'a b:1': 'a b' is not a valid host name");
  CHECK(bad<cfg::endpoint>("fe80::1:80").message ==
        "bad endpoint 'fe80::1:80': write an IPv6 address in brackets, e.g. [::1]:8080");

  CHECK(cfg::endpoint{"::1", 25565}.to_string() == "[::1]:25565");
  CHECK(cfg::scalar_traits<cfg::endpoint>::format({"10.1.2.3", 7}) == "\"10.1.2.3:7\"");
  round_trips(cfg::endpoint{"::1", 1});
  round_trips(cfg::endpoint{"name.local", 65535});
}

TEST_CASE("scalar: enums by declared name", "[config]") {
  CHECK(ok<st::mode>("intercept") == st::mode::intercept);
  CHECK(bad<st::mode>("intercpet").message ==
        "unknown value 'intercpet', expected one of: passthrough, intercept (did you mean 'intercept'?)");
  CHECK(bad<st::mode>("zzz").message == "unknown value 'zzz', expected one of: passthrough, intercept");
  CHECK(cfg::scalar_traits<st::mode>::type_name() == "one of passthrough, intercept");
  CHECK(cfg::scalar_traits<st::mode>::format(st::mode::passthrough) == "passthrough");
  round_trips(st::mode::intercept);
}

TEST_CASE("suggest: close names only", "[config]") {
  const std::vector<std::string> keys = {"listen", "routes", "port", "idle_timeout"};
  CHECK(cfg::edit_distance("prot", "port") == 1);  // a swap is one edit
  CHECK(cfg::edit_distance("", "abc") == 3);
  CHECK(cfg::did_you_mean("lisen", keys) == std::optional<std::string>("listen"));
  CHECK(cfg::did_you_mean("prot", keys) == std::optional<std::string>("port"));
  CHECK(cfg::did_you_mean("idle_timout", keys) == std::optional<std::string>("idle_timeout"));
  CHECK(cfg::did_you_mean("Routes", keys) == std::optional<std::string>("routes"));
  CHECK_FALSE(cfg::did_you_mean("backends", keys));
  CHECK_FALSE(cfg::did_you_mean("xy", keys));
}
