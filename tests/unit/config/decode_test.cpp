// Tests for rproxy/config/decode.hpp: YAML to typed structs, every error with file:line:col.
#include <catch2/catch.hpp>

#include <rproxy/config/decode.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace dt {

enum class balance { round_robin, least_conn, random };
constexpr auto config_enum_names(balance) {
  using rproxy::config::enum_name;
  return std::array{enum_name{"round_robin", balance::round_robin}, enum_name{"least_conn", balance::least_conn},
                    enum_name{"random", balance::random}};
}

struct backend {
  rproxy::config::endpoint address;
  std::uint16_t weight = 1;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(required<&backend::address>("where the backend listens"),
                  doc<&backend::weight>("share of new connections"));
  }
};

struct pool {
  std::vector<backend> backends;
  balance strategy = balance::round_robin;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&pool::backends>(), doc<&pool::strategy>());
  }
};

struct limits {
  rproxy::config::byte_size max_packet = rproxy::config::byte_size::mib(2);
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::seconds ban_time{600};
  double burst = 1.5;
  std::int8_t nice = -3;
  std::uint64_t big = 7;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&limits::max_packet>(), doc<&limits::handshake_timeout>(), doc<&limits::ban_time>(),
                  doc<&limits::burst>(), doc<&limits::nice>(), doc<&limits::big>());
  }
};

struct proxy {
  rproxy::config::endpoint listen{"0.0.0.0", 25565};
  bool online_mode = true;
  std::string motd = "hello";
  std::vector<std::string> tags;
  std::map<std::string, pool> pools;
  limits limit;
  std::optional<std::chrono::seconds> drain;
  std::optional<int> workers = 4;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&proxy::listen>(), doc<&proxy::online_mode>(), doc<&proxy::motd>(), doc<&proxy::tags>(),
                  doc<&proxy::pools>(), doc<&proxy::limit>(), doc<&proxy::drain>(), doc<&proxy::workers>());
  }
};

// A member that describe() does not list is not a config field.
struct with_state {
  int open_hour = 9;
  int close_hour = 17;
  std::string message;
  int refused_ = 0;  // counted at run time, never read from a file
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&with_state::open_hour>(), doc<&with_state::close_hour>(), doc<&with_state::message>());
  }
};

struct needs_name {
  std::string name;
  int port = 0;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(required<&needs_name::name>("the name"), doc<&needs_name::port>());
  }
};

}  // namespace dt


namespace {

using namespace std::chrono_literals;
namespace cfg = rproxy::config;

template <class T>
std::vector<std::string> errors_of(const std::string& yaml) {
  auto r = cfg::load_string<T>(yaml, "test.yaml");
  REQUIRE_FALSE(r);
  std::vector<std::string> out;
  for (const auto& d : r.error()) out.push_back(d.to_string());
  return out;
}

template <class T>
std::string error_of(const std::string& yaml) {
  auto all = errors_of<T>(yaml);
  REQUIRE(all.size() == 1);
  return all[0];
}

}  // namespace

TEST_CASE("decode: every supported type", "[config]") {
  const std::string yaml = R"(listen: "[::1]:25577"
online_mode: off
motd: "welcome\n"
tags: [a, b, "c d"]
pools:
  main:
    strategy: least_conn
    backends:
      - address: 10.0.0.1:25566
        weight: 3
      - address: lobby.internal:25567
  empty: {}
limit:
  max_packet: 64KiB
  handshake_timeout: 1.5s
  ban_time: 1h30m
  burst: 2.25
  nice: -128
  big: 18446744073709551615
drain: 30s
workers: ~
)";
  auto r = cfg::load_string<dt::proxy>(yaml, "full.yaml");
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r);
  const dt::proxy& p = *r;
  CHECK(p.listen == cfg::endpoint{"::1", 25577});
  CHECK_FALSE(p.online_mode);
  CHECK(p.motd == "welcome\n");
  CHECK(p.tags == std::vector<std::string>{"a", "b", "c d"});
  REQUIRE(p.pools.size() == 2);
  const dt::pool& main = p.pools.at("main");
  CHECK(main.strategy == dt::balance::least_conn);
  REQUIRE(main.backends.size() == 2);
  CHECK(main.backends[0].address == cfg::endpoint{"10.0.0.1", 25566});
  CHECK(main.backends[0].weight == 3);
  CHECK(main.backends[1].address == cfg::endpoint{"lobby.internal", 25567});
  CHECK(main.backends[1].weight == 1);  // default kept
  CHECK(p.pools.at("empty").backends.empty());
  CHECK(p.pools.at("empty").strategy == dt::balance::round_robin);
  CHECK(p.limit.max_packet == cfg::byte_size{65536});
  CHECK(p.limit.handshake_timeout == 1500ms);
  CHECK(p.limit.ban_time == 5400s);
  CHECK(p.limit.burst == 2.25);
  CHECK(p.limit.nice == -128);
  CHECK(p.limit.big == 18446744073709551615ull);
  CHECK(p.drain == std::optional<std::chrono::seconds>(30s));
  CHECK_FALSE(p.workers.has_value());  // null empties an optional
}

