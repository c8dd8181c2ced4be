// rproxy/cluster/reply.hpp: one Redis reply, owned (hiredis frees its own reply when the callback
// returns, so the client copies it into this).
//
//     reply r = ...;                       // from redis_client::async_command
//     if (r.type == reply::kind::integer) use(r.integer);
//     if (auto s = r.text()) use(*s);      // a bulk string or a status
//     for (const reply& e : r.elements) ...
//
// The parser is hiredis' (RESP2); this is only its result, bounded by what hiredis accepts
// (nesting depth 7) and, in the client, by `max_reply_elements`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rproxy::cluster {

struct reply {
  enum class kind : std::uint8_t { nil, status, error, integer, string, array };

  kind type = kind::nil;
  std::int64_t integer = 0;
  std::string str;               ///< string, status or error text
  std::vector<reply> elements;   ///< array

  bool is_nil() const noexcept { return type == kind::nil; }
  bool is_error() const noexcept { return type == kind::error; }
  /// A bulk string or a status line; nullopt for any other type.
  std::optional<std::string_view> text() const noexcept {
    if (type == kind::string || type == kind::status) return std::string_view(str);
    return std::nullopt;
  }
  /// An integer reply, or a string holding a decimal integer (what Lua numbers become).
  std::optional<std::int64_t> as_integer() const noexcept {
    if (type == kind::integer) return integer;
    if (type != kind::string || str.empty() || str.size() > 20) return std::nullopt;
    std::int64_t v = 0;
    std::size_t i = 0;
    const bool neg = str[0] == '-';
    if (neg) i = 1;
    if (i == str.size()) return std::nullopt;
    for (; i < str.size(); ++i) {
      if (str[i] < '0' || str[i] > '9') return std::nullopt;
      v = v * 10 + (str[i] - '0');
    }
    return neg ? -v : v;
  }
};

}  // namespace rproxy::cluster
