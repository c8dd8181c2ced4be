// Tests for rproxy/config/field.hpp: describe() is the one list of fields; each YAML key is the
// member's C++ name, derived at compile time from the member pointer.
#include <catch2/catch.hpp>

#include <rproxy/config/field.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ft {

struct route {
  std::string host;
  std::string pool_name_2;
  unsigned retries_ = 3;
  int hits = 0;  // not listed: not a config field
  static constexpr auto describe() {
    using namespace rproxy::config;
    // Not in declaration order on purpose: describe() order is the order of the fields.
    return fields(doc<&route::retries_>("tries per backend"), required<&route::host>("the host"),
                  doc<&route::pool_name_2>());
  }
};

template <class T>
struct wrapped {
  T value{};
  struct inner {
    T deep{};
    static constexpr auto describe() { return rproxy::config::fields(rproxy::config::doc<&inner::deep>("below")); }
  };
  inner in{};
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&wrapped::value>("a value"), doc<&wrapped::in>());
  }
};

struct nothing {
  static constexpr auto describe() { return rproxy::config::fields(); }
};

struct not_config {
  int x = 0;
};

}  // namespace ft

namespace {

struct local_scope {
  int in_anonymous_namespace = 0;
  static constexpr auto describe() {
    return rproxy::config::fields(rproxy::config::doc<&local_scope::in_anonymous_namespace>());
  }
};

namespace cfg = rproxy::config;

// The names are compile-time constants (checked by the compiler running this file).
static_assert(cfg::member_name<&ft::route::host> == "host");
static_assert(cfg::member_name<&ft::route::pool_name_2> == "pool_name_2");
static_assert(cfg::member_name<&ft::route::retries_> == "retries_");
static_assert(cfg::member_name<&ft::wrapped<std::vector<int>>::value> == "value");
static_assert(cfg::member_name<&ft::wrapped<int>::inner::deep> == "deep");
static_assert(cfg::member_name<&local_scope::in_anonymous_namespace> == "in_anonymous_namespace");
static_assert(cfg::field_name(&ft::route::host) == "host");
static_assert(cfg::reflected<ft::route>);
static_assert(cfg::reflected<ft::wrapped<int>::inner>);
static_assert(cfg::reflected<ft::nothing>);
static_assert(!cfg::reflected<ft::not_config>);
static_assert(!cfg::reflected<int>);

std::vector<std::string> names_of(const std::vector<cfg::field_meta>& metas) {
  std::vector<std::string> out;
  for (const auto& m : metas) out.emplace_back(m.name);
  return out;
}

TEST_CASE("field: describe() lists the fields, in its order, with docs and required flags", "[config]") {
  const auto& metas = cfg::field_metas<ft::route>();
  CHECK(names_of(metas) == std::vector<std::string>{"retries_", "host", "pool_name_2"});
  REQUIRE(metas.size() == 3);
  CHECK(metas[0].description == "tries per backend");
  CHECK_FALSE(metas[0].required);
  CHECK(metas[1].required);
  CHECK(metas[2].description.empty());
  CHECK(names_of(cfg::field_metas<ft::wrapped<std::string>>()) == std::vector<std::string>{"value", "in"});
  CHECK(cfg::field_metas<ft::nothing>().empty());
}

TEST_CASE("field: for_each_field visits the listed members of an object, mutable or const", "[config]") {
  ft::route r;
  std::vector<std::string> seen;
  cfg::detail::for_each_field(r, [&](std::string_view name, auto& member) {
    seen.emplace_back(name);
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(member)>, std::string>) member = "set " + std::string(name);
    else member = 7;
  });
  CHECK(seen == std::vector<std::string>{"retries_", "host", "pool_name_2"});
  CHECK(r.host == "set host");
  CHECK(r.pool_name_2 == "set pool_name_2");
  CHECK(r.retries_ == 7);
  CHECK(r.hits == 0);  // not a field: untouched

  const ft::route& cr = r;
  std::size_t n = 0;
  cfg::detail::for_each_field(cr, [&](std::string_view, const auto&) { ++n; });
  CHECK(n == 3);
}

TEST_CASE("field: field_name of a member describe() does not list is a programmer error", "[config]") {
  CHECK(cfg::field_name(&ft::route::retries_) == "retries_");
  CHECK(cfg::field_name(&ft::wrapped<int>::inner::deep) == "deep");
  CHECK_THROWS_AS(cfg::field_name(&ft::route::hits), std::logic_error);
}

}  // namespace
