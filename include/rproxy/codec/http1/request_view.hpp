// rproxy/codec/http1/request_view.hpp: a parsed request head as the security stages read it
// (middleware/request_view.hpp: header(), cookie(), query()), plus the two small parsers that
// needs: Cookie header values (RFC 6265 §4.2.1) and query strings (percent-decoded).
//
//     http1::request_parser p;
//     if (p.parse(buf).what == http1::event::head) {
//       http1::request_view req{p.head()};        // views into buf, like p.head()
//       req.header("authorization");               // first value, case-insensitive name
//       req.cookie("session");                     // from any Cookie field, quotes removed
//       req.query("api_key");                      // percent-decoded ('+' is a space)
//       auto v = pipeline.hello(ctx, req);         // the hello of an HTTP pipeline
//     }
//
// Every returned view is valid while the head's bytes are and the view object lives (decoded
// query values are kept in the view). Nothing here allocates unless a query value needs
// decoding. A malformed escape ("%4", "%zz") makes the parameter absent, not a guess.
#pragma once

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>

#include <cstddef>
#include <forward_list>
#include <optional>
#include <string>
#include <string_view>

namespace rproxy::codec::http1 {

/// The value of the cookie `name` in one Cookie field value ("a=1; b=\"2\""): the first pair
/// whose name equals `name` exactly, with one pair of surrounding DQUOTEs removed.
constexpr std::optional<std::string_view> find_cookie(std::string_view header, std::string_view name) noexcept {
  if (name.empty()) return std::nullopt;
  while (!header.empty()) {
    const auto semi = header.find(';');
    std::string_view pair = detail::trim_ows(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (detail::trim_ows(pair.substr(0, eq)) != name) continue;
    std::string_view value = detail::trim_ows(pair.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    return value;
  }
  return std::nullopt;
}

/// Appends to `out` the pairs of one Cookie field value whose name is not `name` (as
/// find_cookie compares names), each as sent, joined with "; " (and after what `out` holds);
/// returns how many pairs named `name` were left out. Empty pieces ("a=1;;") are dropped; a
/// piece without '=' is kept. A credential cookie a proxy must not pass on, the others kept.
inline std::size_t append_cookies_without(std::string& out, std::string_view header, std::string_view name) {
  std::size_t dropped = 0;
  while (!header.empty()) {
    const auto semi = header.find(';');
    const std::string_view pair = detail::trim_ows(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    if (!name.empty() && eq != std::string_view::npos && detail::trim_ows(pair.substr(0, eq)) == name) {
      ++dropped;
      continue;
    }
    if (!out.empty()) out += "; ";
    out += pair;
  }
  return dropped;
}

/// Percent-decodes `in` into `out` (replacing it); `+` becomes a space when `plus_is_space`
/// (query strings). False, with `out` unspecified, on a truncated or non-hex escape.
inline bool percent_decode(std::string_view in, std::string& out, bool plus_is_space = true) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = detail::hex_value(in[i + 1]), lo = detail::hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += plus_is_space && c == '+' ? ' ' : c;
    }
  }
  return true;
}

/// The query of a request-target (after the first '?'), or empty.
constexpr std::string_view query_of_target(std::string_view target) noexcept {
  const auto q = target.find('?');
  return q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
}

/// The path of a request-target (before the first '?').
constexpr std::string_view path_of_target(std::string_view target) noexcept {
  return target.substr(0, target.find('?'));
}

namespace detail {
/// Whether a query parameter's still-encoded name `raw` decodes to `name` (`scratch`: storage).
inline bool query_name_is(std::string_view raw, std::string_view name, std::string& scratch) {
  return raw.find_first_of("%+") == std::string_view::npos ? raw == name : percent_decode(raw, scratch) && scratch == name;
}
}  // namespace detail

/// The still-encoded value of the first parameter whose decoded name is `name` in a query
/// string ("a=1&b=x%20y&flag"); a parameter without '=' has an empty value.
inline std::optional<std::string_view> find_query_raw(std::string_view query, std::string_view name) {
  std::string decoded;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const auto eq = pair.find('=');
    if (detail::query_name_is(pair.substr(0, eq), name, decoded))
      return eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
  }
  return std::nullopt;
}

/// `target` without the query parameters whose decoded name is `name`: the others kept as
/// sent and in order, no '?' when none is left (a credential a proxy must not pass on). An
/// empty name removes nothing.
inline std::string without_query_param(std::string_view target, std::string_view name) {
  if (name.empty()) return std::string(target);
  const auto q = target.find('?');
  std::string out(target.substr(0, q));
  if (q == std::string_view::npos) return out;
  std::string_view query = target.substr(q + 1);
  std::string decoded;
  bool first = true;
  for (;;) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (!detail::query_name_is(pair.substr(0, pair.find('=')), name, decoded)) {
      out += first ? '?' : '&';
      out += pair;
      first = false;
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return out;
}

/// A request head as the middleware request_view concept: header(), cookie(), query().
class request_view {
public:
  explicit request_view(const request_head_view& head) noexcept : head_(&head) {}

  const request_head_view& head() const noexcept { return *head_; }
  std::string_view method() const noexcept { return head_->method; }
  std::string_view target() const noexcept { return head_->target; }
  std::string_view path() const noexcept { return path_of_target(head_->target); }

  std::optional<std::string_view> header(std::string_view name) const noexcept { return head_->fields.find(name); }

  std::optional<std::string_view> cookie(std::string_view name) const noexcept {
    for (const auto& f : head_->fields)
      if (detail::iequals(f.name, "cookie"))
        if (auto v = find_cookie(f.value, name)) return v;
    return std::nullopt;
  }

  std::optional<std::string_view> query(std::string_view name) const {
    auto raw = find_query_raw(query_of_target(head_->target), name);
    if (!raw || raw->find_first_of("%+") == std::string_view::npos) return raw;
    std::string out;
    if (!percent_decode(*raw, out)) return std::nullopt;
    return std::string_view(decoded_.emplace_front(std::move(out)));
  }

private:
  const request_head_view* head_;
  mutable std::forward_list<std::string> decoded_;  // stable storage for decoded query values (empty: no allocation)
};

}  // namespace rproxy::codec::http1
