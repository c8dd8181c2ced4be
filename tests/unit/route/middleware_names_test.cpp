// Tests for rproxy/route/middleware_names.hpp: names as mask bits in pipeline order, and the
// check of a route's `middleware:` list (unknown names, names whose block is not configured).
#include <rproxy/route/middleware_names.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr rproxy::route::middleware_names<3> names{{"ip_filter", "jwt", "compress"}};

/// Stands in for a config::validator entry: collects the errors reported at index j.
struct recorder {
  std::vector<std::string>* out;
  std::size_t j;
  void error(const std::string& m) const { out->push_back(std::to_string(j) + ": " + m); }
};

}  // namespace

TEST_CASE("middleware_names: bit i is name i; unknown names have none", "[route]") {
  STATIC_REQUIRE(names.bit("ip_filter") == 1u);
  STATIC_REQUIRE(names.bit("compress") == 4u);
  STATIC_REQUIRE(names.bit("nope") == 0u);
  CHECK(names.mask({"compress", "ip_filter"}) == 5u);
  CHECK(names.mask({"nope"}) == 0u);
  CHECK(names.mask({}) == 0u);
}

TEST_CASE("middleware_names: validate names unknown and unconfigured entries at their index", "[route]") {
  std::vector<std::string> errors;
  auto at = [&](std::size_t j) { return recorder{&errors, j}; };
  auto configured = [](std::string_view n) { return n != "jwt"; };
  names.validate({"ip_filter", "jwt", "rate_limit"}, configured, at);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0] == "1: middleware 'jwt' has no 'jwt:' block in this file");
  CHECK(errors[1] == "2: unknown middleware 'rate_limit' (ip_filter, jwt, compress)");
  errors.clear();
  names.validate({"compress"}, configured, at);
  CHECK(errors.empty());
}
