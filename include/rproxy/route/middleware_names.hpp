// rproxy/route/middleware_names.hpp: the names an app lets a route's `middleware:` list use,
// in pipeline order, as bits of a mask (bit i: name i) that route/http_route_table.hpp keeps
// per route and route_uses tests; and the check of such a list for the config's validate().
//
//     inline constexpr rproxy::route::middleware_names<2> middleware{{"jwt", "rate_limit"}};
//     rproxy::gated{jwt_stage, rproxy::route::route_uses{&table.masks, middleware.bit("jwt")}}
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rproxy::route {

template <std::size_t N>
struct middleware_names {
  static_assert(N <= 32, "middleware_names: a mask has 32 bits");
  std::array<std::string_view, N> names;

  /// The bit of `n` (0: not a name of this set).
  constexpr std::uint32_t bit(std::string_view n) const noexcept {
    for (std::size_t i = 0; i < N; ++i)
      if (names[i] == n) return 1u << i;
    return 0;
  }

  /// The bits of a list's names (unknown names add none).
  std::uint32_t mask(const std::vector<std::string>& list) const noexcept {
    std::uint32_t m = 0;
    for (const auto& n : list) m |= bit(n);
    return m;
  }

  /// Checks a `middleware:` list: each name is one of this set and `configured(name)` (its
  /// block is in the file). `at(j)`: the config::validator of entry j.
  template <class Configured, class At>
  void validate(const std::vector<std::string>& list, Configured configured, At at) const {
    for (std::size_t j = 0; j < list.size(); ++j) {
      const auto& n = list[j];
      if (bit(n) == 0) {
        std::string all;
        for (const auto k : names) all += (all.empty() ? "" : ", ") + std::string(k);
        at(j).error("unknown middleware '" + n + "' (" + all + ")");
      } else if (!configured(n)) {
        at(j).error("middleware '" + n + "' has no '" + n + ":' block in this file");
      }
    }
  }
};

}  // namespace rproxy::route
