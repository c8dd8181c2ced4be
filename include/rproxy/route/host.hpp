// rproxy/route/host.hpp: routing by host name (Minecraft handshake address, HTTP Host, TLS
// SNI): exact names and wildcards, case-insensitive.
//
//     rproxy::route::host_table<int> t;
//     t.add("lobby.example.com", 1);        // exact
//     t.add("*.games.example.com", 2);      // any name below games.example.com (not itself)
//     t.add("*", 3);                        // anything else (a catch-all, tried last)
//     t.find("LOBBY.example.com.");         // -> 1 (ASCII case and one trailing dot ignored)
//     t.find("a.b.games.example.com");      // -> 2 (the longest matching wildcard wins)
//
// A lookup is one hash probe for the exact name, then one per label for the wildcards: a
// handful of probes for any real name, whatever the size of the table. Tables are built on the
// control path (config load) and read-only afterwards, so any number of threads may find().
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace rproxy::route {

/// The routing form of a host name: ASCII lowercase, one trailing dot dropped.
inline std::string normalize_host(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  std::string out(host);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/// Whether `pattern` is a name this table accepts: "*", "*.suffix" or a name without '*'.
inline bool is_valid_host_pattern(std::string_view pattern) {
  if (pattern.empty()) return false;
  if (pattern == "*") return true;
  std::string_view name = pattern;
  if (pattern.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.find('*') != std::string_view::npos) return false;
  if (name.front() == '.' || name.find("..") != std::string_view::npos) return false;
  for (char c : name)
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == ':') return false;
  return true;
}

template <class T>
class host_table {
public:
  /// Adds a pattern (see is_valid_host_pattern). Returns false if it was already present (the
  /// first value is kept) or is not valid.
  bool add(std::string_view pattern, T value) {
    if (!is_valid_host_pattern(pattern)) return false;
    if (pattern == "*") {
      if (any_) return false;
      any_ = std::move(value);
      return true;
    }
    if (pattern.starts_with("*.")) return wild_.emplace(normalize_host(pattern.substr(2)), std::move(value)).second;
    return exact_.emplace(normalize_host(pattern), std::move(value)).second;
  }

  /// The value for a host: exact match, else the longest wildcard suffix, else the catch-all.
  const T* find(std::string_view host) const {
    const std::string h = normalize_host(host);
    if (auto it = exact_.find(h); it != exact_.end()) return &it->second;
    // "*.x.y" matches "a.x.y" and "a.b.x.y": try the suffixes after each dot, longest first.
    for (std::size_t dot = h.find('.'); dot != std::string::npos; dot = h.find('.', dot + 1)) {
      if (dot == 0) continue;
      if (auto it = wild_.find(std::string_view(h).substr(dot + 1)); it != wild_.end()) return &it->second;
    }
    return any_ ? &*any_ : nullptr;
  }

  std::size_t size() const noexcept { return exact_.size() + wild_.size() + (any_ ? 1 : 0); }
  bool empty() const noexcept { return size() == 0; }

private:
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, T, hash, std::equal_to<>> exact_;
  std::unordered_map<std::string, T, hash, std::equal_to<>> wild_;
  std::optional<T> any_;
};

}  // namespace rproxy::route
