// rproxy/rooms/password.hpp: room passwords, stored as a salted PBKDF2-HMAC-SHA256 hash (OpenSSL),
// checked in constant time. The password itself is never kept, logged or echoed.
//
//     auto h = rproxy::rooms::password_hash::make("hunter22", 100000);   // random 16-byte salt
//     if (h && h->check("hunter22")) ...                              // CRYPTO_memcmp
//
// A hash costs `iterations` HMAC rounds (~0.5 ms per 1000 on one core here): the registry
// computes it with no lock held, and joins are rate limited ("join" operation).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace rproxy::rooms {

/// PBKDF2-HMAC-SHA256 (RFC 8018 section 5.2) of `password` with `salt`, `out.size()` bytes.
inline bool pbkdf2_sha256(std::string_view password, const unsigned char* salt, std::size_t salt_len,
                          std::uint32_t iterations, unsigned char* out, std::size_t out_len) noexcept {
  if (iterations == 0 || iterations > 0x7FFFFFFFu || password.size() > 0x7FFFFFFFu || salt_len > 0x7FFFFFFFu ||
      out_len > 0x7FFFFFFFu)
    return false;
  return PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt, static_cast<int>(salt_len),
                           static_cast<int>(iterations), EVP_sha256(), static_cast<int>(out_len), out) == 1;
}

class password_hash {
public:
  static constexpr std::size_t salt_bytes = 16;
  static constexpr std::size_t hash_bytes = 32;

  /// A new hash with a fresh random salt; nullopt when OpenSSL fails (no entropy).
  static std::optional<password_hash> make(std::string_view password, std::uint32_t iterations) {
    password_hash h;
    h.iterations_ = iterations;
    if (RAND_bytes(h.salt_.data(), static_cast<int>(h.salt_.size())) != 1) return std::nullopt;
    if (!pbkdf2_sha256(password, h.salt_.data(), h.salt_.size(), iterations, h.hash_.data(), h.hash_.size()))
      return std::nullopt;
    return h;
  }

  /// True when `password` hashes to the stored hash (compared in constant time).
  bool check(std::string_view password) const noexcept {
    std::array<unsigned char, hash_bytes> got{};
    if (!pbkdf2_sha256(password, salt_.data(), salt_.size(), iterations_, got.data(), got.size())) return false;
    const bool same = CRYPTO_memcmp(got.data(), hash_.data(), got.size()) == 0;
    OPENSSL_cleanse(got.data(), got.size());
    return same;
  }

  std::uint32_t iterations() const noexcept { return iterations_; }

  /// The hash as text, to share a room with other instances (rooms/cluster.hpp):
  /// `pbkdf2-sha256$ITERATIONS$SALT$HASH`, salt and hash in lowercase hex. It holds no password.
  std::string encode() const {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "pbkdf2-sha256$" + std::to_string(iterations_) + "$";
    for (auto b : salt_) out.push_back(hex[b >> 4]), out.push_back(hex[b & 0xF]);
    out.push_back('$');
    for (auto b : hash_) out.push_back(hex[b >> 4]), out.push_back(hex[b & 0xF]);
    return out;
  }
  /// What encode() wrote; nullopt for anything else (it comes from Redis: checked strictly).
  static std::optional<password_hash> decode(std::string_view s) {
    constexpr std::string_view tag = "pbkdf2-sha256$";
    if (s.size() > 128 || s.substr(0, tag.size()) != tag) return std::nullopt;
    s.remove_prefix(tag.size());
    const auto d = s.find('$');
    if (d == std::string_view::npos || d == 0 || d > 8) return std::nullopt;
    password_hash h;
    std::uint64_t it = 0;
    for (char c : s.substr(0, d)) {
      if (c < '0' || c > '9') return std::nullopt;
      it = it * 10 + static_cast<unsigned>(c - '0');
    }
    if (it == 0 || it > 10'000'000 || (d > 1 && s[0] == '0')) return std::nullopt;
    h.iterations_ = static_cast<std::uint32_t>(it);
    s.remove_prefix(d + 1);
    if (s.size() != salt_bytes * 2 + 1 + hash_bytes * 2 || s[salt_bytes * 2] != '$') return std::nullopt;
    const auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    const auto read = [&](std::string_view hexs, unsigned char* out, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i) {
        const int hi = nibble(hexs[2 * i]), lo = nibble(hexs[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<unsigned char>(hi << 4 | lo);
      }
      return true;
    };
    if (!read(s.substr(0, salt_bytes * 2), h.salt_.data(), salt_bytes) ||
        !read(s.substr(salt_bytes * 2 + 1), h.hash_.data(), hash_bytes))
      return std::nullopt;
    return h;
  }

private:
  password_hash() = default;
  std::uint32_t iterations_ = 0;
  std::array<unsigned char, salt_bytes> salt_{};
  std::array<unsigned char, hash_bytes> hash_{};
};

}  // namespace rproxy::rooms
