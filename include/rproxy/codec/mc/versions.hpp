// rproxy/codec/mc/versions.hpp: Java Edition protocol version numbers from 1.7.2 (the Netty
// rewrite, protocol 4) to 1.21.11 (774), and which packet shapes codec/mc handles differ by
// version.
//
//     mc::version_name(765);             // "1.20.4" (the newest release speaking 765)
//     mc::version_range(765);            // "1.20.3-1.20.4"
//     mc::protocol_of("1.8.8");          // 47
//     mc::login_start_shape_of(760);     // login_start_shape::name_sig_optional_uuid
//
// What differs by version (see docs/mc-protocol.md):
// - handshake, status request/response, ping/pong, login disconnect: same shape in every version
//   here (status JSON gains fields: "enforcesSecureChat" 1.19.1+, "previewsChat" 1.19-1.19.2);
// - login start: see login_start_shape;
// - Set Compression and compressed framing: 1.8+ (47);
// - handshake next state 3 (transfer): 1.20.5+ (766);
// - configuration state between login and play: 1.20.2+ (764).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace rproxy::codec::mc {

struct release {
  std::string_view name;
  std::int32_t protocol;
};

/// Every release (not snapshots), oldest first.
inline constexpr release releases[] = {
    {"1.7.2", 4},     {"1.7.4", 4},     {"1.7.5", 4},     {"1.7.6", 5},     {"1.7.7", 5},
    {"1.7.8", 5},     {"1.7.9", 5},     {"1.7.10", 5},    {"1.8", 47},      {"1.8.1", 47},
    {"1.8.2", 47},    {"1.8.3", 47},    {"1.8.4", 47},    {"1.8.5", 47},    {"1.8.6", 47},
    {"1.8.7", 47},    {"1.8.8", 47},    {"1.8.9", 47},    {"1.9", 107},     {"1.9.1", 108},
    {"1.9.2", 109},   {"1.9.3", 110},   {"1.9.4", 110},   {"1.10", 210},    {"1.10.1", 210},
    {"1.10.2", 210},  {"1.11", 315},    {"1.11.1", 316},  {"1.11.2", 316},  {"1.12", 335},
    {"1.12.1", 338},  {"1.12.2", 340},  {"1.13", 393},    {"1.13.1", 401},  {"1.13.2", 404},
    {"1.14", 477},    {"1.14.1", 480},  {"1.14.2", 485},  {"1.14.3", 490},  {"1.14.4", 498},
    {"1.15", 573},    {"1.15.1", 575},  {"1.15.2", 578},  {"1.16", 735},    {"1.16.1", 736},
    {"1.16.2", 751},  {"1.16.3", 753},  {"1.16.4", 754},  {"1.16.5", 754},  {"1.17", 755},
    {"1.17.1", 756},  {"1.18", 757},    {"1.18.1", 757},  {"1.18.2", 758},  {"1.19", 759},
    {"1.19.1", 760},  {"1.19.2", 760},  {"1.19.3", 761},  {"1.19.4", 762},  {"1.20", 763},
    {"1.20.1", 763},  {"1.20.2", 764},  {"1.20.3", 765},  {"1.20.4", 765},  {"1.20.5", 766},
    {"1.20.6", 766},  {"1.21", 767},    {"1.21.1", 767},  {"1.21.2", 768},  {"1.21.3", 768},
    {"1.21.4", 769},  {"1.21.5", 770},  {"1.21.6", 771},  {"1.21.7", 772},  {"1.21.8", 772},
    {"1.21.9", 773},  {"1.21.10", 773}, {"1.21.11", 774},
};

