// rproxy/codec/mc/handshake.hpp: the Handshake packet (handshaking state, serverbound 0x00),
// identical from 1.7.2 to today: protocol version (VarInt), server address (String(255)),
// server port (unsigned short), next state (VarInt: 1 status, 2 login, 3 transfer).
//
// The server address is kept exactly as sent; address() derives the routing key from it:
// everything from the first '\0' on is a suffix (Forge "\0FML\0", "\0FML2\0", "\0FML3\0",
// "\0FORGE", or forwarding data such as BungeeCord's "\0ip\0uuid\0properties"), then one
// trailing dot is stripped and ASCII letters are lowercased.
//
//     auto p = mc::split_packet(frame.payload);
//     auto hs = mc::parse_handshake(p->body);             // result<handshake>
//     auto a = hs->address();      // a.host == "mc.example.com", a.forge == forge_marker::fml2
//     mc::bytes out;
//     mc::append_handshake(out, mc::with_host(*hs, "10.0.0.5"));   // keeps the Forge suffix
//     if (mc::has_forwarding_data(*hs)) hs = mc::without_forwarding_data(*hs);  // keeps Forge
#pragma once

#include <algorithm>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/frame.hpp>
#include <rproxy/codec/mc/packet.hpp>
#include <rproxy/codec/mc/reader.hpp>
#include <rproxy/codec/mc/varint.hpp>
#include <rproxy/codec/mc/writer.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::codec::mc {

/// The handshake's next state ("intention").
enum class intent : std::int32_t { status = 1, login = 2, transfer = 3 };

/// A mod-loader marker found in the server address suffix.
enum class forge_marker : std::uint8_t {
  none,   ///< no '\0' in the address
  fml,    ///< "\0FML\0"   Forge 1.7-1.12
  fml2,   ///< "\0FML2\0"  Forge 1.13-1.17
  fml3,   ///< "\0FML3\0"  Forge 1.18-1.20.1
  forge,  ///< "\0FORGE"   Forge/NeoForge 1.20.2+ (any text may follow)
  other,  ///< some other suffix, e.g. BungeeCord IP forwarding
};

/// What a server address means for routing.
struct address_parts {
  std::string host;       ///< routing key: before the first '\0', one trailing dot stripped,
                          ///< ASCII lowercased
  std::string suffix;     ///< from the first '\0' on, verbatim ("" if none)
  forge_marker forge = forge_marker::none;
  bool trailing_dot = false;  ///< the host part ended with '.'

  friend bool operator==(const address_parts&, const address_parts&) = default;
};

inline address_parts split_address(std::string_view address) {
  address_parts a;
  const auto nul = address.find('\0');
  auto host = address.substr(0, nul);
  if (nul != std::string_view::npos) a.suffix.assign(address.substr(nul));
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
    a.trailing_dot = true;
  }
  a.host.reserve(host.size());
  for (const char c : host) a.host.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
  const std::string_view s = a.suffix;
  if (s.empty()) {
    a.forge = forge_marker::none;
  } else if (s.starts_with(std::string_view("\0FML\0", 5))) {
    a.forge = forge_marker::fml;
  } else if (s.starts_with(std::string_view("\0FML2\0", 6))) {
    a.forge = forge_marker::fml2;
  } else if (s.starts_with(std::string_view("\0FML3\0", 6))) {
    a.forge = forge_marker::fml3;
  } else if (s.starts_with(std::string_view("\0FORGE", 6))) {
    a.forge = forge_marker::forge;
  } else {
    a.forge = forge_marker::other;
  }
  return a;
}

struct handshake {
  std::int32_t protocol_version = 0;
  std::string server_address;  ///< exactly as sent (suffixes, dot and case included)
  std::uint16_t server_port = 0;
  intent next_state = intent::status;

  /// The routing view of server_address.
  address_parts address() const { return split_address(server_address); }

  friend bool operator==(const handshake&, const handshake&) = default;
};

struct handshake_options {
  /// Max server address length in UTF-16 units (vanilla: 255). Raise it only to accept
  /// BungeeCord-style forwarding data from a trusted proxy.
  std::size_t max_address_chars = 255;
};

