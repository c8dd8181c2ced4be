// rproxy/codec/ws/handshake.hpp: the server side of the WebSocket opening handshake
// (RFC 6455 §4.2, permessage-deflate negotiation of RFC 7692 §5 and §7.1), on top of the
// HTTP/1.1 request parser (codec/http1/parser.hpp).
//
//     http1::request_parser p;
//     auto r = p.parse(buf);                          // ... until event::head / event::upgrade
//     static constexpr std::string_view protocols[] = {"chat.v2", "chat.v1"};  // preference
//     ws::handshake_options opt{.subprotocols = protocols, .deflate = {.enabled = true}};
//     auto up = ws::validate_upgrade(p.head(), opt);
//     if (!up) {                                       // 400, or 426 with the version header
//       send(ws::make_handshake_error_response(up.error()));
//       return close();
//     }
//     if (up->origin && !allowed(*up->origin)) return send(http1::make_error_response(403));
//     send(ws::make_accept_response(*up));            // 101 with Sec-WebSocket-Accept
//     ws::parser ws_parser;  if (up->deflate) ws_parser.set_deflate(*up->deflate);
//
// Checked: method GET, HTTP/1.1, a Host, Upgrade listing "websocket" and Connection listing
// "upgrade" (case-insensitive tokens), exactly one Sec-WebSocket-Key that is base64 of 16
// bytes, Sec-WebSocket-Version 13 (missing: 400; another: 426, both with
// "Sec-WebSocket-Version: 13"), Sec-WebSocket-Protocol a list of tokens, and
// Sec-WebSocket-Extensions well formed. The subprotocol chosen is the first of the server's
// list the client offered. permessage-deflate offers with unknown, repeated or out-of-range
// parameters are declined (RFC 7692 §5.1), and the next offer is tried. The returned views
// point into the request head and the options' protocol list.
//
// The accept key is SHA-1 (OpenSSL libcrypto) of the key and the RFC's GUID, in base64.
// Linking: this header needs OpenSSL::Crypto (e.g. through rproxy::tls), deflate.hpp (and so
// parser.hpp and writer.hpp) ZLIB::ZLIB; rproxy.hpp does not include codec/ws for that reason.
#pragma once

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/codec/ws/deflate.hpp>
#include <rproxy/core/base64.hpp>
#include <rproxy/core/result.hpp>

#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace rproxy::codec::ws {

enum class handshake_error : std::uint8_t {
  not_get = 1,           ///< the method is not GET
  not_http11,            ///< the request is not HTTP/1.1
  no_host,               ///< no Host field
  no_upgrade,            ///< Upgrade does not list "websocket"
  no_connection_upgrade, ///< Connection does not list "upgrade"
  bad_key,               ///< Sec-WebSocket-Key missing, repeated or not base64 of 16 bytes
  no_version,            ///< Sec-WebSocket-Version missing
  bad_version,           ///< Sec-WebSocket-Version other than 13 (426)
  bad_protocol,          ///< Sec-WebSocket-Protocol is not a list of tokens
  bad_extensions,        ///< Sec-WebSocket-Extensions is malformed
};

constexpr std::string_view to_string(handshake_error e) noexcept {
  switch (e) {
    case handshake_error::not_get: return "WebSocket upgrade must use GET";
    case handshake_error::not_http11: return "WebSocket upgrade must use HTTP/1.1";
    case handshake_error::no_host: return "missing Host";
    case handshake_error::no_upgrade: return "Upgrade must list websocket";
    case handshake_error::no_connection_upgrade: return "Connection must list upgrade";
    case handshake_error::bad_key: return "missing or invalid Sec-WebSocket-Key";
    case handshake_error::no_version: return "missing Sec-WebSocket-Version";
    case handshake_error::bad_version: return "unsupported Sec-WebSocket-Version";
    case handshake_error::bad_protocol: return "invalid Sec-WebSocket-Protocol";
    case handshake_error::bad_extensions: return "invalid Sec-WebSocket-Extensions";
  }
  return "invalid WebSocket handshake";
}

/// The HTTP status that answers a failed handshake: 426 for a version other than 13, else 400.
constexpr unsigned status_for(handshake_error e) noexcept { return e == handshake_error::bad_version ? 426 : 400; }

struct handshake_options {
  /// Subprotocols the server speaks, most preferred first.
  std::span<const std::string_view> subprotocols{};
  ws::deflate_options deflate{};
};

/// A valid upgrade request and what the server agreed to.
struct upgrade_request {
  std::string_view target;
  std::string_view host;
  std::string_view key;                    ///< Sec-WebSocket-Key as sent
  std::optional<std::string_view> origin;  ///< for an allow-list (RFC 6455 §10.2)
  std::string_view subprotocol;            ///< chosen (from the server's list), or empty
  std::optional<deflate_params> deflate;   ///< permessage-deflate, if negotiated
};