/// Named protocol numbers for the versions code and tests refer to.
namespace protocol {
inline constexpr std::int32_t v1_7_2 = 4;
inline constexpr std::int32_t v1_7_6 = 5;
inline constexpr std::int32_t v1_8 = 47;
inline constexpr std::int32_t v1_9 = 107;
inline constexpr std::int32_t v1_12_2 = 340;
inline constexpr std::int32_t v1_13 = 393;
inline constexpr std::int32_t v1_16 = 735;
inline constexpr std::int32_t v1_19 = 759;
inline constexpr std::int32_t v1_19_1 = 760;
inline constexpr std::int32_t v1_19_3 = 761;
inline constexpr std::int32_t v1_20_2 = 764;
inline constexpr std::int32_t v1_20_3 = 765;
inline constexpr std::int32_t v1_20_5 = 766;
inline constexpr std::int32_t v1_21 = 767;
inline constexpr std::int32_t v1_21_4 = 769;
inline constexpr std::int32_t oldest = v1_7_2;
inline constexpr std::int32_t newest = 774;  ///< 1.21.11
}  // namespace protocol

/// All releases, oldest first.
constexpr std::span<const release> all_releases() noexcept { return releases; }

/// True if some release in the table speaks `protocol`.
constexpr bool is_known_protocol(std::int32_t p) noexcept {
  for (const auto& r : releases)
    if (r.protocol == p) return true;
  return false;
}

/// The newest release speaking `protocol` ("1.20.4" for 765), or "" if unknown.
constexpr std::string_view version_name(std::int32_t p) noexcept {
  std::string_view name;
  for (const auto& r : releases)
    if (r.protocol == p) name = r.name;
  return name;
}

/// "1.20.3-1.20.4" for 765, "1.21.4" for 769, "" if unknown.
inline std::string version_range(std::int32_t p) {
  std::string_view first;
  std::string_view last;
  for (const auto& r : releases) {
    if (r.protocol != p) continue;
    if (first.empty()) first = r.name;
    last = r.name;
  }
  if (first == last) return std::string(first);
  std::string s(first);
  s += '-';
  s += last;
  return s;
}

/// The protocol of a release name ("1.8.8" -> 47), or nullopt.
constexpr std::optional<std::int32_t> protocol_of(std::string_view name) noexcept {
  for (const auto& r : releases)
    if (r.name == name) return r.protocol;
  return std::nullopt;
}

/// The fields of the serverbound Login Start packet (login state, id 0x00) by version.
enum class login_start_shape : std::uint8_t {
  name,                     ///< ..1.18.2 (..758): Name String(16)
  name_sig,                 ///< 1.19 (759): Name, Has Sig Data, [Timestamp Long, Public Key
                            ///< (VarInt-prefixed), Signature (VarInt-prefixed)]
  name_sig_optional_uuid,   ///< 1.19.1-1.19.2 (760): as 759, then Has UUID Bool, [UUID]
  name_optional_uuid,       ///< 1.19.3-1.20.1 (761..763): Name, Has UUID Bool, [UUID]
  name_uuid,                ///< 1.20.2+ (764..): Name, UUID
};

constexpr login_start_shape login_start_shape_of(std::int32_t p) noexcept {
  if (p >= protocol::v1_20_2) return login_start_shape::name_uuid;
  if (p >= protocol::v1_19_3) return login_start_shape::name_optional_uuid;
  if (p >= protocol::v1_19_1) return login_start_shape::name_sig_optional_uuid;
  if (p >= protocol::v1_19) return login_start_shape::name_sig;
  return login_start_shape::name;
}

/// Set Compression exists (1.8+).
constexpr bool supports_compression(std::int32_t p) noexcept { return p >= protocol::v1_8; }
/// Handshake next state 3 (transfer) exists (1.20.5+).
constexpr bool supports_transfer(std::int32_t p) noexcept { return p >= protocol::v1_20_5; }
/// A configuration state follows login (1.20.2+).
constexpr bool has_configuration_state(std::int32_t p) noexcept { return p >= protocol::v1_20_2; }
/// The status response may carry "enforcesSecureChat" (1.19.1+).
constexpr bool status_has_secure_chat(std::int32_t p) noexcept { return p >= protocol::v1_19_1; }

}  // namespace rproxy::codec::mc
