// rproxy/route/weighted_split.hpp: a weighted choice among a route's backend groups (a canary
// split), deterministic for a given 64-bit draw.
//
//     rproxy::route::weighted_split s{{90, 10}};     // stable 90 %, canary 10 %
//     std::mt19937_64 rng{seed};
//     std::size_t g = s.pick(rng());                 // a fresh draw per request
//     std::size_t h = s.pick(rproxy::route::sticky_hash(user));   // same user, same group
//
// A draw d picks the group whose cumulative weight range holds floor(d * total / 2^64), so a
// uniform draw gives each group weight/total of the requests exactly up to 2^-64 (no modulo
// bias). Groups of weight 0 are never picked. sticky_hash spreads keys over all 64 bits
// (balance/key.hpp's hash_key: FNV-1a, then a 64-bit finaliser): stable across runs, builds and
// machines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/balance/key.hpp>

namespace rproxy::route {

/// A stable 64-bit hash of a stickiness key (a header or cookie value): the balancers' key hash.
inline std::uint64_t sticky_hash(std::string_view key) noexcept { return balance::hash_key(key); }

class weighted_split {
public:
  weighted_split() = default;
  /// Weights in group order; their sum must be > 0 (checked when a route is built).
  explicit weighted_split(std::vector<std::uint32_t> weights) {
    bounds_.reserve(weights.size());
    for (auto w : weights) bounds_.push_back(total_ += w);
  }

  std::uint64_t total() const noexcept { return total_; }
  std::size_t size() const noexcept { return bounds_.size(); }

  /// The group for a uniform 64-bit draw (or a sticky_hash).
  std::size_t pick(std::uint64_t draw) const noexcept {
    if (bounds_.size() <= 1 || total_ == 0) return 0;
    const auto x = static_cast<std::uint64_t>((static_cast<unsigned __int128>(draw) * total_) >> 64);
    std::size_t i = 0;
    while (i + 1 < bounds_.size() && x >= bounds_[i]) ++i;
    return i;
  }

private:
  std::vector<std::uint64_t> bounds_;  // cumulative weights
  std::uint64_t total_ = 0;
};

}  // namespace rproxy::route
