// Tests for rproxy/config/starter_config.hpp: the `init` output is commented YAML that decodes
// back to the defaults, with every field and its description.
#include <catch2/catch.hpp>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/starter_config.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sc {

enum class balance { round_robin, least_conn };
constexpr auto config_enum_names(balance) {
  using rproxy::config::enum_name;
  return std::array{enum_name{"round_robin", balance::round_robin}, enum_name{"least_conn", balance::least_conn}};
}

struct backend {
  rproxy::config::endpoint address{"127.0.0.1", 25566};
  unsigned weight = 1;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(required<&backend::address>("where the server listens"),
                  doc<&backend::weight>("share of new players"));
  }
};

struct route {
  std::vector<std::string> hosts{"*.example.com"};
  std::vector<backend> backends;
  balance strategy = balance::least_conn;
  std::optional<std::string> motd;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&route::hosts>("hostnames players type, wildcards allowed"),
                  doc<&route::backends>("servers behind this route"),
                  doc<&route::strategy>("how a server is chosen"),
                  doc<&route::motd>("status text when every server is down"));
  }
};

struct tls_files {
  std::string cert = "cert.pem";
  std::string key = "key.pem";
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&tls_files::cert>(), doc<&tls_files::key>());
  }
};

struct proxy {
  rproxy::config::endpoint listen{"0.0.0.0", 25565};
  std::chrono::milliseconds idle_timeout{30000};
  rproxy::config::byte_size max_packet = rproxy::config::byte_size::mib(2);
  double burst = 1.5;
  bool online_mode = true;
  std::string name = "my \"proxy\"";
  std::map<std::string, route> routes{{"lobby", route{}}, {"odd key", route{{"x.y"}, {backend{}}, {}, "down"}}};
  std::map<std::string, std::string> labels{{"env", "prod"}};
  std::vector<backend> spares;
  std::optional<tls_files> tls;
  std::optional<tls_files> tls_on = tls_files{};
  std::vector<std::vector<int>> matrix{{1, 2}, {}};
  std::optional<std::chrono::seconds> drain;

  static constexpr std::string_view summary = "A test proxy.";
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(required<&proxy::listen>("address to accept players on"),
                  doc<&proxy::idle_timeout>("close connections idle this long"), doc<&proxy::max_packet>(),
                  doc<&proxy::burst>(), doc<&proxy::online_mode>(), doc<&proxy::name>(),
                  doc<&proxy::routes>("routes by name"), doc<&proxy::labels>(), doc<&proxy::spares>(),
                  doc<&proxy::tls>(), doc<&proxy::tls_on>(), doc<&proxy::matrix>(),
                  doc<&proxy::drain>("drain time on shutdown"));
  }
};

}  // namespace sc

namespace {
namespace cfg = rproxy::config;

bool same(const sc::backend& a, const sc::backend& b) { return a.address == b.address && a.weight == b.weight; }
bool same(const std::vector<sc::backend>& a, const std::vector<sc::backend>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i])) return false;
  return true;
}
bool same(const sc::route& a, const sc::route& b) {
  return a.hosts == b.hosts && same(a.backends, b.backends) && a.strategy == b.strategy && a.motd == b.motd;
}
}  // namespace

TEST_CASE("starter_config: decodes back to the defaults", "[config]") {
  const std::string text = cfg::starter_config<sc::proxy>("mc-proxy starter config\nedit me");
  INFO(text);
  auto r = cfg::load_string<sc::proxy>(text, "starter.yaml");
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r);
  const sc::proxy def{};
  const sc::proxy& p = *r;
  CHECK(p.listen == def.listen);
  CHECK(p.idle_timeout == def.idle_timeout);
  CHECK(p.max_packet == def.max_packet);
  CHECK(p.burst == def.burst);
  CHECK(p.online_mode == def.online_mode);
  CHECK(p.name == def.name);
  REQUIRE(p.routes.size() == 2);
  CHECK(same(p.routes.at("lobby"), def.routes.at("lobby")));
  CHECK(same(p.routes.at("odd key"), def.routes.at("odd key")));
  CHECK(p.labels == def.labels);
  CHECK(p.spares.empty());
  CHECK_FALSE(p.tls);
  REQUIRE(p.tls_on);
  CHECK(p.tls_on->cert == "cert.pem");
  CHECK(p.matrix == def.matrix);
  CHECK_FALSE(p.drain);
}

TEST_CASE("starter_config: comments, defaults and examples", "[config]") {
  const std::string text = cfg::starter_config<sc::proxy>("mc-proxy starter config\nedit me");
  INFO(text);
  const std::string expected_start = R"(# mc-proxy starter config
# edit me
# A test proxy.

# address to accept players on (required)
listen: "0.0.0.0:25565"

# close connections idle this long
idle_timeout: 30s

max_packet: 2MiB

burst: 1.5

online_mode: true

name: "my \"proxy\""

# routes by name
routes:
  lobby:
    # hostnames players type, wildcards allowed
    hosts:
      - "*.example.com"
    # servers behind this route
    backends: []
    #   for example:
    #   - address: "127.0.0.1:25566"
    #     weight: 1
    # how a server is chosen
    strategy: least_conn
    # status text when every server is down
    # motd: <string>
  "odd key":
)";
  CHECK(text.substr(0, expected_start.size()) == expected_start);
  const std::string expected_end = R"(
spares: []
#   for example:
#   - address: "127.0.0.1:25566"
#     weight: 1

# tls: <tls_files>

tls_on:
  cert: "cert.pem"
  key: "key.pem"

matrix:
  - - 1
    - 2
  - []

# drain time on shutdown
# drain: <duration>
)";
  REQUIRE(text.size() > expected_end.size());
  CHECK(text.substr(text.size() - expected_end.size()) == expected_end);
}

TEST_CASE("starter_config: yaml keys are quoted only when needed", "[config]") {
  CHECK(cfg::detail::yaml_key("lobby") == "lobby");
  CHECK(cfg::detail::yaml_key("a.b-c/d_e") == "a.b-c/d_e");
  CHECK(cfg::detail::yaml_key("odd key") == "\"odd key\"");
  CHECK(cfg::detail::yaml_key("-x") == "\"-x\"");
  CHECK(cfg::detail::yaml_key("null") == "\"null\"");
  CHECK(cfg::detail::yaml_key("") == "\"\"");
}
