// rproxy/balance/key.hpp: the keys that hash-based balancers (ip_hash, consistent_hash, sticky)
// route on, and their stable 64-bit hash.
//
// A key is whatever the caller chooses: the client IP, a header or cookie value, a Minecraft
// handshake hostname. Supported out of the box: std::string_view (and anything convertible to
// it), asio::ip::address, asio::ip::tcp::endpoint (its address), and integers. For your own key
// type, declare `std::uint64_t hash_key(const K&, std::uint64_t seed)` and
// `std::string key_string(const K&)` in its namespace (found by ADL).
//
//     std::uint64_t h = rproxy::balance::hash_key(std::string_view{"play.example.net"});
//
// Hashes are the same on every run and every machine (no std::hash), so several proxies agree
// on where a key goes.
#pragma once

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rproxy::balance {

/// The key of balancers that use none (random, round_robin, ...): `pick(pool)`.
struct no_key {};

namespace detail {

/// The finaliser of MurmurHash3 / SplitMix64: a strong 64-bit bit mixer.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/// FNV-1a over the bytes, then mixed: fast for short keys, stable everywhere.
constexpr std::uint64_t hash_bytes(const unsigned char* p, std::size_t n, std::uint64_t seed) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull ^ mix64(seed + 0x9e3779b97f4a7c15ull);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return mix64(h ^ n);
}

}  // namespace detail

inline std::uint64_t hash_key(std::string_view s, std::uint64_t seed = 0) noexcept {
  return detail::hash_bytes(reinterpret_cast<const unsigned char*>(s.data()), s.size(), seed);
}

inline std::uint64_t hash_key(const asio::ip::address& a, std::uint64_t seed = 0) noexcept {
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    return detail::hash_bytes(b.data(), b.size(), seed);
  }
  auto b = a.to_v6().to_bytes();
  return detail::hash_bytes(b.data(), b.size(), seed);
}

inline std::uint64_t hash_key(const asio::ip::tcp::endpoint& e, std::uint64_t seed = 0) noexcept {
  return hash_key(e.address(), seed);
}

template <std::integral I>
constexpr std::uint64_t hash_key(I v, std::uint64_t seed = 0) noexcept {
  return detail::mix64(static_cast<std::uint64_t>(v) ^ detail::mix64(seed + 0x9e3779b97f4a7c15ull));
}

/// The key as text, for tables keyed by it (sticky).
inline std::string key_string(std::string_view s) { return std::string(s); }
inline std::string key_string(const asio::ip::address& a) { return a.to_string(); }
inline std::string key_string(const asio::ip::tcp::endpoint& e) { return e.address().to_string(); }
template <std::integral I>
std::string key_string(I v) {
  return std::to_string(v);
}

/// A key a hash-based balancer can route on.
template <class K>
concept hash_key_type = requires(const K& k) {
  { hash_key(k, std::uint64_t{0}) } -> std::convertible_to<std::uint64_t>;
};

/// A key a table-based balancer (sticky) can store.
template <class K>
concept string_key_type = hash_key_type<K> && requires(const K& k) {
  { key_string(k) } -> std::convertible_to<std::string>;
};

}  // namespace rproxy::balance
