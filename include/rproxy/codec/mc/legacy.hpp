// rproxy/codec/mc/legacy.hpp: the pre-1.7 server list ping, which modern servers still answer.
//
// A client that opens with byte 0xFE is a legacy ping (a modern frame whose first bytes are
// FE 01 FA cannot be a handshake, so the test is exact):
//   beta 1.8 - 1.3:  FE
//   1.4 - 1.5:       FE 01
//   1.6:             FE 01 FA, "MC|PingHost" (short length 11 + UTF-16BE), short data length
//                    (7 + 2 * host chars), byte protocol, short host length + UTF-16BE host,
//                    int port
// The answer is a kick packet 0xFF + short length (UTF-16 units) + UTF-16BE text, then close:
//   1.4+:  "§1\0<protocol>\0<version>\0<motd>\0<online>\0<max>"
//   beta:  "<motd>§<online>§<max>"
//
// A lone FE (or FE 01) may still be the start of more bytes: pass `peer_idle = true` once the
// client has stopped sending (vanilla decides on its first read) to settle it:
//
//     auto r = mc::detect_legacy_ping(buf, first_read_done);
//     if (r.need_more()) read_more();
//     else if (r && r.value()) send(mc::make_legacy_kick(r.value()->kind, status)), close();
//     else if (r) modern(buf);          // r.value() == nullopt: not a legacy ping
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/decode_result.hpp>
#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/reader.hpp>
#include <rproxy/codec/mc/utf.hpp>
#include <rproxy/codec/mc/writer.hpp>

namespace rproxy::codec::mc {

enum class legacy_ping_kind : std::uint8_t { beta, v1_4, v1_6 };

struct legacy_ping {
  legacy_ping_kind kind = legacy_ping_kind::beta;
  std::int32_t protocol = -1;  ///< 1.6 only (e.g. 78 for 1.6.4), else -1
  std::string host;            ///< 1.6 only: the address the player typed (UTF-8)
  std::int32_t port = 0;       ///< 1.6 only

  friend bool operator==(const legacy_ping&, const legacy_ping&) = default;
};

/// Longest 1.6 ping hostname accepted, in UTF-16 units.
inline constexpr std::size_t max_legacy_host_chars = 255;

/// Detects a legacy ping at the start of a connection's bytes. ok(nullopt, 0): a modern client;
/// ok(ping, n): a legacy ping of n bytes; need_more; or error::bad_legacy_ping for a malformed
/// 1.6 ping (including a host over max_legacy_host_chars).
inline decode_result<std::optional<legacy_ping>> detect_legacy_ping(byte_view in, bool peer_idle = false) {
  using R = decode_result<std::optional<legacy_ping>>;
  const auto at = [&](std::size_t i) { return static_cast<unsigned>(in[i]); };
  if (in.empty()) return R::incomplete();
  if (at(0) != 0xFE) return R::ok(std::nullopt, 0);
  if (in.size() == 1) return peer_idle ? R::ok(legacy_ping{}, 1) : R::incomplete();
  if (at(1) != 0x01) return R::ok(std::nullopt, 0);
  if (in.size() == 2) return peer_idle ? R::ok(legacy_ping{legacy_ping_kind::v1_4, -1, {}, 0}, 2) : R::incomplete();
  if (at(2) != 0xFA) return R::ok(std::nullopt, 0);

  // 1.6: everything up to the host length is fixed-size; need it all before judging.
  static constexpr unsigned char channel[] = {0x00, 0x0B, 0, 'M', 0, 'C', 0, '|', 0, 'P', 0, 'i', 0,
                                              'n',  0,    'g', 0, 'H', 0, 'o', 0, 's', 0, 't'};
  constexpr std::size_t header = 3 + sizeof(channel) + 2 + 1 + 2;  // ... host length
  for (std::size_t i = 0; i < sizeof(channel) && 3 + i < in.size(); ++i)
    if (at(3 + i) != channel[i]) return R::failure(error::bad_legacy_ping);
  if (in.size() < header) return R::incomplete();
  reader r{in.subspan(3 + sizeof(channel))};
  const auto data_len = *r.read_u16();
  const auto proto = *r.read_u8();
  const auto host_chars = *r.read_u16();
  if (host_chars > max_legacy_host_chars || data_len != 7u + 2u * host_chars)
    return R::failure(error::bad_legacy_ping);
  const auto total = header + 2u * host_chars + 4u;
  if (in.size() < total) return R::incomplete();
  auto host = utf16be_to_utf8(*r.read_bytes(2u * host_chars));
  if (!host) return R::failure(error::bad_legacy_ping);
  const auto port = *r.read_i32();
  return R::ok(legacy_ping{legacy_ping_kind::v1_6, proto, std::move(*host), port}, total);
}

/// Appends the bytes a legacy client of `p.kind` sends (client side: probes, tests). A 1.6 host
/// is truncated to max_legacy_host_chars.
inline void append_legacy_ping(bytes& out, const legacy_ping& p) {
  out.push_back(std::byte{0xFE});
  if (p.kind == legacy_ping_kind::beta) return;
  out.push_back(std::byte{0x01});
  if (p.kind == legacy_ping_kind::v1_4) return;
  out.push_back(std::byte{0xFA});
  append_u16(out, 11);
  append_utf16be(out, "MC|PingHost");
  bytes host;
  auto units = append_utf16be(host, p.host);
  if (units > max_legacy_host_chars) {
    units = max_legacy_host_chars;
    // do not split a surrogate pair
    const auto last = (static_cast<unsigned>(host[2 * units - 2]) << 8) | static_cast<unsigned>(host[2 * units - 1]);
    if (last >= 0xD800 && last <= 0xDBFF) --units;
    host.resize(2 * units);
  }
  append_u16(out, static_cast<std::uint16_t>(7 + 2 * units));
  append_u8(out, static_cast<std::uint8_t>(p.protocol));
  append_u16(out, static_cast<std::uint16_t>(units));
  append(out, host);
  append_i32(out, p.port);
}

/// What a legacy kick response says.
struct legacy_status {
  std::int32_t protocol = 127;  ///< 1.4+ only; clients show version_name when it differs
  std::string version_name;     ///< 1.4+ only
  std::string motd;
  std::int32_t online = 0;
  std::int32_t max = 0;

