// rproxy/middleware/detail/siphash.hpp: SipHash-2-4 with a per-process random key, for hash
// tables keyed by client-controlled strings (rate-limit keys), so an attacker cannot choose
// keys that collide (hash flooding). Internal to rproxy::middleware.
#pragma once

#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace rproxy::middleware::detail {

inline std::uint64_t siphash24(std::uint64_t k0, std::uint64_t k1, std::string_view in) noexcept {
  auto rotl = [](std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
  std::uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
  std::uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
  auto round = [&] {
    v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32);
    v2 += v3; v3 = rotl(v3, 16); v3 ^= v2;
    v0 += v3; v3 = rotl(v3, 21); v3 ^= v0;
    v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32);
  };
  const std::size_t n = in.size();
  const char* p = in.data();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t m = 0;
    for (int j = 7; j >= 0; --j) m = (m << 8) | static_cast<unsigned char>(p[i + static_cast<std::size_t>(j)]);
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
  std::uint64_t b = static_cast<std::uint64_t>(n) << 56;
  for (std::size_t j = 0; i + j < n; ++j) b |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i + j])) << (8 * j);
  v3 ^= b;
  round();
  round();
  v0 ^= b;
  v2 ^= 0xff;
  round();
  round();
  round();
  round();
  return v0 ^ v1 ^ v2 ^ v3;
}

/// A per-process random SipHash key (OpenSSL's CSPRNG; a clock-derived fallback if it fails).
inline const std::array<std::uint64_t, 2>& process_hash_key() noexcept {
  static const std::array<std::uint64_t, 2> key = [] {
    std::array<std::uint64_t, 2> k{};
    if (RAND_bytes(reinterpret_cast<unsigned char*>(k.data()), sizeof k) != 1) {
      auto t = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
      k = {t * 0x9E3779B97F4A7C15ull, reinterpret_cast<std::uintptr_t>(&k) ^ t};
    }
    return k;
  }();
  return key;
}

/// Transparent keyed hash for unordered containers of strings.
struct keyed_string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    const auto& k = process_hash_key();
    return static_cast<std::size_t>(siphash24(k[0], k[1], s));
  }
};

}  // namespace rproxy::middleware::detail
