// Tests for rproxy/balance/upstream_config.hpp: validate_backends, as an app's config calls it
// for a pool's list (errors at file:line:col of the list or of the repeated address).
#include <rproxy/balance/upstream_config.hpp>

#include <rproxy/config/decode.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace uct {
namespace cfg = rproxy::config;
namespace bal = rproxy::balance;

struct pool_config {
  std::vector<bal::backend_settings> backends;
  static constexpr auto describe() { return cfg::fields(cfg::doc<&pool_config::backends>("the pool")); }
  void validate(cfg::validator& v) const { bal::validate_backends(v.at(&pool_config::backends), backends); }
};

struct balancer_config {
  bal::algorithm balancer = bal::algorithm::round_robin;
  static constexpr auto describe() { return cfg::fields(cfg::doc<&balancer_config::balancer>("the balancer")); }
};
}  // namespace uct

namespace {
std::vector<std::string> errors_of(const std::string& yaml) {
  auto r = rproxy::config::load_string<uct::pool_config>(yaml, "app.yaml");
  std::vector<std::string> out;
  if (!r)
    for (const auto& d : r.error()) out.push_back(d.to_string());
  return out;
}
}  // namespace

TEST_CASE("validate_backends: distinct addresses pass", "[balance][config]") {
  CHECK(errors_of("backends:\n  - address: 127.0.0.1:1\n  - address: 127.0.0.1:2\n").empty());
}

TEST_CASE("validate_backends: an empty list is refused at the list", "[balance][config]") {
  CHECK(errors_of("backends: []\n") == std::vector<std::string>{"app.yaml:1:11: needs at least one backend"});
}

TEST_CASE("validate_backends: an address listed twice is refused where it repeats", "[balance][config]") {
  CHECK(errors_of("backends:\n  - address: 127.0.0.1:1\n  - address: 127.0.0.1:2\n  - address: 127.0.0.1:1\n") ==
        std::vector<std::string>{"app.yaml:4:14: backend listed twice: 127.0.0.1:1"});
}

namespace bal = rproxy::balance;
namespace cfg = rproxy::config;

TEST_CASE("any_balancer: the hash balancers by name agree between instances, key by key", "[balance][config]") {
  auto pool = std::make_shared<bal::upstream_pool>();
  std::vector<bal::backend_settings> backends;
  for (int i = 0; i < 5; ++i) backends.push_back({{"127.0.0.1", static_cast<std::uint16_t>(9000 + i)}});
  REQUIRE(pool->update(bal::pool_entries(backends)));
  for (auto a : {bal::algorithm::consistent_hash, bal::algorithm::ip_hash}) {
    INFO(static_cast<int>(a));
    // Two balancers made apart (two workers, two proxy instances), different seeds.
    auto one = bal::any_balancer::make(a, 1), two = bal::any_balancer::make(a, 2);
    std::set<std::string> used;
    for (std::uint64_t key = 0; key < 200; ++key) {
      auto h1 = one.pick(*pool, key), h2 = two.pick(*pool, key);
      REQUIRE(h1);
      REQUIRE(h2);
      CHECK((*h1)->id() == (*h2)->id());
      auto again = one.pick(*pool, key);
      CHECK((*again)->id() == (*h1)->id());
      used.insert(std::string((*h1)->id()));
    }
    CHECK(used.size() == 5);  // keys spread over every backend
  }
  // ip_hash by address: IPv4 clients of one /24 share a backend (as nginx's ip_hash).
  auto ih = bal::any_balancer::make(bal::algorithm::ip_hash);
  auto x = ih.pick(*pool, asio::ip::make_address("10.1.2.3")), y = ih.pick(*pool, asio::ip::make_address("10.1.2.200"));
  CHECK((*x)->id() == (*y)->id());
}

TEST_CASE("algorithm: every name a config may give", "[balance][config]") {
  using c = uct::balancer_config;
  for (std::string name : {"round_robin", "weighted_round_robin", "least_conn", "random", "lowest_latency", "ip_hash", "consistent_hash"}) {
    auto r = rproxy::config::load_string<c>("balancer: " + name + "\n", "app.yaml");
    CHECK(r.has_value());
  }
  auto bad = rproxy::config::load_string<c>("balancer: maglev\n", "app.yaml");
  CHECK(!bad.has_value());
}
