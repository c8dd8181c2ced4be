// rproxy/middleware/error.hpp: errors of the security middleware (rproxy::middleware).
//
// The sans-I/O parts (JSON reader, JWT verifier, key loaders, API key table, ban file, CIDR
// parser) report failures with these codes. Codes about what a client sent are
// condition::downstream (and retry-safe: nothing reached a backend); codes about our own files
// and keys are condition::internal:
//
//     auto r = verifier.verify(token, now);
//     if (!r && r.error() == rproxy::middleware::error::expired) audit("expired token");
//     if (!r && r.error() == rproxy::condition::downstream) return reject(unauthorized);
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

#include <rproxy/core/error.hpp>

namespace rproxy::middleware {

enum class error {
  // JSON reader (core/json.hpp; its json::error codes are reported as these)
  json_syntax = 1,      ///< not strict JSON (RFC 8259)
  json_too_deep,        ///< nesting deeper than the reader's limit
  json_too_large,       ///< input or node count over the reader's limit
  json_duplicate_key,   ///< an object with the same member name twice
  json_bad_encoding,    ///< invalid UTF-8, bad escape or lone surrogate in a string
  // JWT (jwt.hpp)
  token_too_large,      ///< token over the configured size
  malformed_token,      ///< not three base64url segments separated by '.'
  bad_base64,           ///< a segment is not canonical unpadded base64url
  bad_header,           ///< JOSE header is not a JSON object or has a field of the wrong type
  bad_claims,           ///< payload is not a JSON object
  alg_none,             ///< "alg": "none" (unsecured JWS) is never accepted
  unsupported_alg,      ///< an algorithm this verifier does not implement or config forbids
  unsupported_crit,     ///< a "crit" header parameter (no extensions are understood)
  unknown_kid,          ///< the token's "kid" names no key in the key set
  no_matching_key,      ///< no key in the set is bound to the token's algorithm
  bad_signature,        ///< the signature does not verify (or has the wrong length)
  expired,              ///< now >= exp + leeway
  not_yet_valid,        ///< now + leeway < nbf
  bad_issuer,           ///< "iss" missing or not one of the accepted issuers
  bad_audience,         ///< "aud" missing or names none of the accepted audiences
  missing_claim,        ///< a required claim is absent
  bad_claim_type,       ///< exp/nbf/iat not a number, sub not a string, aud not string(s)
  missing_credentials,  ///< no token / API key in the request
  unknown_api_key,      ///< an API key that matches no stored hash
  // keys and files (internal)
  file_unreadable,      ///< a key, API key or ban file could not be read or written
  bad_key,              ///< a PEM or JWK that does not decode to a usable public key
  weak_key,             ///< an RSA key under 2048 bits or an HMAC secret shorter than its hash
  bad_key_file,         ///< a malformed line in an API key file
  bad_ban_file,         ///< a malformed line in a ban file
  bad_cidr,             ///< an address or CIDR that does not parse
  crypto_failure,       ///< OpenSSL failed for a reason unrelated to the input
};

namespace detail {

class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.middleware"; }
  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::json_syntax: return "malformed JSON";
      case error::json_too_deep: return "JSON nested too deeply";
      case error::json_too_large: return "JSON too large";
      case error::json_duplicate_key: return "JSON object has a duplicate member name";
      case error::json_bad_encoding: return "JSON string is not valid UTF-8 or has a bad escape";
      case error::token_too_large: return "token too large";
      case error::malformed_token: return "malformed token";
      case error::bad_base64: return "token segment is not base64url";
      case error::bad_header: return "bad JOSE header";
      case error::bad_claims: return "token claims are not a JSON object";
      case error::alg_none: return "unsecured token (alg none)";
      case error::unsupported_alg: return "unsupported or forbidden algorithm";
      case error::unsupported_crit: return "unsupported critical header parameter";
      case error::unknown_kid: return "unknown key id";
      case error::no_matching_key: return "no key for the token's algorithm";
      case error::bad_signature: return "bad signature";
      case error::expired: return "token expired";
      case error::not_yet_valid: return "token not yet valid";
      case error::bad_issuer: return "wrong issuer";
      case error::bad_audience: return "wrong audience";
      case error::missing_claim: return "required claim missing";
      case error::bad_claim_type: return "claim has the wrong type";
      case error::missing_credentials: return "no credentials";
      case error::unknown_api_key: return "unknown API key";
      case error::file_unreadable: return "file cannot be read or written";
      case error::bad_key: return "unusable key";
      case error::weak_key: return "key too weak";
      case error::bad_key_file: return "malformed API key file";
      case error::bad_ban_file: return "malformed ban file";
      case error::bad_cidr: return "malformed address or CIDR";
      case error::crypto_failure: return "cryptographic library failure";
    }
    return "unknown rproxy.middleware error";
  }
  rproxy::condition source(int c) const noexcept override {
    return static_cast<error>(c) >= error::file_unreadable ? rproxy::condition::internal
                                                           : rproxy::condition::downstream;
  }
  // A rejected client never reached a backend; our own file and key failures are not retried.
  bool retry_safe(int c) const noexcept override { return source(c) == rproxy::condition::downstream; }
};

}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace rproxy::middleware

template <>
struct std::is_error_code_enum<rproxy::middleware::error> : std::true_type {};