TEST_CASE("decode: missing keys keep the default member initializers", "[config]") {
  auto r = cfg::load_string<dt::proxy>("motd: hi\n");
  REQUIRE(r);
  CHECK(r->listen == cfg::endpoint{"0.0.0.0", 25565});
  CHECK(r->online_mode);
  CHECK(r->motd == "hi");
  CHECK(r->limit.max_packet == cfg::byte_size::mib(2));
  CHECK(r->limit.handshake_timeout == 5000ms);
  CHECK(r->limit.nice == -3);
  CHECK_FALSE(r->drain);
  CHECK(r->workers == std::optional<int>(4));

  // An empty document is all defaults too.
  auto empty = cfg::load_string<dt::proxy>("");
  REQUIRE(empty);
  CHECK(empty->motd == "hello");
  // A null section is that section's defaults.
  auto null_section = cfg::load_string<dt::proxy>("limit:\n");
  REQUIRE(null_section);
  CHECK(null_section->limit.big == 7);
}

TEST_CASE("decode: a member that describe() does not list is not a config field", "[config]") {
  auto r = cfg::load_string<dt::with_state>("open_hour: 8\nclose_hour: 22\nmessage: closed\n");
  REQUIRE(r);
  CHECK(r->open_hour == 8);
  CHECK(r->close_hour == 22);
  CHECK(r->message == "closed");
  CHECK(r->refused_ == 0);
  CHECK(error_of<dt::with_state>("open_hour: 8\nrefused_: 3\n") ==
        "test.yaml:2:1: unknown key 'refused_' (expected one of: open_hour, close_hour, message)");
  CHECK(error_of<dt::with_state>("open_hour: 8\nclose_huor: 22\n") ==
        "test.yaml:2:1: unknown key 'close_huor' (did you mean 'close_hour'?)");
}

TEST_CASE("decode: unknown key says where and suggests the closest field", "[config]") {
  CHECK(error_of<dt::proxy>("lisen: 0.0.0.0:1\n") == "test.yaml:1:1: unknown key 'lisen' (did you mean 'listen'?)");
  CHECK(error_of<dt::proxy>("motd: x\nlimit:\n  max_pakcet: 1KiB\n") ==
        "test.yaml:3:3: unknown key 'max_pakcet' (did you mean 'max_packet'?)");
  // Nothing close: the valid keys are listed instead.
  CHECK(error_of<dt::needs_name>("name: a\nzzzzzz: 1\n") ==
        "test.yaml:2:1: unknown key 'zzzzzz' (expected one of: name, port)");
  auto r = cfg::load_string<dt::proxy>("lisen: 0.0.0.0:1\n", "test.yaml");
  REQUIRE_FALSE(r);
  CHECK(r.error()[0].code == cfg::error::unknown_key);
  CHECK(r.error()[0].code == rproxy::condition::internal);
  CHECK(r.error()[0].line == 1);
  CHECK(r.error()[0].col == 1);
  CHECK(r.error()[0].file == "test.yaml");
}

