// rproxy/middleware/base64url.hpp: strict unpadded base64url (RFC 4648 §5, as JOSE uses it).
//
// decode() accepts only the canonical form: the URL-safe alphabet, no '=' padding, no
// whitespace, no length of 4n+1, and zero bits in the unused low bits of the last character,
// so each byte string has exactly one accepted encoding.
//
//     std::string out;
//     if (!rproxy::middleware::base64url::decode("aGk", out)) reject();   // out == "hi"
//     std::string s = rproxy::middleware::base64url::encode("hi");         // "aGk"
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rproxy::middleware::base64url {

namespace detail {
inline constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<std::int8_t, 256> make_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}
inline constexpr std::array<std::int8_t, 256> table = make_table();
}  // namespace detail

/// The decoded size of a valid encoding of `n` characters.
constexpr std::size_t decoded_size(std::size_t n) noexcept { return n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1); }

/// Decodes `in` into `out` (replacing its contents). False if `in` is not canonical base64url.
inline bool decode(std::string_view in, std::string& out) {
  out.clear();
  if (in.size() % 4 == 1) return false;
  out.reserve(decoded_size(in.size()));
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    std::int8_t v = detail::table[static_cast<unsigned char>(ch)];
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits (2 or 4) must be zero for the encoding to be canonical.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return false;
  return true;
}

/// Encodes bytes without padding.
inline std::string encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    acc = (acc << 8) | static_cast<unsigned char>(ch);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(detail::alphabet[(acc >> bits) & 0x3F]);
    }
  }
  if (bits > 0) out.push_back(detail::alphabet[(acc << (6 - bits)) & 0x3F]);
  return out;
}

}  // namespace rproxy::middleware::base64url