  friend bool operator==(const legacy_status&, const legacy_status&) = default;
};

/// Longest kick text, in UTF-16 units (the length is a signed short).
inline constexpr std::size_t max_legacy_kick_chars = 32767;

/// The kick packet answering a legacy ping of `kind`. '\0' is removed from the 1.4+ fields and
/// '§' from the beta MOTD (they are the separators); the text is cut at 32767 UTF-16 units.
inline bytes make_legacy_kick(legacy_ping_kind kind, const legacy_status& s) {
  // Drops every `bad` sequence, including one that dropping another forms ("\xC2" "\xC2\xA7" "\xA7"
  // would leave a '§'): each is removed as it appears at the end of the output.
  const auto strip = [](std::string_view in, std::string_view bad) {
    std::string o;
    for (const char c : in) {
      o.push_back(c);
      if (std::string_view(o).ends_with(bad)) o.resize(o.size() - bad.size());
    }
    return o;
  };
  constexpr std::string_view section = "\xC2\xA7";  // §
  std::string text;
  if (kind == legacy_ping_kind::beta) {
    text = strip(s.motd, section);
    text += section;
    text += std::to_string(s.online);
    text += section;
    text += std::to_string(s.max);
  } else {
    constexpr std::string_view nul{"\0", 1};
    text = section;
    text += '1';
    text += nul;
    text += std::to_string(s.protocol);
    text += nul;
    text += strip(s.version_name, nul);
    text += nul;
    text += strip(s.motd, nul);
    text += nul;
    text += std::to_string(s.online);
    text += nul;
    text += std::to_string(s.max);
  }
  bytes utf16;
  auto units = append_utf16be(utf16, text);
  if (units > max_legacy_kick_chars) {
    units = max_legacy_kick_chars;
    const auto last = (static_cast<unsigned>(utf16[2 * units - 2]) << 8) | static_cast<unsigned>(utf16[2 * units - 1]);
    if (last >= 0xD800 && last <= 0xDBFF) --units;
    utf16.resize(2 * units);
  }
  bytes out;
  out.reserve(3 + utf16.size());
  out.push_back(std::byte{0xFF});
  append_u16(out, static_cast<std::uint16_t>(units));
  append(out, utf16);
  return out;
}

/// Reads a kick packet back (client side: legacy status probes, tests): 1.4+ format when the
/// text starts with "§1\0", else beta. Counts that are not integers read as -1.
inline decode_result<legacy_status> parse_legacy_kick(byte_view in) {
  using R = decode_result<legacy_status>;
  if (in.empty()) return R::incomplete();
  if (static_cast<unsigned>(in[0]) != 0xFF) return R::failure(error::bad_legacy_ping);
  if (in.size() < 3) return R::incomplete();
  const auto units = (static_cast<std::size_t>(in[1]) << 8) | static_cast<std::size_t>(in[2]);
  if (units > max_legacy_kick_chars) return R::failure(error::bad_legacy_ping);
  if (in.size() < 3 + 2 * units) return R::incomplete();
  auto text = utf16be_to_utf8(in.subspan(3, 2 * units));
  if (!text) return R::failure(error::bad_legacy_ping);
  const auto to_int = [](std::string_view v) -> std::int32_t {
    if (v.empty() || v.size() > 10) return -1;
    std::int64_t n = 0;
    for (char c : v) {
      if (c < '0' || c > '9') return -1;
      n = n * 10 + (c - '0');
    }
    return n > INT32_MAX ? -1 : static_cast<std::int32_t>(n);
  };
  const auto split = [](std::string_view v, std::string_view sep) {
    std::vector<std::string_view> parts;
    for (;;) {
      const auto at = v.find(sep);
      parts.push_back(v.substr(0, at));
      if (at == std::string_view::npos) return parts;
      v.remove_prefix(at + sep.size());
    }
  };
  legacy_status s;
  std::string_view t = *text;
  if (t.starts_with(std::string_view("\xC2\xA7" "1\0", 4))) {
    auto f = split(t.substr(4), std::string_view("\0", 1));
    if (f.size() != 5) return R::failure(error::bad_legacy_ping);
    s = legacy_status{to_int(f[0]), std::string(f[1]), std::string(f[2]), to_int(f[3]), to_int(f[4])};
  } else {
    auto f = split(t, "\xC2\xA7");
    if (f.size() < 3) return R::failure(error::bad_legacy_ping);
    // The MOTD may itself contain '§' (colour codes) in answers from other servers.
    const auto motd_len = t.size() - f[f.size() - 1].size() - f[f.size() - 2].size() - 4;
    s = legacy_status{-1, {}, std::string(t.substr(0, motd_len)), to_int(f[f.size() - 2]),
                      to_int(f[f.size() - 1])};
  }
  return R::ok(std::move(s), 3 + 2 * units);
}

}  // namespace rproxy::codec::mc
