// rproxy/net/quic/cid.hpp: connection IDs and the routing they carry.
//
// Every connection ID rproxy issues (the server's SCID, each NEW_CONNECTION_ID) is
// `cid_length` bytes: the first names the worker that owns the connection, the rest are random
// (GnuTLS's nonce generator). A worker whose socket receives a packet (SO_REUSEPORT spreads
// them by the 4-tuple) reads the owner from the DCID and hands the packet over when it is not
// its own (server_endpoint.hpp). A client's first DCID is its own choice, random and of any
// length from 8 to 20 bytes: such packets start a connection on the worker that got them.
//
//     auto id = rproxy::net::quic::make_cid(worker);      // worker byte + random
//     rproxy::net::quic::cid_worker(dcid, workers);       // the owner, or nullopt (not ours)
#pragma once

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>

namespace rproxy::net::quic {

/// The length of the connection IDs rproxy issues.
inline constexpr std::size_t cid_length = 18;

/// A connection ID by value (at most 20 bytes, RFC 9000 §17.2).
struct connection_id {
  std::array<std::uint8_t, NGTCP2_MAX_CIDLEN> bytes{};
  std::uint8_t size = 0;

  /// The first `n` bytes of `p` (n is clamped to 20: the caller has checked it).
  static connection_id from(const std::uint8_t* p, std::size_t n) noexcept {
    connection_id c;
    c.size = static_cast<std::uint8_t>(std::min<std::size_t>(n, NGTCP2_MAX_CIDLEN));
    if (c.size > 0) std::copy_n(p, c.size, c.bytes.begin());
    return c;
  }
  static connection_id from(const ngtcp2_cid& c) noexcept { return from(c.data, c.datalen); }

  ngtcp2_cid to_ngtcp2() const noexcept {
    ngtcp2_cid c;
    ngtcp2_cid_init(&c, bytes.data(), size);
    return c;
  }
  std::span<const std::uint8_t> span() const noexcept { return {bytes.data(), size}; }
  std::string_view key() const noexcept { return {reinterpret_cast<const char*>(bytes.data()), size}; }
  friend bool operator==(const connection_id& a, const connection_id& b) noexcept { return a.key() == b.key(); }
};

struct cid_hash {
  std::size_t operator()(const connection_id& c) const noexcept { return std::hash<std::string_view>{}(c.key()); }
};

/// Fills `out` with cryptographically random bytes (GnuTLS).
inline void random_bytes(std::span<std::uint8_t> out) noexcept {
  if (!out.empty()) (void)gnutls_rnd(GNUTLS_RND_NONCE, out.data(), out.size());
}

/// A new connection ID owned by `worker` (0..255).
inline connection_id make_cid(std::size_t worker) noexcept {
  connection_id c;
  c.size = cid_length;
  c.bytes[0] = static_cast<std::uint8_t>(worker);
  random_bytes(std::span(c.bytes).subspan(1, cid_length - 1));
  return c;
}

/// The worker a DCID names, when it is one of ours (cid_length bytes, worker byte < workers);
/// nullopt for any other (a client's first DCID, garbage).
inline std::optional<std::size_t> cid_worker(std::span<const std::uint8_t> dcid, std::size_t workers) noexcept {
  if (dcid.size() != cid_length || workers == 0) return std::nullopt;
  if (dcid[0] >= workers) return std::nullopt;
  return dcid[0];
}

}  // namespace rproxy::net::quic
