// rproxy/middleware/request_view.hpp: what the security stages need to read from a protocol
// message, as small concepts the codecs satisfy, and the credential lookup built on them.
//
// A codec's hello / message type satisfies any subset of (all return values are views into the
// message, valid for the duration of the hook call):
//
//   r.header(name)  -> std::optional<std::string_view>   first value of a header, name matched
//                                                        case-insensitively (HTTP, WS upgrade)
//   r.cookie(name)  -> std::optional<std::string_view>   a cookie from the Cookie header
//   r.query(name)   -> std::optional<std::string_view>   a query parameter, percent-decoded
//   r.username()    -> std::optional<std::string_view>   a protocol user name (Minecraft login)
//   r.operation()   -> std::string_view                  the kind of operation this message is,
//                                                        for rate limits ("message", "join", ...)
//
// Stages use the free functions header_of, cookie_of, ... which return nullopt when the type
// does not provide that accessor, so one stage serves every protocol:
//
//     auto token = rproxy::middleware::find_credential(req, cfg.sources);
#pragma once

#include <concepts>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace rproxy::middleware {

template <class R>
concept has_headers = requires(const R& r, std::string_view n) {
  { r.header(n) } -> std::convertible_to<std::optional<std::string_view>>;
};
template <class R>
concept has_cookies = requires(const R& r, std::string_view n) {
  { r.cookie(n) } -> std::convertible_to<std::optional<std::string_view>>;
};
template <class R>
concept has_query = requires(const R& r, std::string_view n) {
  { r.query(n) } -> std::convertible_to<std::optional<std::string_view>>;
};
template <class R>
concept has_username = requires(const R& r) {
  { r.username() } -> std::convertible_to<std::optional<std::string_view>>;
};
template <class R>
concept has_operation = requires(const R& r) {
  { r.operation() } -> std::convertible_to<std::string_view>;
};

/// A message the security stages can read something from.
template <class R>
concept request_view = has_headers<R> || has_cookies<R> || has_query<R> || has_username<R>;

template <class R>
std::optional<std::string_view> header_of(const R& r, std::string_view name) {
  if constexpr (has_headers<R>) return r.header(name);
  else return std::nullopt;
}
template <class R>
std::optional<std::string_view> cookie_of(const R& r, std::string_view name) {
  if constexpr (has_cookies<R>) return r.cookie(name);
  else return std::nullopt;
}
template <class R>
std::optional<std::string_view> query_of(const R& r, std::string_view name) {
  if constexpr (has_query<R>) return r.query(name);
  else return std::nullopt;
}
template <class R>
std::optional<std::string_view> username_of(const R& r) {
  if constexpr (has_username<R>) return r.username();
  else return std::nullopt;
}
template <class R>
std::optional<std::string_view> operation_of(const R& r) {
  if constexpr (has_operation<R>) return std::string_view(r.operation());
  else return std::nullopt;
}

/// Where a credential (JWT, API key) is looked for.
struct credential_source {
  enum class place : unsigned char { header, cookie, query };
  place from = place::header;
  std::string name = "Authorization";
  /// Header only: the auth scheme that must prefix the value ("Bearer" -> "Bearer <token>",
  /// matched case-insensitively). Empty: the whole header value is the credential.
  std::string scheme = "Bearer";
};

namespace detail {
inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}
}  // namespace detail

/// The first non-empty credential found in the sources, in order (nullopt: none).
template <class R>
std::optional<std::string_view> find_credential(const R& r, std::span<const credential_source> sources) {
  for (const auto& s : sources) {
    std::optional<std::string_view> v;
    switch (s.from) {
      case credential_source::place::header: {
        v = header_of(r, s.name);
        if (v && !s.scheme.empty()) {
          std::string_view h = detail::trim(*v);
          if (h.size() > s.scheme.size() && detail::iequals(h.substr(0, s.scheme.size()), s.scheme) &&
              (h[s.scheme.size()] == ' ' || h[s.scheme.size()] == '\t'))
            v = h.substr(s.scheme.size() + 1);
          else
            v = std::nullopt;
        }
        break;
      }
      case credential_source::place::cookie: v = cookie_of(r, s.name); break;
      case credential_source::place::query: v = query_of(r, s.name); break;
    }
    if (v) {
      std::string_view t = detail::trim(*v);
      if (!t.empty()) return t;
    }
  }
  return std::nullopt;
}

}  // namespace rproxy::middleware