/// Parses a handshake packet body (packet id + fields).
inline result<handshake> parse_handshake(byte_view body, const handshake_options& opt = {}) {
  reader r{body};
  auto id = r.read_varint();
  if (!id) return failure(id.error());
  if (*id != packet_id::handshake) return failure(make_error_code(error::unexpected_packet_id));
  auto proto = r.read_varint();
  if (!proto) return failure(proto.error());
  auto addr = r.read_string(opt.max_address_chars);
  if (!addr) return failure(addr.error());
  auto port = r.read_u16();
  if (!port) return failure(port.error());
  auto next = r.read_varint();
  if (!next) return failure(next.error());
  if (*next < 1 || *next > 3) return failure(make_error_code(error::bad_next_state));
  if (auto end = r.expect_end(); !end) return failure(end.error());
  return handshake{*proto, std::string(*addr), *port, static_cast<intent>(*next)};
}

/// Appends the packet body (id + fields), unframed.
inline void append_handshake_body(bytes& out, const handshake& hs) {
  append_varint(out, packet_id::handshake);
  append_varint(out, hs.protocol_version);
  append_string(out, hs.server_address);
  append_u16(out, hs.server_port);
  append_varint(out, static_cast<std::int32_t>(hs.next_state));
}

/// Appends the framed packet ([length][body]); handshakes are never compressed.
inline void append_handshake(bytes& out, const handshake& hs) {
  bytes body;
  body.reserve(hs.server_address.size() + 16);
  append_handshake_body(body, hs);
  append_frame(out, body);
}

/// A copy of `hs` addressed to `host` (written as given), keeping the original suffix (Forge
/// marker, forwarding data) unless `keep_suffix` is false. Port and the rest are unchanged.
inline handshake with_host(const handshake& hs, std::string_view host, bool keep_suffix = true) {
  handshake out = hs;
  out.server_address.assign(host);
  if (keep_suffix) {
    const auto nul = hs.server_address.find('\0');
    if (nul != std::string::npos) out.server_address.append(hs.server_address, nul);
  }
  return out;
}

/// The part of an address suffix that is a Forge marker ("\0FML\0", "\0FML2\0", "\0FML3\0",
/// or "\0FORGE" and its text up to the next '\0'); "" for anything else.
inline std::string_view forge_suffix(std::string_view suffix) {
  for (std::string_view m : {std::string_view("\0FML\0", 5), std::string_view("\0FML2\0", 6), std::string_view("\0FML3\0", 6)})
    if (suffix.starts_with(m)) return m;
  if (suffix.starts_with(std::string_view("\0FORGE", 6))) return suffix.substr(0, suffix.find('\0', 1));
  return {};
}

/// True when the server address carries more than the host and a Forge marker: forwarding
/// data such as BungeeCord's "\0ip\0uuid\0properties", which only a trusted proxy may send.
inline bool has_forwarding_data(const handshake& hs) {
  const std::string_view a = hs.server_address;
  const auto nul = std::find(a.begin(), a.end(), '\0');  // (not find(): g++ 12 -O3 misreads its memchr bound)
  if (nul == a.end()) return false;
  const std::string_view suffix = a.substr(static_cast<std::size_t>(nul - a.begin()));
  return forge_suffix(suffix).size() != suffix.size();
}

/// A copy of `hs` without forwarding data: the host as sent, then its Forge marker if any. A
/// backend in BungeeCord IP-forwarding mode then refuses the client instead of believing it.
inline handshake without_forwarding_data(const handshake& hs) {
  handshake out = hs;
  const std::string_view a = hs.server_address;
  const auto at = std::find(a.begin(), a.end(), '\0');
  if (at == a.end()) return out;
  const auto nul = static_cast<std::size_t>(at - a.begin());
  const auto forge = forge_suffix(a.substr(nul));
  out.server_address.resize(nul);
  out.server_address.append(forge);
  return out;
}

}  // namespace rproxy::codec::mc