TEST_CASE("decode: wrong types", "[config]") {
  CHECK(error_of<dt::proxy>("limit:\n  big: abc\n") == "test.yaml:2:8: expected uint64, got 'abc'");
  CHECK(error_of<dt::proxy>("online_mode: maybe\n") ==
        "test.yaml:1:14: expected bool (true or false), got 'maybe'");
  CHECK(error_of<dt::proxy>("tags:\n  x: 1\n") == "test.yaml:2:3: expected a list of string, got a map");
  CHECK(error_of<dt::proxy>("motd: [1, 2]\n") == "test.yaml:1:7: expected string, got a list");
  CHECK(error_of<dt::proxy>("limit: 5\n") == "test.yaml:1:8: expected a map (limits), got '5'");
  CHECK(error_of<dt::proxy>("motd:\n") == "test.yaml:1:1: expected string, got null");
  CHECK(error_of<dt::proxy>("limit:\n  burst: fast\n") == "test.yaml:2:10: expected number, got 'fast'");
  auto r = cfg::load_string<dt::proxy>("motd: [1, 2]\n");
  REQUIRE_FALSE(r);
  CHECK(r.error()[0].code == cfg::error::wrong_type);
}

TEST_CASE("decode: numbers out of range", "[config]") {
  CHECK(error_of<dt::proxy>("pools:\n  a:\n    backends:\n      - address: h:1\n        weight: 70000\n") ==
        "test.yaml:5:17: value 70000 out of range for uint16 (0..65535)");
  CHECK(error_of<dt::proxy>("limit: {nice: -129}\n") == "test.yaml:1:15: value -129 out of range for int8 (-128..127)");
  CHECK(error_of<dt::proxy>("limit: {big: -1}\n") ==
        "test.yaml:1:14: value -1 out of range for uint64 (0..18446744073709551615)");
  CHECK(error_of<dt::proxy>("limit: {big: 18446744073709551616}\n") ==
        "test.yaml:1:14: value 18446744073709551616 out of range for uint64 (0..18446744073709551615)");
  auto r = cfg::load_string<dt::proxy>("limit: {nice: 300}\n");
  REQUIRE_FALSE(r);
  CHECK(r.error()[0].code == cfg::error::out_of_range);
}

TEST_CASE("decode: bad durations, sizes, endpoints and enum names", "[config]") {
  CHECK(error_of<dt::proxy>("limit:\n  ban_time: 5x\n") ==
        "test.yaml:2:13: bad duration '5x': expected a number with a unit (ns, us, ms, s, m, h, d), e.g. 250ms, "
        "5s, 1h30m");
  CHECK(error_of<dt::proxy>("limit:\n  ban_time: 250ms\n") ==
        "test.yaml:2:13: duration '250ms' is not a whole number of s");
  CHECK(error_of<dt::proxy>("limit:\n  max_packet: 64 KiBs\n") ==
        "test.yaml:2:15: bad size '64 KiBs': expected a whole number with an optional unit (B, KiB, MiB, GiB, "
        "TiB, KB, MB, GB, TB), e.g. 64KiB");
  CHECK(error_of<dt::proxy>("listen: localhost\n") ==
        "test.yaml:1:9: bad endpoint 'localhost': missing port, expected host:port or [ipv6]:port");
  CHECK(error_of<dt::proxy>("listen: ::1:80\n") ==
        "test.yaml:1:9: bad endpoint '::1:80': write an IPv6 address in brackets, e.g. [::1]:8080");
  CHECK(error_of<dt::proxy>("listen: \"h:99999\"\n") ==
        "test.yaml:1:9: bad endpoint 'h:99999': port 99999 out of range (0..65535)");
  CHECK(error_of<dt::proxy>("pools:\n  a:\n    strategy: lest_conn\n") ==
        "test.yaml:3:15: unknown value 'lest_conn', expected one of: round_robin, least_conn, random "
        "(did you mean 'least_conn'?)");
  auto r = cfg::load_string<dt::proxy>("listen: localhost\n");
  REQUIRE_FALSE(r);
  CHECK(r.error()[0].code == cfg::error::bad_value);
}

TEST_CASE("decode: missing required keys are reported at their mapping", "[config]") {
  CHECK(error_of<dt::needs_name>("port: 1\n") == "test.yaml:1:1: missing required key 'name'");
  CHECK(error_of<dt::needs_name>("") == "test.yaml:1:1: missing required key 'name'");
  CHECK(error_of<dt::proxy>("pools:\n  a:\n    backends:\n      - weight: 2\n") ==
        "test.yaml:4:9: missing required key 'address' in pools.a.backends[0]");
  auto r = cfg::load_string<dt::needs_name>("port: 1\n");
  REQUIRE_FALSE(r);
  CHECK(r.error()[0].code == cfg::error::missing_required);
}

