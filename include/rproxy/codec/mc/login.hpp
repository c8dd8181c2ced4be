// rproxy/codec/mc/login.hpp: the login-state packets a proxy needs, and disconnect messages.
//
//   serverbound 0x00 Login Start      shape differs by version (versions.hpp login_start_shape):
//        ..1.18.2 (..758)   Name String(16)
//        1.19     (759)     Name, Has Sig Data Bool, [Timestamp Long, Public Key (VarInt-prefixed
//                           bytes, max 512), Signature (VarInt-prefixed bytes, max 4096)]
//        1.19.1-2 (760)     as 759, then Has Player UUID Bool, [Player UUID]
//        1.19.3-1.20.1 (761..763)  Name, Has Player UUID Bool, [Player UUID]
//        1.20.2+  (764..)   Name, Player UUID
//   clientbound 0x00 Disconnect (login)   Reason: JSON text component, String(262144)
//   clientbound 0x03 Set Compression      Threshold VarInt (1.8+); negative turns it off
//
//     auto ls = mc::parse_login_start(pkt.body, hs.protocol_version);   // ls->username
//     mc::bytes out = mc::make_disconnect(mc::state::login, "Server is starting...");
//     auto kick = mc::make_disconnect(mc::state::login, verdict.reason());   // rproxy reject
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/compression.hpp>
#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/frame.hpp>
#include <rproxy/codec/mc/packet.hpp>
#include <rproxy/codec/mc/reader.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/codec/mc/text_component.hpp>
#include <rproxy/codec/mc/uuid.hpp>
#include <rproxy/codec/mc/versions.hpp>
#include <rproxy/codec/mc/writer.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::codec::mc {

inline constexpr std::size_t max_username_chars = 16;
inline constexpr std::size_t max_public_key_bytes = 512;      ///< 1.19-1.19.2 signing key
inline constexpr std::size_t max_key_signature_bytes = 4096;  ///< its Mojang signature
inline constexpr std::size_t max_chat_json_chars = 262144;    ///< disconnect reason

/// The chat signing key a 1.19-1.19.2 client may send with Login Start.
struct signature_data {
  std::int64_t expires_at = 0;  ///< Timestamp: key expiry, ms since the epoch
  bytes public_key;             ///< X.509 DER
  bytes signature;

  friend bool operator==(const signature_data&, const signature_data&) = default;
};

struct login_start {
  std::string username;
  std::optional<signature_data> signature;  ///< 759-760 only, when the client sent one
  std::optional<uuid> player_uuid;          ///< 760+ (always present from 764)

  friend bool operator==(const login_start&, const login_start&) = default;
};

/// Vanilla's rule for a player name (1.18.2+ offline mode): 1-16 chars, printable ASCII, no space.
/// Not enforced by parse_login_start; for policy stages.
constexpr bool is_valid_username(std::string_view name) noexcept {
  if (name.empty() || name.size() > max_username_chars) return false;
  for (const char c : name)
    if (c <= 32 || c >= 127) return false;
  return true;
}

/// Parses a Login Start body (id + fields) in the shape of `protocol`. The name must be 1-16
/// UTF-16 units; an empty name is error::bad_username.
inline result<login_start> parse_login_start(byte_view body, std::int32_t protocol) {
  reader r{body};
  auto id = r.read_varint();
  if (!id) return failure(id.error());
  if (*id != packet_id::login_start) return failure(make_error_code(error::unexpected_packet_id));
  auto name = r.read_string(max_username_chars);
  if (!name) return failure(name.error());
  if (name->empty()) return failure(make_error_code(error::bad_username));
  login_start ls;
  ls.username.assign(*name);
  const auto shape = login_start_shape_of(protocol);
  if (shape == login_start_shape::name_sig || shape == login_start_shape::name_sig_optional_uuid) {
    auto has = r.read_bool();
    if (!has) return failure(has.error());
    if (*has) {
      auto ts = r.read_i64();
      if (!ts) return failure(ts.error());
      auto key = r.read_prefixed_bytes(max_public_key_bytes);
      if (!key) return failure(key.error());
      auto sig = r.read_prefixed_bytes(max_key_signature_bytes);
      if (!sig) return failure(sig.error());
      ls.signature = signature_data{*ts, bytes(key->begin(), key->end()), bytes(sig->begin(), sig->end())};
    }
  }
  if (shape == login_start_shape::name_sig_optional_uuid ||
      shape == login_start_shape::name_optional_uuid) {
    auto has = r.read_bool();
    if (!has) return failure(has.error());
    if (*has) {
      auto u = r.read_uuid();
      if (!u) return failure(u.error());
      ls.player_uuid = *u;
    }
  } else if (shape == login_start_shape::name_uuid) {
    auto u = r.read_uuid();
    if (!u) return failure(u.error());
    ls.player_uuid = *u;
  }
  if (auto end = r.expect_end(); !end) return failure(end.error());
  return ls;
}

