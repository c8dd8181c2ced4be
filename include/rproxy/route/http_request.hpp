// rproxy/route/http_request.hpp: what the HTTP router reads of a request, whatever the
// protocol (HTTP/1.1 through route/http1_request.hpp; HTTP/2 and HTTP/3 streams through their
// own small adapters), and the small readers of cookies and query strings it needs.
//
//     struct my_request {                                   // a model of http_route_request
//       std::string_view method() const;                    // "GET"
//       std::string_view authority() const;                 // Host or :authority, port and all
//       std::string_view path() const;                      // "/a/b", raw, without the query
//       std::string_view query() const;                     // "x=1&y=2", raw, without the '?'
//       std::optional<std::string_view> header(std::string_view name) const;   // case-insensitive
//       // optional: std::optional<std::string_view> cookie(std::string_view name) const;
//     };
//
// Without a cookie() member, cookies are read from header("cookie") (HTTP/2 and HTTP/3 may
// split Cookie into several fields: their adapters give a cookie() that reads them all).
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <string_view>

#include <rproxy/route/normalize_path.hpp>

namespace rproxy::route {

template <class R>
concept http_route_request = requires(const R& r, std::string_view name) {
  { r.method() } -> std::convertible_to<std::string_view>;
  { r.authority() } -> std::convertible_to<std::string_view>;
  { r.path() } -> std::convertible_to<std::string_view>;
  { r.query() } -> std::convertible_to<std::string_view>;
  { r.header(name) } -> std::convertible_to<std::optional<std::string_view>>;
};

namespace detail {

constexpr std::string_view trim_spaces(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// Whether the percent-encoded `raw` ('+' is a space) decodes to `text`; a bad escape never
/// equals anything.
constexpr bool decoded_equals(std::string_view raw, std::string_view text) noexcept {
  std::size_t j = 0;
  for (std::size_t i = 0; i < raw.size(); ++i, ++j) {
    char c = raw[i];
    if (c == '%') {
      if (i + 2 >= raw.size()) return false;
      const int hi = hex_digit(raw[i + 1]), lo = hex_digit(raw[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+') {
      c = ' ';
    }
    if (j >= text.size() || text[j] != c) return false;
  }
  return j == text.size();
}

}  // namespace detail

/// The value of cookie `name` in a Cookie field value ("a=1; b=\"2\""), quotes removed.
constexpr std::optional<std::string_view> find_cookie_value(std::string_view header, std::string_view name) noexcept {
  if (name.empty()) return std::nullopt;
  while (!header.empty()) {
    const auto semi = header.find(';');
    const std::string_view pair = detail::trim_spaces(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos || detail::trim_spaces(pair.substr(0, eq)) != name) continue;
    std::string_view v = detail::trim_spaces(pair.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return v;
  }
  return std::nullopt;
}

/// The raw (still encoded) value of the first query parameter whose decoded name is `name`
/// ("" for a parameter without '=').
constexpr std::optional<std::string_view> find_query_value(std::string_view query, std::string_view name) noexcept {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (detail::decoded_equals(pair.substr(0, eq), name))
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
  }
  return std::nullopt;
}

/// The request's cookie `name`: its cookie() if it has one, else from its Cookie header.
template <http_route_request R>
std::optional<std::string_view> request_cookie(const R& req, std::string_view name) {
  if constexpr (requires { { req.cookie(name) } -> std::convertible_to<std::optional<std::string_view>>; }) {
    return req.cookie(name);
  } else {
    if (auto h = req.header("cookie")) return find_cookie_value(*h, name);
    return std::nullopt;
  }
}

}  // namespace rproxy::route