TEST_CASE("decode: duplicate keys", "[config]") {
  CHECK(error_of<dt::proxy>("motd: a\nonline_mode: true\nmotd: b\n") ==
        "test.yaml:3:1: duplicate key 'motd' (first at line 1)");
  CHECK(error_of<dt::proxy>("pools:\n  a: {}\n  a: {}\n") == "test.yaml:3:3: duplicate key 'a'");
}

TEST_CASE("decode: YAML syntax errors have a position too", "[config]") {
  CHECK(error_of<dt::proxy>("tags: [a, b\n") == "test.yaml:2:1: end of sequence flow not found");
  CHECK(error_of<dt::proxy>("limit:\n  big: 1\n nice: 2\n") == "test.yaml:3:2: end of map not found");
  auto r = cfg::load_string<dt::proxy>("tags: [a, b\n", "test.yaml");
  REQUIRE_FALSE(r);
  CHECK(r.error()[0].code == cfg::error::syntax);
}

TEST_CASE("decode: all errors are collected, in file order", "[config]") {
  const std::string yaml = R"(listen: nowhere
limit:
  nice: 1000
  ban_tim: 5s
pools:
  main:
    backends:
      - address: a:1
        weight: -1
      - weight: 2
    strategy: fastest
online_mode: perhaps
)";
  const std::vector<std::string> expected = {
      "test.yaml:1:9: bad endpoint 'nowhere': missing port, expected host:port or [ipv6]:port",
      "test.yaml:3:9: value 1000 out of range for int8 (-128..127)",
      "test.yaml:4:3: unknown key 'ban_tim' (did you mean 'ban_time'?)",
      "test.yaml:9:17: value -1 out of range for uint16 (0..65535)",
      "test.yaml:10:9: missing required key 'address' in pools.main.backends[1]",
      "test.yaml:11:15: unknown value 'fastest', expected one of: round_robin, least_conn, random",
      "test.yaml:12:14: expected bool (true or false), got 'perhaps'",
  };
  CHECK(errors_of<dt::proxy>(yaml) == expected);
}

TEST_CASE("decode: positions of every node are kept by path", "[config]") {
  cfg::positions pos;
  auto r = cfg::load_string<dt::proxy>(
      "motd: x\npools:\n  main:\n    backends:\n      - address: a:1\n      - address: b:2\n        weight: 5\n",
      "p.yaml", &pos);
  REQUIRE(r);
  CHECK(pos.file() == "p.yaml");
  CHECK(pos.find("motd") == cfg::mark{1, 7});
  CHECK(pos.find("pools.main") == cfg::mark{4, 5});
  CHECK(pos.find("pools.main.backends[1]") == cfg::mark{6, 9});
  CHECK(pos.find("pools.main.backends[1].address") == cfg::mark{6, 18});
  CHECK(pos.find("pools.main.backends[1].weight") == cfg::mark{7, 17});
  // Not in the file: the nearest ancestor that is.
  CHECK(pos.find("pools.main.strategy") == cfg::mark{4, 5});
  CHECK(pos.find("limit.big") == cfg::mark{1, 1});
}

TEST_CASE("decode: a YAML::Node parsed elsewhere", "[config]") {
  YAML::Node n = YAML::Load("name: x\nport: 9\n");
  auto r = cfg::decode<dt::needs_name>(n, "inline");
  REQUIRE(r);
  CHECK(r->name == "x");
  CHECK(r->port == 9);
}

TEST_CASE("load_file: reads a file; a missing file is one diagnostic", "[config]") {
  auto missing = cfg::load_file<dt::proxy>("/nonexistent/rproxy-config-test.yaml");
  REQUIRE_FALSE(missing);
  REQUIRE(missing.error().size() == 1);
  CHECK(missing.error()[0].to_string() ==
        "/nonexistent/rproxy-config-test.yaml: cannot read: No such file or directory");
  CHECK(missing.error()[0].code == cfg::error::unreadable);
}