/// The GUID of RFC 6455 §1.3.
inline constexpr std::string_view accept_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)).
inline std::string accept_key(std::string_view key) {
  std::string in;
  in.reserve(key.size() + accept_guid.size());
  in.append(key).append(accept_guid);
  std::array<unsigned char, SHA_DIGEST_LENGTH> md{};
  ::SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), md.data());
  return base64::encode(std::string_view(reinterpret_cast<const char*>(md.data()), md.size()));
}

namespace detail {

/// True for a Sec-WebSocket-Key: 24 characters of standard base64 of 16 bytes.
inline bool valid_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  std::string raw;
  return base64::decode(key.substr(0, 22), raw, base64::standard) && raw.size() == 16;
}

/// One extension parameter: a name and, optionally, a value (a quoted value unquoted).
struct ext_param {
  std::string_view name;
  std::optional<std::string> value;
};

/// Parses one extension of Sec-WebSocket-Extensions (RFC 6455 §9.1):
///   extension = token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] )
/// starting at s[i]; stops after the "," that ends it (or at the end). False if malformed.
/// At most `max_params` parameters are kept (more: malformed, it bounds the work).
inline bool parse_extension(std::string_view s, std::size_t& i, std::string_view& name,
                            std::array<ext_param, 8>& params, std::size_t& count) {
  using http1::detail::is_tchar;
  using http1::detail::is_ws;
  const auto skip_ws = [&] {
    while (i < s.size() && is_ws(s[i])) ++i;
  };
  const auto token = [&]() -> std::string_view {
    const std::size_t b = i;
    while (i < s.size() && is_tchar(s[i])) ++i;
    return s.substr(b, i - b);
  };
  count = 0;
  skip_ws();
  name = token();
  if (name.empty()) return false;
  while (true) {
    skip_ws();
    if (i == s.size()) return true;
    if (s[i] == ',') {
      ++i;
      return true;
    }
    if (s[i] != ';') return false;
    ++i;
    skip_ws();
    ext_param p;
    p.name = token();
    if (p.name.empty()) return false;
    skip_ws();
    if (i < s.size() && s[i] == '=') {
      ++i;
      skip_ws();
      std::string v;
      if (i < s.size() && s[i] == '"') {
        ++i;
        while (true) {
          if (i == s.size()) return false;
          char c = s[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i == s.size()) return false;
            c = s[i++];
          }
          v.push_back(c);
        }
        // RFC 6455 §9.1: a quoted value must be a token once unquoted.
        if (!http1::detail::is_token(v)) return false;
      } else {
        v = std::string(token());
        if (v.empty()) return false;
      }
      p.value = std::move(v);
    }
    if (count == params.size()) return false;
    params[count++] = std::move(p);
  }
}

/// A window-bits value: "8" to "15".
inline std::optional<std::uint8_t> window_bits(const std::optional<std::string>& v) {
  if (!v || v->empty() || v->size() > 2 || (v->size() == 2 && (*v)[0] == '0')) return std::nullopt;
  std::uint64_t n = 0;
  if (!http1::detail::parse_decimal(*v, n) || n < 8 || n > 15) return std::nullopt;
  return static_cast<std::uint8_t>(n);
}

/// The response to one permessage-deflate offer, or nullopt to decline it (RFC 7692 §5.1, §7.1).
inline std::optional<deflate_params> answer_offer(std::span<const ext_param> params, const deflate_options& o) {
  bool snct = false, cnct = false, has_smwb = false, has_cmwb = false;
  std::uint8_t smwb = 15;
  std::optional<std::uint8_t> cmwb;
  for (const auto& p : params) {
    if (p.name == "server_no_context_takeover") {
      if (snct || p.value) return std::nullopt;
      snct = true;
    } else if (p.name == "client_no_context_takeover") {
      if (cnct || p.value) return std::nullopt;
      cnct = true;
    } else if (p.name == "server_max_window_bits") {
      const auto w = window_bits(p.value);
      if (has_smwb || !w) return std::nullopt;
      has_smwb = true;
      smwb = *w;
    } else if (p.name == "client_max_window_bits") {
      if (has_cmwb) return std::nullopt;
      has_cmwb = true;
      if (p.value) {
        cmwb = window_bits(p.value);
        if (!cmwb) return std::nullopt;
      }
    } else {
      return std::nullopt;  // a parameter not defined for an offer
    }
  }
  deflate_params r;
  r.server_no_context_takeover = snct || o.server_no_context_takeover;
  // The server may ask this even if the client did not offer it (RFC 7692 §7.1.1.2).
  r.client_no_context_takeover = cnct || o.client_no_context_takeover;
  const std::uint8_t our_smwb = std::clamp<std::uint8_t>(o.server_max_window_bits, 9, 15);
  r.server_max_window_bits = std::min(smwb, our_smwb);
  if (r.server_max_window_bits < 9) return std::nullopt;  // zlib cannot compress with 256 bytes
  r.has_server_max_window_bits = has_smwb || r.server_max_window_bits < 15;
  if (has_cmwb) {
    const std::uint8_t want = std::clamp<std::uint8_t>(o.client_max_window_bits, 8, 15);
    r.client_max_window_bits = std::min<std::uint8_t>(cmwb.value_or(15), want);
    r.has_client_max_window_bits = cmwb.has_value() || want < 15;
  }
  return r;
}

}  // namespace detail

