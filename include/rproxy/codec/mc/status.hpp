// rproxy/codec/mc/status.hpp: the status state (server list ping), same shape in every version
// from 1.7.2 on:
//   serverbound 0x00 Status Request (no fields)      clientbound 0x00 Status Response (JSON)
//   serverbound 0x01 Ping Request (Long payload)     clientbound 0x01 Pong Response (same Long)
//
// status_info is the response JSON as a struct; to_json() builds it with correct escaping and
// parse_status_json() reads a backend's response back with the strict reader of core/json.hpp
// (unknown members such as Forge's "forgeData" are kept, compacted, in `extra`, so a cached
// response can be replayed faithfully).
//
//     mc::status_info s;
//     s.version_name = "1.20.4"; s.protocol = 765;
//     s.players = mc::status_players{100, 3, {}};
//     s.description = mc::text_component("A rproxy server");
//     mc::bytes out;
//     mc::append_status_response(out, mc::to_json(s));
//     mc::append_pong(out, ping_payload);
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/frame.hpp>
#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/packet.hpp>
#include <rproxy/codec/mc/reader.hpp>
#include <rproxy/codec/mc/text_component.hpp>
#include <rproxy/codec/mc/writer.hpp>
#include <rproxy/core/base64.hpp>
#include <rproxy/core/json.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::codec::mc {

/// Max length of the status response JSON string, in UTF-16 units.
inline constexpr std::size_t max_status_json_chars = 32767;

struct status_player {
  std::string name;
  std::string id;  ///< a hyphenated UUID (kept as text: fake sample lines use any id)

  friend bool operator==(const status_player&, const status_player&) = default;
};

struct status_players {
  std::int32_t max = 0;
  std::int32_t online = 0;
  std::vector<status_player> sample{};  ///< the hover list; empty: no "sample" member

  friend bool operator==(const status_players&, const status_players&) = default;
};

struct status_info {
  std::string version_name;   ///< shown when the protocol does not match the client's
  std::int32_t protocol = 0;  ///< a protocol number; use -1 to always show version_name
  std::optional<status_players> players = status_players{};  ///< nullopt: shown as "???"
  /// The MOTD as a JSON text component (text_component.hpp). Text that is not valid JSON is
  /// sent as a plain text component.
  std::string description = R"({"text":""})";
  std::string favicon;                       ///< "data:image/png;base64,..." (64x64), or ""
  std::optional<bool> enforces_secure_chat;  ///< "enforcesSecureChat", 1.19.1+
  std::optional<bool> previews_chat;         ///< "previewsChat", 1.19-1.19.2
  /// Other members (name, raw JSON value), written in order after the known ones; values that
  /// are not valid JSON are dropped.
  std::vector<std::pair<std::string, std::string>> extra{};

  friend bool operator==(const status_info&, const status_info&) = default;
};

namespace detail {
inline void append_json_raw_or_text(std::string& out, std::string_view raw) {
  if (auto doc = json::parse(raw, json_limits)) {
    json::append_compact(out, doc->root());
  } else {
    out += text_component(raw);
  }
}
}  // namespace detail

/// The status response JSON for `s`, compact, members in a fixed order.
inline std::string to_json(const status_info& s) {
  std::string out = "{\"version\":{\"name\":";
  json::append_string(out, s.version_name);
  out += ",\"protocol\":";
  out += std::to_string(s.protocol);
  out += '}';
  if (s.players) {
    out += ",\"players\":{\"max\":";
    out += std::to_string(s.players->max);
    out += ",\"online\":";
    out += std::to_string(s.players->online);
    if (!s.players->sample.empty()) {
      out += ",\"sample\":[";
      for (std::size_t i = 0; i < s.players->sample.size(); ++i) {
        if (i) out += ',';
        out += "{\"name\":";
        json::append_string(out, s.players->sample[i].name);
        out += ",\"id\":";
        json::append_string(out, s.players->sample[i].id);
        out += '}';
      }
      out += ']';
    }
    out += '}';
  }
  out += ",\"description\":";
  detail::append_json_raw_or_text(out, s.description);
  if (!s.favicon.empty()) {
    out += ",\"favicon\":";
    json::append_string(out, s.favicon);
  }
  if (s.enforces_secure_chat) {
    out += ",\"enforcesSecureChat\":";
    out += *s.enforces_secure_chat ? "true" : "false";
  }
  if (s.previews_chat) {
    out += ",\"previewsChat\":";
    out += *s.previews_chat ? "true" : "false";
  }
  for (const auto& [name, raw] : s.extra) {
    auto doc = json::parse(raw, json_limits);
    if (!doc) continue;
    out += ',';
    json::append_string(out, name);
    out += ':';
    json::append_compact(out, doc->root());
  }
  out += '}';
  return out;
}

