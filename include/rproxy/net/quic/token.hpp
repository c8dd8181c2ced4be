// rproxy/net/quic/token.hpp: address-validation tokens for Retry (RFC 9000 §8.1.2).
//
// A server that asks for address validation answers a client's first Initial with a Retry
// carrying a token; the client repeats its Initial with the token, which proves it receives
// packets at the address it claims. The token is ours to define. rproxy's:
//
//     kind (1 byte, 0x52 'R') | issued (8 bytes, big-endian, ngtcp2 ns) | odcid length (1) |
//     odcid (0..20 bytes) | HMAC-SHA-256 over all that and the client's address (32 bytes)
//
// The client's address (family, IP, port) is in the MAC, not in the token, so a token works
// only from the address it was issued to. The original DCID travels in it because the server
// keeps no state between the Retry and the new Initial, and must send it back in its transport
// parameters (original_destination_connection_id). Tokens expire after `lifetime`. The key is
// random per process (token_key::generate()) and shared by every worker's endpoint.
//
//     token_key key = token_key::generate();
//     auto t = key.make(addr, odcid, now());                      // into the Retry
//     auto r = key.validate(token_bytes, addr, now(), 10s);        // r: the odcid, or why not
//
// validate() reads untrusted bytes: it checks every length before it reads, and compares the
// MAC in constant time.
#pragma once

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include <rproxy/core/result.hpp>
#include <rproxy/net/quic/cid.hpp>
#include <rproxy/net/quic/clock.hpp>

namespace rproxy::net::quic {

/// Why a token is refused.
enum class token_error : std::uint8_t { malformed = 1, bad_mac, expired };

constexpr std::string_view to_string(token_error e) noexcept {
  switch (e) {
    case token_error::malformed: return "malformed token";
    case token_error::bad_mac: return "token not issued to this address (or by this process)";
    case token_error::expired: return "token expired";
  }
  return "bad token";
}

/// A socket address as the bytes a token's MAC covers: family, IP, port. Empty for a family
/// other than IPv4 and IPv6.
struct address_bytes {
  std::array<std::uint8_t, 1 + 16 + 2> bytes{};
  std::size_t size = 0;

  static address_bytes of(const sockaddr* sa) noexcept {
    address_bytes a;
    if (sa == nullptr) return a;
    if (sa->sa_family == AF_INET) {
      sockaddr_in in;
      std::memcpy(&in, sa, sizeof in);
      a.bytes[0] = 4;
      std::memcpy(&a.bytes[1], &in.sin_addr, 4);
      std::memcpy(&a.bytes[5], &in.sin_port, 2);
      a.size = 7;
    } else if (sa->sa_family == AF_INET6) {
      sockaddr_in6 in6;
      std::memcpy(&in6, sa, sizeof in6);
      a.bytes[0] = 6;
      std::memcpy(&a.bytes[1], &in6.sin6_addr, 16);
      std::memcpy(&a.bytes[17], &in6.sin6_port, 2);
      a.size = 19;
    }
    return a;
  }
  std::span<const std::uint8_t> span() const noexcept { return {bytes.data(), size}; }
};

/// The HMAC key of a process's tokens.
class token_key {
public:
  static constexpr std::uint8_t kind_retry = 0x52;
  static constexpr std::size_t mac_size = 32;
  static constexpr std::size_t header_size = 1 + 8 + 1;
  static constexpr std::size_t max_size = header_size + NGTCP2_MAX_CIDLEN + mac_size;

  /// A random key (GnuTLS's key generator).
  static token_key generate() noexcept {
    token_key k;
    (void)gnutls_rnd(GNUTLS_RND_KEY, k.key_.data(), k.key_.size());
    return k;
  }
  /// A given key (tests).
  static token_key from(std::span<const std::uint8_t, 32> key) noexcept {
    token_key k;
    std::memcpy(k.key_.data(), key.data(), key.size());
    return k;
  }

  /// A token for a client at `addr` whose first Initial had DCID `odcid`, issued at `issued`.
  std::vector<std::uint8_t> make(const address_bytes& addr, const connection_id& odcid, ngtcp2_tstamp issued) const {
    std::vector<std::uint8_t> t(header_size + odcid.size + mac_size);
    t[0] = kind_retry;
    for (int i = 0; i < 8; ++i) t[1 + i] = static_cast<std::uint8_t>(issued >> (56 - 8 * i));
    t[9] = odcid.size;
    if (odcid.size > 0) std::memcpy(&t[header_size], odcid.bytes.data(), odcid.size);
    const auto body = std::span<const std::uint8_t>(t.data(), header_size + odcid.size);
    mac(body, addr, std::span<std::uint8_t, mac_size>(t.data() + body.size(), mac_size));
    return t;
  }

  /// The original DCID a token carries, when it is ours, for `addr`, and younger than
  /// `lifetime` at `now`.
  result<connection_id, token_error> validate(std::span<const std::uint8_t> t, const address_bytes& addr, ngtcp2_tstamp now,
                                              std::chrono::nanoseconds lifetime) const {
    if (t.size() < header_size + mac_size || t.size() > max_size || t[0] != kind_retry) return failure(token_error::malformed);
    const std::size_t n = t[9];
    if (n > NGTCP2_MAX_CIDLEN || t.size() != header_size + n + mac_size) return failure(token_error::malformed);
    std::array<std::uint8_t, mac_size> want;
    if (!mac(t.first(header_size + n), addr, want)) return failure(token_error::bad_mac);
    std::uint8_t diff = 0;  // constant time
    for (std::size_t i = 0; i < mac_size; ++i) diff |= static_cast<std::uint8_t>(want[i] ^ t[header_size + n + i]);
    if (diff != 0) return failure(token_error::bad_mac);
    ngtcp2_tstamp issued = 0;
    for (int i = 0; i < 8; ++i) issued = (issued << 8) | t[1 + i];
    if (issued > now || now - issued > static_cast<ngtcp2_tstamp>(lifetime.count())) return failure(token_error::expired);
    return connection_id::from(t.data() + header_size, n);
  }

private:
  bool mac(std::span<const std::uint8_t> body, const address_bytes& addr, std::span<std::uint8_t, mac_size> out) const noexcept {
    gnutls_hmac_hd_t h;
    if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA256, key_.data(), key_.size()) != 0) {
      std::memset(out.data(), 0, out.size());
      return false;
    }
    const bool ok = gnutls_hmac(h, body.data(), body.size()) == 0 && gnutls_hmac(h, addr.bytes.data(), addr.size) == 0;
    gnutls_hmac_deinit(h, out.data());
    return ok;
  }

  std::array<std::uint8_t, 32> key_{};
};

}  // namespace rproxy::net::quic