/// Validates an upgrade request head (see the top of this file).
inline result<upgrade_request, handshake_error> validate_upgrade(const http1::request_head_view& h,
                                                                 const handshake_options& opt = {}) {
  using http1::detail::for_each_element;
  using http1::detail::is_token;
  if (h.method != "GET") return failure(handshake_error::not_get);
  if (h.version != http1::http_version::http11) return failure(handshake_error::not_http11);
  upgrade_request u;
  u.target = h.target;
  const auto host = h.fields.find("host");
  if (!host || h.fields.count("host") != 1) return failure(handshake_error::no_host);
  u.host = *host;
  if (!h.fields.has_token("upgrade", "websocket")) return failure(handshake_error::no_upgrade);
  if (!h.fields.has_token("connection", "upgrade")) return failure(handshake_error::no_connection_upgrade);
  const auto key = h.fields.find("sec-websocket-key");
  if (!key || h.fields.count("sec-websocket-key") != 1 || !detail::valid_key(*key))
    return failure(handshake_error::bad_key);
  u.key = *key;
  if (!h.fields.contains("sec-websocket-version")) return failure(handshake_error::no_version);
  bool v13 = false, other = false;
  for (const auto& f : h.fields)
    if (http1::detail::iequals(f.name, "sec-websocket-version"))
      for_each_element(f.value, [&](std::string_view v) {
        (v == "13" ? v13 : other) = true;
        return true;
      });
  if (!v13 || other) return failure(handshake_error::bad_version);
  u.origin = h.fields.find("origin");

  // Subprotocols: every element a token; the first of the server's list the client offered.
  bool protocols_ok = true;
  std::size_t best = opt.subprotocols.size();
  for (const auto& f : h.fields) {
    if (!http1::detail::iequals(f.name, "sec-websocket-protocol")) continue;
    protocols_ok = protocols_ok && for_each_element(f.value, [&](std::string_view p) {
      if (!is_token(p)) return false;
      for (std::size_t i = 0; i < best; ++i)
        if (opt.subprotocols[i] == p) best = i;
      return true;
    });
    if (f.value.empty() || f.value.find_first_not_of(", \t") == std::string_view::npos) protocols_ok = false;
  }
  if (!protocols_ok) return failure(handshake_error::bad_protocol);
  if (best < opt.subprotocols.size()) u.subprotocol = opt.subprotocols[best];

  // Extensions: every field well formed; the first acceptable permessage-deflate offer wins.
  for (const auto& f : h.fields) {
    if (!http1::detail::iequals(f.name, "sec-websocket-extensions")) continue;
    std::size_t i = 0;
    bool any = false;
    while (i < f.value.size()) {
      std::string_view name;
      std::array<detail::ext_param, 8> params;
      std::size_t count = 0;
      // An empty list element (",,") is allowed by the list syntax.
      while (i < f.value.size() && (f.value[i] == ',' || http1::detail::is_ws(f.value[i]))) ++i;
      if (i == f.value.size()) break;
      if (!detail::parse_extension(f.value, i, name, params, count)) return failure(handshake_error::bad_extensions);
      any = true;
      if (opt.deflate.enabled && !u.deflate && name == "permessage-deflate")
        u.deflate = detail::answer_offer(std::span<const detail::ext_param>(params.data(), count), opt.deflate);
    }
    if (!any) return failure(handshake_error::bad_extensions);
  }
  return u;
}

/// The 101 response that accepts `u`, plus `extra` fields (e.g. Set-Cookie).
inline std::string make_accept_response(const upgrade_request& u, const http1::fields& extra = {}) {
  http1::response_head h{101, "Switching Protocols"};
  h.fields.add("Upgrade", "websocket").add("Connection", "Upgrade").add("Sec-WebSocket-Accept", accept_key(u.key));
  if (!u.subprotocol.empty()) h.fields.add("Sec-WebSocket-Protocol", u.subprotocol);
  if (u.deflate) h.fields.add("Sec-WebSocket-Extensions", u.deflate->to_string());
  for (const auto& f : extra) h.fields.add(f.name, f.value);
  return http1::serialize(h);
}

/// The 400 or 426 response for a failed handshake; both carry "Sec-WebSocket-Version: 13"
/// when the version was the problem. The connection closes afterwards.
inline std::string make_handshake_error_response(handshake_error e) {
  http1::fields extra;
  if (e == handshake_error::bad_version || e == handshake_error::no_version) {
    extra.add("Sec-WebSocket-Version", "13");
    if (e == handshake_error::bad_version) extra.add("Upgrade", "websocket").add("Connection", "Upgrade");
  }
  return http1::make_error_response(status_for(e), to_string(e), extra);
}

}  // namespace rproxy::codec::ws
