// rproxy/config/suggest.hpp: "did you mean 'listen'?" for misspelled keys and names.
//
//     std::vector<std::string> pools = {"main", "minigames"};
//     if (auto s = rproxy::config::did_you_mean("mian", pools)) msg += " (did you mean '" + *s + "'?)";
//
// Uses the optimal-string-alignment distance (edits plus swaps of neighbours, so "prot" is one
// step from "port") and accepts at most one edit per three characters, at least one.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rproxy::config {

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// adjacent characters each cost one.
inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::size_t> d((n + 1) * (m + 1));
  auto at = [&](std::size_t i, std::size_t j) -> std::size_t& { return d[i * (m + 1) + j]; };
  for (std::size_t i = 0; i <= n; ++i) at(i, 0) = i;
  for (std::size_t j = 0; j <= m; ++j) at(0, j) = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
    }
  }
  return at(n, m);
}

/// The candidate closest to `word` if it is close enough to be a likely typo; the first one
/// wins a tie. `Range` is any range of things convertible to std::string_view.
template <class Range>
std::optional<std::string> did_you_mean(std::string_view word, const Range& candidates) {
  const std::size_t limit = std::max<std::size_t>(1, word.size() / 3);
  std::optional<std::string> best;
  std::size_t best_d = limit + 1;
  for (const auto& c : candidates) {
    const std::string_view cv{c};
    if (cv == word) continue;
    const std::size_t dist = edit_distance(word, cv);
    if (dist < best_d) {
      best_d = dist;
      best = std::string(cv);
    }
  }
  return best;
}

}  // namespace rproxy::config
