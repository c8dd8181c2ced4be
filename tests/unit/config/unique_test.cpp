// Tests for rproxy/config/unique.hpp: a repeated key in a list is reported at the later item's
// field with its file:line:col (decoded from YAML, so the positions are the decoder's).
#include <rproxy/config/unique.hpp>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace uq {

namespace cfg = rproxy::config;

struct route {
  std::string name;
  cfg::endpoint listen;
  static constexpr auto describe() { return cfg::fields(cfg::doc<&route::name>(), cfg::doc<&route::listen>()); }
};

struct proxy {
  std::vector<route> routes;
  static constexpr auto describe() { return cfg::fields(cfg::doc<&proxy::routes>()); }
  void validate(cfg::validator& v) const {
    cfg::validate_unique<&route::name>(v.at(&proxy::routes), routes, "duplicate route name");
    cfg::validate_unique<&route::listen>(v.at(&proxy::routes), routes, "two routes listen on");
  }
};

std::vector<std::string> errors(const char* yaml) {
  std::vector<std::string> out;
  auto r = cfg::load_string<proxy>(yaml, "t.yaml");
  if (!r)
    for (const auto& d : r.error()) out.push_back(d.to_string());
  return out;
}

}  // namespace uq

TEST_CASE("validate_unique: distinct keys pass", "[config][unique]") {
  CHECK(uq::errors("routes:\n"
                   "  - {name: a, listen: 127.0.0.1:1}\n"
                   "  - {name: b, listen: 127.0.0.1:2}\n")
            .empty());
}

TEST_CASE("validate_unique: a repeated name and a repeated endpoint, each at the later item", "[config][unique]") {
  const auto e = uq::errors("routes:\n"
                            "  - name: a\n"
                            "    listen: 127.0.0.1:1\n"
                            "  - name: b\n"
                            "    listen: 127.0.0.1:1\n"
                            "  - name: a\n"
                            "    listen: 127.0.0.1:3\n");
  REQUIRE(e.size() == 2);  // sorted by position
  CHECK(e[0].find("t.yaml:5:") == 0);
  CHECK(e[0].find("two routes listen on '127.0.0.1:1'") != std::string::npos);
  CHECK(e[1].find("t.yaml:6:") == 0);
  CHECK(e[1].find("duplicate route name 'a'") != std::string::npos);
}

TEST_CASE("validate_unique: empty keys are left to the required-field check", "[config][unique]") {
  CHECK(uq::errors("routes:\n"
                   "  - {listen: 127.0.0.1:1}\n"
                   "  - {listen: 127.0.0.1:2}\n")
            .empty());
}