/// Reads a status response JSON (strict, bounded by json_limits; any JSON error is
/// error::bad_json). Requires "version" with a string "name" and an integer
/// "protocol"; "players" needs integer "max" and "online". A plain-string "description" (old
/// servers) becomes that string as JSON; a missing one becomes {"text":""}.
inline result<status_info> parse_status_json(std::string_view text) {
  const auto bad = [] { return failure(make_error_code(error::bad_json)); };
  const auto int32 = [](const std::optional<json::value>& v) -> std::optional<std::int32_t> {
    if (!v) return std::nullopt;
    if (auto i = v->as_int(INT32_MIN, INT32_MAX)) return static_cast<std::int32_t>(*i);
    return std::nullopt;
  };
  auto doc = json::parse(text, json_limits);
  if (!doc) return bad();
  const json::value root = doc->root();
  if (!root.is_object()) return bad();
  status_info s;
  s.players.reset();
  bool have_version = false;
  bool have_description = false;
  for (json::value v : root.children()) {
    const std::string_view key = v.key();
    if (key == "version") {
      const auto name = v.find("name");
      const auto proto = int32(v.find("protocol"));
      if (!name || !name->is_string() || !proto) return bad();
      s.version_name = name->as_string();
      s.protocol = *proto;
      have_version = true;
    } else if (key == "players") {
      const auto max = int32(v.find("max"));
      const auto online = int32(v.find("online"));
      if (!max || !online) return bad();
      status_players p{*max, *online, {}};
      if (const auto sample = v.find("sample")) {
        if (!sample->is_array()) return bad();
        for (json::value e : sample->children()) {
          const auto n = e.find("name");
          const auto id = e.find("id");
          if (!n || !n->is_string() || !id || !id->is_string()) return bad();
          p.sample.push_back({std::string(n->as_string()), std::string(id->as_string())});
        }
      }
      s.players = std::move(p);
    } else if (key == "description") {
      s.description = json::dump(v);
      have_description = true;
    } else if (key == "favicon") {
      if (!v.is_string()) return bad();
      s.favicon = v.as_string();
    } else if (key == "enforcesSecureChat" && v.is_bool()) {
      s.enforces_secure_chat = v.as_bool();
    } else if (key == "previewsChat" && v.is_bool()) {
      s.previews_chat = v.as_bool();
    } else {
      s.extra.emplace_back(std::string(key), json::dump(v));
    }
  }
  if (!have_version) return bad();
  if (!have_description) s.description = R"({"text":""})";
  return s;
}

/// "data:image/png;base64,<png>": a favicon from the bytes of a 64x64 PNG.
inline std::string make_favicon(byte_view png) {
  std::string out = "data:image/png;base64,";
  base64::append(out, as_chars(png));
  return out;
}

// --- packets ---------------------------------------------------------------------------------

/// Status Request: the body must be exactly the packet id 0x00.
inline result<void> parse_status_request(byte_view body) {
  reader r{body};
  auto id = r.read_varint();
  if (!id) return failure(id.error());
  if (*id != packet_id::status_request) return failure(make_error_code(error::unexpected_packet_id));
  return r.expect_end();
}

namespace detail {
inline result<std::int64_t> parse_long_packet(byte_view body, std::int32_t want_id) {
  reader r{body};
  auto id = r.read_varint();
  if (!id) return failure(id.error());
  if (*id != want_id) return failure(make_error_code(error::unexpected_packet_id));
  auto v = r.read_i64();
  if (!v) return failure(v.error());
  if (auto end = r.expect_end(); !end) return failure(end.error());
  return *v;
}
inline void append_long_packet(bytes& out, std::int32_t id, std::int64_t v) {
  bytes body;
  append_varint(body, id);
  append_i64(body, v);
  append_frame(out, body);
}
}  // namespace detail

/// Ping Request (serverbound 0x01): the payload to echo.
inline result<std::int64_t> parse_ping(byte_view body) {
  return detail::parse_long_packet(body, packet_id::ping_request);
}
/// Pong Response (clientbound 0x01): the echoed payload.
inline result<std::int64_t> parse_pong(byte_view body) {
  return detail::parse_long_packet(body, packet_id::pong_response);
}

/// Status Response (clientbound 0x00): the JSON string (at most 32767 UTF-16 units).
inline result<std::string> parse_status_response(byte_view body) {
  reader r{body};
  auto id = r.read_varint();
  if (!id) return failure(id.error());
  if (*id != packet_id::status_response) return failure(make_error_code(error::unexpected_packet_id));
  auto json = r.read_string(max_status_json_chars);
  if (!json) return failure(json.error());
  if (auto end = r.expect_end(); !end) return failure(end.error());
  return std::string(*json);
}

/// Appends a framed Status Request (client side: probes, tests).
inline void append_status_request(bytes& out) {
  const std::byte body[] = {std::byte{packet_id::status_request}};
  append_frame(out, body);
}
/// Appends a framed Ping Request.
inline void append_ping(bytes& out, std::int64_t payload) {
  detail::append_long_packet(out, packet_id::ping_request, payload);
}
/// Appends a framed Pong Response.
inline void append_pong(bytes& out, std::int64_t payload) {
  detail::append_long_packet(out, packet_id::pong_response, payload);
}
/// Appends a framed Status Response carrying `json` (written as given).
inline void append_status_response(bytes& out, std::string_view json) {
  bytes body;
  body.reserve(json.size() + 4);
  append_varint(body, packet_id::status_response);
  append_string(body, json);
  append_frame(out, body);
}

}  // namespace rproxy::codec::mc
