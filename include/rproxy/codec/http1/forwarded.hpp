// rproxy/codec/http1/forwarded.hpp: the fields a proxy writes to say who its client is.
//
// `X-Forwarded-For`, `Forwarded` (RFC 7239), `X-Real-IP`, `X-Forwarded-Host` and
// `X-Forwarded-Proto` are believed by backends, so a client must not choose them. When the peer
// is a trusted proxy (the caller decides, e.g. from a list of CIDRs), its values are kept and
// extended with the peer's address; from anyone else they are replaced:
//
//     http1::add_forwarding_fields(up.fields, head.fields,
//                                  {.peer = "192.0.2.7", .host = host, .proto = "http", .trusted = false});
//
// The client's own forwarding fields are not copied by copy_forwarded_fields (forward.hpp).
#pragma once

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>

#include <string>
#include <string_view>

namespace rproxy::codec::http1 {

/// The hop from the client to this proxy.
struct forwarding_hop {
  std::string_view peer{};   ///< the peer's address, as text (IPv6 without brackets)
  std::string_view host{};   ///< the request's Host ("" when it has none)
  std::string_view proto{};  ///< "http" or "https"
  bool trusted = false;    ///< the peer is a proxy whose forwarding fields are believed
};

namespace detail {

/// All lines of field `name` joined with ", " (RFC 9110 §5.3), or "" when absent.
template <class Fields>
std::string joined_field(const Fields& in, std::string_view name) {
  std::string out;
  for (const auto& f : in) {
    if (!iequals(f.name, name) || f.value.empty()) continue;
    if (!out.empty()) out += ", ";
    out += f.value;
  }
  return out;
}

/// A node for Forwarded (RFC 7239 §6): IPv6 in quotes and brackets.
inline std::string forwarded_node(std::string_view addr) {
  if (addr.find(':') == std::string_view::npos) return std::string(addr);
  std::string s = "\"[";
  s.append(addr).append("]\"");
  return s;
}

/// A Forwarded value: a token, or a quoted string when it is not one.
inline std::string forwarded_value(std::string_view v) {
  if (is_token(v)) return std::string(v);
  std::string s = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') s += '\\';
    s += c;
  }
  s += '"';
  return s;
}

}  // namespace detail

/// Writes the forwarding fields for `hop` into `out`, from the client's fields `in` (which
/// are extended only when hop.trusted). `out` must not hold forwarding fields yet.
template <class Fields>
void add_forwarding_fields(fields& out, const Fields& in, const forwarding_hop& hop) {
  std::string xff, fwd;
  if (hop.trusted) {
    xff = detail::joined_field(in, "x-forwarded-for");
    fwd = detail::joined_field(in, "forwarded");
  }
  if (!xff.empty()) xff += ", ";
  xff += hop.peer;
  out.add("X-Forwarded-For", xff);

  if (!fwd.empty()) fwd += ", ";
  fwd.reserve(fwd.size() + 32 + 2 * hop.peer.size() + 2 * hop.host.size() + hop.proto.size());  // (one allocation, not one per append)
  fwd.append("for=").append(detail::forwarded_node(hop.peer));
  if (!hop.host.empty()) fwd.append(";host=").append(detail::forwarded_value(hop.host));
  fwd.append(";proto=").append(hop.proto);
  out.add("Forwarded", fwd);

  // The first hop's view: a trusted proxy's value is kept, else this hop's.
  const auto kept = [&](std::string_view name) -> std::string {
    if (!hop.trusted) return {};
    auto v = in.find(name);
    return v ? std::string(*v) : std::string{};
  };
  auto real_ip = kept("x-real-ip");
  out.add("X-Real-IP", real_ip.empty() ? hop.peer : std::string_view(real_ip));
  auto fhost = kept("x-forwarded-host");
  if (fhost.empty()) fhost = std::string(hop.host);
  if (!fhost.empty()) out.add("X-Forwarded-Host", fhost);
  auto fproto = kept("x-forwarded-proto");
  out.add("X-Forwarded-Proto", fproto.empty() ? hop.proto : std::string_view(fproto));
}

}  // namespace rproxy::codec::http1
