// rproxy/middleware/base64url.hpp: strict unpadded base64url (RFC 4648 §5, as JOSE uses it),
// the JOSE names for core/base64.hpp with the URL alphabet.
//
// decode() accepts only the canonical form: the URL-safe alphabet, no '=' padding, no
// whitespace, no length of 4n+1, and zero bits in the unused low bits of the last character,
// so each byte string has exactly one accepted encoding.
//
//     std::string out;
//     if (!rproxy::middleware::base64url::decode("aGk", out)) reject();   // out == "hi"
//     std::string s = rproxy::middleware::base64url::encode("hi");         // "aGk"
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <rproxy/core/base64.hpp>

namespace rproxy::middleware::base64url {

/// The decoded size of a valid encoding of `n` characters.
constexpr std::size_t decoded_size(std::size_t n) noexcept { return base64::decoded_size(n); }

/// Decodes `in` into `out` (replacing its contents). False if `in` is not canonical base64url.
inline bool decode(std::string_view in, std::string& out) { return base64::decode(in, out, base64::url); }

/// Encodes bytes without padding.
inline std::string encode(std::string_view in) { return base64::encode(in, base64::url); }

}  // namespace rproxy::middleware::base64url