/// Appends a Login Start body in the shape of `protocol`. Fields the version does not carry are
/// left out; from 764 on a missing player_uuid is a programmer error (std::invalid_argument).
inline void append_login_start_body(bytes& out, const login_start& ls, std::int32_t protocol) {
  const auto shape = login_start_shape_of(protocol);
  if (shape == login_start_shape::name_uuid && !ls.player_uuid)
    throw std::invalid_argument("mc::login_start: protocol 764+ needs a player UUID");
  append_varint(out, packet_id::login_start);
  append_string(out, ls.username);
  if (shape == login_start_shape::name_sig || shape == login_start_shape::name_sig_optional_uuid) {
    append_bool(out, ls.signature.has_value());
    if (ls.signature) {
      append_i64(out, ls.signature->expires_at);
      append_prefixed_bytes(out, ls.signature->public_key);
      append_prefixed_bytes(out, ls.signature->signature);
    }
  }
  if (shape == login_start_shape::name_sig_optional_uuid ||
      shape == login_start_shape::name_optional_uuid) {
    append_bool(out, ls.player_uuid.has_value());
    if (ls.player_uuid) append_uuid(out, *ls.player_uuid);
  } else if (shape == login_start_shape::name_uuid) {
    append_uuid(out, *ls.player_uuid);
  }
}

/// Appends a framed Login Start (sent before compression can be on).
inline void append_login_start(bytes& out, const login_start& ls, std::int32_t protocol) {
  bytes body;
  append_login_start_body(body, ls, protocol);
  append_frame(out, body);
}

/// Set Compression (clientbound 0x03): the threshold.
inline result<std::int32_t> parse_set_compression(byte_view body) {
  reader r{body};
  auto id = r.read_varint();
  if (!id) return failure(id.error());
  if (*id != packet_id::set_compression) return failure(make_error_code(error::unexpected_packet_id));
  auto t = r.read_varint();
  if (!t) return failure(t.error());
  if (auto end = r.expect_end(); !end) return failure(end.error());
  return *t;
}

/// Appends a framed Set Compression (itself never compressed).
inline void append_set_compression(bytes& out, std::int32_t threshold) {
  bytes body;
  append_varint(body, packet_id::set_compression);
  append_varint(body, threshold);
  append_frame(out, body);
}

/// Login Disconnect (clientbound 0x00): the reason, a JSON text component.
inline result<std::string> parse_login_disconnect(byte_view body) {
  reader r{body};
  auto id = r.read_varint();
  if (!id) return failure(id.error());
  if (*id != packet_id::login_disconnect) return failure(make_error_code(error::unexpected_packet_id));
  auto json = r.read_string(max_chat_json_chars);
  if (!json) return failure(json.error());
  if (auto end = r.expect_end(); !end) return failure(end.error());
  return std::string(*json);
}

/// Appends a Login Disconnect carrying `reason_json` (written as given), framed for `c`.
inline void append_login_disconnect(bytes& out, std::string_view reason_json, const compression& c = {}) {
  bytes body;
  body.reserve(reason_json.size() + 4);
  append_varint(body, packet_id::login_disconnect);
  append_string(body, reason_json);
  append_packet(out, body, c);
}

/// The text a client sees for a rejection with no message of its own.
constexpr std::string_view default_reject_message(reject_code code) noexcept {
  switch (code) {
    case reject_code::bad_request: return "Bad request.";
    case reject_code::unauthorized: return "You are not authorized to join this server.";
    case reject_code::forbidden: return "You are not allowed to join this server.";
    case reject_code::banned: return "You are banned from this server.";
    case reject_code::not_found: return "Unknown server address.";
    case reject_code::rate_limited: return "Too many connection attempts. Please wait.";
    case reject_code::too_many_connections: return "Too many connections from your address.";
    case reject_code::unavailable: return "The server is not available right now. Please try again later.";
    case reject_code::timeout: return "Timed out.";
    case reject_code::too_large: return "Packet too large.";
    case reject_code::internal: return "Internal proxy error.";
  }
  return "Disconnected.";
}

/// Renders `text` as what a client in state `s` shows as a refusal, as one framed packet:
///  - handshaking, login: Login Disconnect with a text component (use `login` once the
///    handshake said login, `c` once Set Compression was sent);
///  - status: a Status Response with `text` as the MOTD, protocol -1 and no player count.
/// configuration and play are not handled here (std::invalid_argument).
inline bytes make_disconnect(state s, std::string_view text, const compression& c = {}) {
  bytes out;
  switch (s) {
    case state::handshaking:
    case state::login: append_login_disconnect(out, text_component(text), c); break;
    case state::status: {
      status_info info;
      info.version_name = "rproxy";
      info.protocol = -1;
      info.players.reset();
      info.description = text_component(text);
      append_status_response(out, to_json(info));
      break;
    }
    default: throw std::invalid_argument("mc::make_disconnect: only handshaking, status and login");
  }
  return out;
}

/// make_disconnect for an rproxy rejection: its message, or default_reject_message(code), plus
/// "Try again in N seconds." when it carries a retry hint.
inline bytes make_disconnect(state s, const reject_reason& why, const compression& c = {}) {
  std::string text(why.message.empty() ? default_reject_message(why.code) : why.message);
  if (why.retry_after_s > 0) {
    text += "\nTry again in ";
    text += std::to_string(why.retry_after_s);
    text += why.retry_after_s == 1 ? " second." : " seconds.";
  }
  return make_disconnect(s, std::string_view(text), c);
}

}  // namespace rproxy::codec::mc
