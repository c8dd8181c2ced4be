// Tests for rproxy/balance/upstream_config.hpp: validate_backends, as an app's config calls it
// for a pool's list (errors at file:line:col of the list or of the repeated address).
#include <rproxy/balance/upstream_config.hpp>

#include <rproxy/config/decode.hpp>

#include <catch2/catch.hpp>

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
