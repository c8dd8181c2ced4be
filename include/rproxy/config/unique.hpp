// rproxy/config/unique.hpp: a check for a config's validate(): no two items of a list share a
// key (a name, a listen address). The error stands at the later item's field, with its line.
//
//     void validate(cfg::validator& v) const {
//       cfg::validate_unique<&route_config::name>(v.at(&config::routes), routes, "duplicate route name");
//       cfg::validate_unique<&route_config::listen>(v.at(&config::routes), routes, "two routes listen on");
//     }
//
// reports `routes[2].name: duplicate route name 'api'` (a key is shown as config::to_text
// renders it: an endpoint as host:port).
#pragma once

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/config/validator.hpp>

namespace rproxy::config {

/// The text a key is compared by and shown as: itself for a string, else its to_string().
inline const std::string& key_text(const std::string& s) { return s; }
template <class K>
std::string key_text(const K& k) {
  return k.to_string();
}

/// Reports `message 'key'` at `list[i].Member` for each item whose Member repeats an earlier
/// item's. `list` is the validator at the list; items with an empty key are skipped (a
/// required-field check reports those).
template <auto Member, class Item>
void validate_unique(const validator& list, const std::vector<Item>& items, std::string_view message) {
  std::set<std::string, std::less<>> seen;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string key = key_text(items[i].*Member);
    if (key.empty()) continue;
    if (!seen.insert(key).second) list.at(i).at(Member).error(std::string(message) + " '" + key + "'");
  }
}

}  // namespace rproxy::config
