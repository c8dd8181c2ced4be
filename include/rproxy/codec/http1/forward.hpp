// rproxy/codec/http1/forward.hpp: which fields of a client's request a proxy forwards upstream.
//
// A reverse proxy rewrites the request head it sends to a backend. The rules here decide, per
// field line (and per trailer line), whether it is forwarded:
//
//   - hop-by-hop fields (RFC 9110 §7.6.1) and the framing fields the proxy re-sets itself
//     (Content-Length, Transfer-Encoding, Expect) are not;
//   - a field the client names in `Connection` is not, except the fields the proxy relies on
//     (`Connection: host` does not remove Host);
//   - the forwarding fields (X-Forwarded-*, Forwarded, X-Real-IP) are not: the proxy writes them
//     (forwarded.hpp), extending the client's values only for a trusted peer;
//   - names the proxy sets itself (`strip`, e.g. verified JWT claims as X-User) are not, and
//     names with `_` are dropped unless allowed, because CGI/WSGI backends read `X_User` and
//     `X-User` as the same HTTP_X_USER;
//   - request trailers are dropped, except names the route allows that pass every rule above.
//
// A request that came over HTTP/2 or HTTP/3 is framed anew for HTTP/1.1 (h2_request_framing):
// there a trailer section may follow a body of announced length, while HTTP/1.1 carries one
// only after a chunked body.
//
//     http1::forward_rules rules{.strip = claim_headers};
//     http1::fields up;
//     http1::copy_forwarded_fields(parser.head().fields, up, rules);
//     http1::append_last_chunk(out, http1::forwarded_trailers(head.fields, parser.trailers(), rules));
#pragma once

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/parser.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace rproxy::codec::http1 {

/// What a proxy strips from a request, beyond the fixed rules. Views: the caller keeps the
/// strings alive (they usually live in a config snapshot).
struct forward_rules {
  std::span<const std::string> strip{};           ///< names the proxy sets itself (claims)
  bool allow_underscore = false;                  ///< forward names containing '_'
  std::span<const std::string> allow_trailers{};  ///< request trailer names to forward
};

/// Why a field line is, or is not, forwarded.
enum class field_fate {
  forward,
  hop_by_hop,        ///< hop-by-hop or framing: the proxy sets its own
  connection_listed, ///< named by the client's Connection field
  forwarding,        ///< X-Forwarded-*, Forwarded, X-Real-IP: written by the proxy
  stripped,          ///< a name the proxy sets itself
  underscore,        ///< a name with '_' (not allowed)
  trailer_refused,   ///< a trailer the route does not allow
};

/// Hop-by-hop fields and the request framing fields a proxy re-sets.
constexpr bool is_hop_by_hop_field(std::string_view name) noexcept {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade",
                             "content-length", "expect", "trailer"})
    if (detail::iequals(name, h)) return true;
  return false;
}

/// Fields the proxy relies on: a Connection list never removes them.
constexpr bool is_protected_field(std::string_view name) noexcept {
  return detail::iequals(name, "host") || detail::iequals(name, "content-length") ||
         detail::iequals(name, "transfer-encoding");
}

/// The fields that say who the client is and how it reached the proxy.
constexpr bool is_forwarding_field(std::string_view name) noexcept {
  for (std::string_view h : {"x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-proto"})
    if (detail::iequals(name, h)) return true;
  return false;
}

/// The fate of a request field `name`, given all the request's fields (for Connection).
template <class Fields>
field_fate request_field_fate(std::string_view name, const Fields& all, const forward_rules& rules) {
  if (is_hop_by_hop_field(name)) return field_fate::hop_by_hop;
  if (is_forwarding_field(name)) return field_fate::forwarding;
  for (const auto& s : rules.strip)
    if (detail::iequals(name, s)) return field_fate::stripped;
  if (!rules.allow_underscore && name.find('_') != std::string_view::npos) return field_fate::underscore;
  if (!is_protected_field(name) && all.has_token("connection", name)) return field_fate::connection_listed;
  return field_fate::forward;
}

/// The fate of a request trailer `name`: a request field's rules, then the route's allow list.
/// Host is never taken from a trailer.
template <class Fields>
field_fate request_trailer_fate(std::string_view name, const Fields& headers, const forward_rules& rules) {
  if (const auto f = request_field_fate(name, headers, rules); f != field_fate::forward) return f;
  if (detail::iequals(name, "host")) return field_fate::trailer_refused;
  for (const auto& a : rules.allow_trailers)
    if (detail::iequals(name, a)) return field_fate::forward;
  return field_fate::trailer_refused;
}

/// Appends to `out` the fields of `in` that are forwarded.
template <class Fields>
void copy_forwarded_fields(const Fields& in, fields& out, const forward_rules& rules) {
  for (const auto& f : in)
    if (request_field_fate(f.name, in, rules) == field_fate::forward) out.add(f.name, f.value);
}

/// The trailers of a request that are forwarded (usually none).
template <class Fields, class Trailers>
fields forwarded_trailers(const Fields& headers, const Trailers& trailers, const forward_rules& rules) {
  fields out;
  if (rules.allow_trailers.empty()) return out;
  for (const auto& t : trailers)
    if (request_trailer_fate(t.name, headers, rules) == field_fate::forward) out.add(t.name, t.value);
  return out;
}

/// The framing for HTTP/1.1 of a request from an HTTP/2 or HTTP/3 client: `content_length` as
/// the client declared it; `ended`: its stream has ended (END_STREAM seen), `body_empty`: no
/// body byte has come, `has_trailers`: a trailer section came (all three as known when the
/// head goes out). Without a length the body goes chunked if there may be one. With a length
/// it keeps that length unless trailers may be forwarded (the rules allow some; none by
/// default) and may come (the stream is still open, or they came): then it goes chunked, so
/// they can follow the body. A request is not held to learn which: an upload keeps streaming,
/// and an HTTP/1.1 server must accept chunked requests (RFC 9112 §7).
inline message_info h2_request_framing(std::optional<std::uint64_t> content_length, bool ended, bool body_empty,
                                       bool has_trailers, const forward_rules& rules) noexcept {
  const bool may_trail = !rules.allow_trailers.empty() && (!ended || has_trailers);
  message_info info;
  info.chunked = content_length ? may_trail : !(ended && body_empty) || may_trail;
  info.has_content_length = content_length.has_value() && !info.chunked;
  info.content_length = info.has_content_length ? *content_length : 0;
  return info;
}

}  // namespace rproxy::codec::http1
