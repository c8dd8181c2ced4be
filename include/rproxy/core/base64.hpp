// rproxy/core/base64.hpp: base64 (RFC 4648 §4) and base64url (§5), the one implementation.
//
// Encoding writes either alphabet, padded or not. Decoding is strict and unpadded, as JOSE
// uses it: only the alphabet's characters, no '=', no whitespace, no length of 4n+1, and zero
// bits in the unused low bits of the last character, so each byte string has one encoding.
//
//     std::string s = rproxy::base64::encode("hi");                           // "aGk="
//     std::string u = rproxy::base64::encode("hi", rproxy::base64::url);      // "aGk"
//     std::string out;
//     if (!rproxy::base64::decode("aGk", out, rproxy::base64::url)) reject(); // out == "hi"
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rproxy::base64 {

/// An alphabet and whether encodings end in '=' padding.
struct variant {
  std::string_view alphabet;
  bool pad;
};
inline constexpr variant standard{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true};
inline constexpr variant url{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", false};

namespace detail {
constexpr std::array<std::int8_t, 256> make_table(std::string_view alphabet) {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[static_cast<std::size_t>(i)])] = static_cast<std::int8_t>(i);
  return t;
}
inline constexpr std::array<std::int8_t, 256> standard_table = make_table(standard.alphabet);
inline constexpr std::array<std::int8_t, 256> url_table = make_table(url.alphabet);
}  // namespace detail

/// The size of the unpadded encoding of `n` bytes.
constexpr std::size_t encoded_size(std::size_t n, bool pad) noexcept {
  return pad ? (n + 2) / 3 * 4 : n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}
/// The decoded size of a valid unpadded encoding of `n` characters.
constexpr std::size_t decoded_size(std::size_t n) noexcept { return n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1); }

/// Appends the encoding of the bytes `in`.
inline void append(std::string& out, std::string_view in, const variant& v = standard) {
  out.reserve(out.size() + encoded_size(in.size(), v.pad));
  std::size_t i = 0;
  const auto byte = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k])); };
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t w = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    for (int s = 18; s >= 0; s -= 6) out.push_back(v.alphabet[(w >> s) & 63]);
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    const std::uint32_t w = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    out.push_back(v.alphabet[(w >> 18) & 63]);
    out.push_back(v.alphabet[(w >> 12) & 63]);
    if (rest == 2) out.push_back(v.alphabet[(w >> 6) & 63]);
    if (v.pad) out.append(rest == 2 ? "=" : "==");
  }
}

inline std::string encode(std::string_view in, const variant& v = standard) {
  std::string out;
  append(out, in, v);
  return out;
}

/// Decodes the canonical unpadded encoding `in` into `out` (replacing its contents). False if
/// `in` is not one.
inline bool decode(std::string_view in, std::string& out, const variant& v = url) {
  const auto& table = v.alphabet == url.alphabet ? detail::url_table : detail::standard_table;
  out.clear();
  if (in.size() % 4 == 1) return false;
  out.reserve(decoded_size(in.size()));
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    const std::int8_t x = table[static_cast<unsigned char>(ch)];
    if (x < 0) return false;
    acc = (acc << 6) | static_cast<std::uint32_t>(x);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits (2 or 4) must be zero for the encoding to be canonical.
  return bits == 0 || (acc & ((1u << bits) - 1)) == 0;
}

}  // namespace rproxy::base64
