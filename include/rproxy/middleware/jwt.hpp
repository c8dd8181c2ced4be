// rproxy/middleware/jwt.hpp: JSON Web Token verification (JWS compact form, verify only), sans-I/O.
//
//   parse_jwt(token)                       split, base64url-decode and JSON-parse header and claims
//                                          (no crypto; bounded; fuzzed by tests/fuzz/jwt.cpp)
//   verify_signature(parsed, keys, cfg)    pick the key (by "kid", bound to the algorithm family),
//                                          check the signature with OpenSSL 3 EVP
//   check_claims(claims, cfg, now)         exp / nbf (with leeway), iss, aud, required claims
//   verify_jwt(token, keys, cfg, now)      all three, in that order
//
//     rproxy::middleware::jwt_config cfg;
//     cfg.issuers = {"https://idp.example"};
//     cfg.audiences = {"chat"};
//     auto t = rproxy::middleware::verify_jwt(token, *store.current(), cfg, std::chrono::system_clock::now());
//     if (!t) return reject(unauthorized);             // t.error(): error::expired, bad_signature, ...
//     std::string_view sub = t->subject();
//
// Refused always: "alg": "none", unknown algorithms, any "crit" header, a key whose family does
// not match the token's algorithm (HS256 with an RSA key), HMAC secrets shorter than the hash.
// Signatures and MACs are compared in constant time (CRYPTO_memcmp or OpenSSL's verify).
#pragma once

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/core/json.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/middleware/base64url.hpp>
#include <rproxy/middleware/detail/openssl.hpp>
#include <rproxy/middleware/error.hpp>
#include <rproxy/middleware/jwt_key.hpp>

namespace rproxy::middleware {

/// What a token must satisfy (the stage's part of the config is in jwt_auth.hpp).
struct jwt_config {
  std::vector<std::string> issuers;           ///< accepted "iss" values; empty: not checked
  std::vector<std::string> audiences;         ///< "aud" must name one of these; empty: not checked
  std::chrono::seconds leeway{30};            ///< clock skew allowed on exp and nbf
  bool require_exp = true;                    ///< a token without "exp" is refused
  std::vector<std::string> required_claims;   ///< must be present (any type)
  std::vector<jwt_alg> algorithms;            ///< accepted algorithms; empty: all implemented
  std::size_t max_token_bytes = 8192;
  /// A token without "kid" is tried against at most this many keys of its algorithm (the first
  /// ones of the set), not every key of a large JWKS.
  std::size_t max_keys_without_kid = 4;
};

/// A token split and decoded, not yet verified.
struct parsed_jwt {
  jwt_alg alg = jwt_alg::hs256;
  std::string kid;                  ///< empty when the header has none
  json::document header;
  json::document claims;
  std::string_view signing_input;   ///< "header.payload" (a view into the token)
  std::string signature;            ///< decoded
};

/// A verified token: its claims and how it was signed.
struct verified_jwt {
  jwt_alg alg = jwt_alg::hs256;
  std::string kid;
  json::document claims;

  /// The "sub" claim (empty when absent).
  std::string_view subject() const noexcept {
    auto s = claims.root().find("sub");
    return s && s->is_string() ? s->as_string() : std::string_view{};
  }
  std::optional<json::value> claim(std::string_view name) const noexcept { return claims.root().find(name); }
};

namespace detail {
constexpr bool iequals_ascii(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}
}  // namespace detail

/// Splits and decodes a compact JWS. No signature or claim is checked.
inline rproxy::result<parsed_jwt> parse_jwt(std::string_view token, std::size_t max_bytes = 8192) {
  auto fail = [](error e) { return rproxy::result<parsed_jwt>(rproxy::failure(make_error_code(e))); };
  if (token.size() > max_bytes) return fail(error::token_too_large);
  auto d1 = token.find('.');
  if (d1 == std::string_view::npos) return fail(error::malformed_token);
  auto d2 = token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    return fail(error::malformed_token);
  std::string_view h64 = token.substr(0, d1), p64 = token.substr(d1 + 1, d2 - d1 - 1), s64 = token.substr(d2 + 1);
  if (h64.empty() || p64.empty()) return fail(error::malformed_token);

  parsed_jwt out;
  std::string text;
  json::limits lim;
  lim.max_bytes = max_bytes;
  lim.max_depth = 16;
  lim.max_nodes = 1024;

  if (!base64url::decode(h64, text)) return fail(error::bad_base64);
  auto header = json::parse(text, lim);
  if (!header) return rproxy::failure(detail::from_json_error(header.error()));
  out.header = std::move(*header);
  json::value h = out.header.root();
  if (!h.is_object()) return fail(error::bad_header);
  auto alg = h.find("alg");
  if (!alg || !alg->is_string()) return fail(error::bad_header);
  if (alg->as_string() == "none") return fail(error::alg_none);
  auto a = parse_alg(alg->as_string());
  if (!a) return fail(error::unsupported_alg);
  out.alg = *a;
  if (h.find("crit")) return fail(error::unsupported_crit);
  if (auto kid = h.find("kid")) {
    if (!kid->is_string()) return fail(error::bad_header);
    out.kid = std::string(kid->as_string());
  }
  if (auto typ = h.find("typ")) {  // when present: a JWT or an access token (RFC 9068)
    if (!typ->is_string()) return fail(error::bad_header);
    std::string_view t = typ->as_string();
    if (t.size() > 12 && detail::iequals_ascii(t.substr(0, 12), "application/")) t.remove_prefix(12);
    if (!detail::iequals_ascii(t, "JWT") && !detail::iequals_ascii(t, "at+jwt")) return fail(error::bad_header);
  }

  if (!base64url::decode(p64, text)) return fail(error::bad_base64);
  auto claims = json::parse(text, lim);
  if (!claims) return rproxy::failure(detail::from_json_error(claims.error()));
  out.claims = std::move(*claims);
  if (!out.claims.root().is_object()) return fail(error::bad_claims);

  if (!base64url::decode(s64, out.signature)) return fail(error::bad_base64);
  out.signing_input = token.substr(0, d2);
  return out;
}

namespace detail {

inline const EVP_MD* md_of(jwt_alg a) noexcept { return fetched_md(hash_size(a)); }

inline std::size_t hmac_index(jwt_alg a) noexcept { return hash_size(a) == 32 ? 0 : hash_size(a) == 48 ? 1 : 2; }

// JWS ECDSA signatures are R || S, each the size of the curve order; OpenSSL wants DER.
inline bool ecdsa_raw_to_der(std::string_view raw, std::size_t half, std::string& der) {
  if (raw.size() != 2 * half) return false;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (sig == nullptr) return false;
  BIGNUM* r = BN_bin2bn(bytes(raw), static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(bytes(raw) + half, static_cast<int>(half), nullptr);
  if (r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return false;
  }
  int len = i2d_ECDSA_SIG(sig, nullptr);
  bool ok = len > 0;
  if (ok) {
    der.resize(static_cast<std::size_t>(len));
    auto* p = reinterpret_cast<unsigned char*>(der.data());
    ok = i2d_ECDSA_SIG(sig, &p) == len;
  }
  ECDSA_SIG_free(sig);
  return ok;
}

/// Whether `sig` is a valid signature of `input` under `key` with `alg` (key.accepts(alg) holds).
inline bool verify_with(const jwt_key& key, jwt_alg alg, std::string_view input, std::string_view sig) {
  if (key.family == key_family::hmac) {
    std::string mac;
    const auto& keyed = key.hmac[hmac_index(alg)];
    static constexpr const char* names[] = {"SHA256", "SHA384", "SHA512"};
    if (!(keyed ? hmac_with(keyed, input, mac) : hmac(names[hmac_index(alg)], key.secret, input, mac))) return false;
    return constant_time_equal(mac, sig);
  }
  std::string der;
  if (alg == jwt_alg::es256 || alg == jwt_alg::es384) {
    if (!ecdsa_raw_to_der(sig, alg == jwt_alg::es256 ? 32 : 48, der)) return false;
    sig = der;
  }
  md_ctx_ptr ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = alg == jwt_alg::eddsa ? nullptr : md_of(alg);
  bool ok = EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key.pkey.get()) == 1;
  if (ok && (alg == jwt_alg::ps256 || alg == jwt_alg::ps384 || alg == jwt_alg::ps512)) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1;
  } else if (ok && family_of(alg) == key_family::rsa) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
  }
  ok = ok && EVP_DigestVerify(ctx.get(), bytes(sig), sig.size(), bytes(input), input.size()) == 1;
  if (!ok) ERR_clear_error();
  return ok;
}

}  // namespace detail

/// Checks the signature with the key the token names ("kid") or, without a kid, with the first
/// cfg.max_keys_without_kid keys bound to the token's algorithm. Errors: unsupported_alg (not allowed by cfg), unknown_kid,
/// no_matching_key, bad_signature.
inline rproxy::result<void> verify_signature(const parsed_jwt& t, const key_set& keys, const jwt_config& cfg) {
  auto fail = [](error e) { return rproxy::result<void>(rproxy::failure(make_error_code(e))); };
  if (!cfg.algorithms.empty()) {
    bool allowed = false;
    for (auto a : cfg.algorithms) allowed |= a == t.alg;
    if (!allowed) return fail(error::unsupported_alg);
  }
  bool kid_seen = false, candidate = false;
  std::size_t tried = 0;
  for (const jwt_key& k : keys.keys()) {
    if (!t.kid.empty() && k.kid != t.kid) continue;
    kid_seen = true;
    if (!k.accepts(t.alg)) continue;
    candidate = true;
    if (t.kid.empty() && tried++ == cfg.max_keys_without_kid) break;
    if (detail::verify_with(k, t.alg, t.signing_input, t.signature)) return {};
  }
  if (!t.kid.empty() && !kid_seen) return fail(error::unknown_kid);
  if (!candidate) return fail(error::no_matching_key);
  return fail(error::bad_signature);
}

namespace detail {
inline bool contains(const std::vector<std::string>& list, std::string_view v) {
  for (const auto& s : list)
    if (s == v) return true;
  return false;
}
}  // namespace detail

/// Checks the registered claims of a (signature-verified) token at time `now`.
inline rproxy::result<void> check_claims(const json::document& claims, const jwt_config& cfg,
                                         std::chrono::system_clock::time_point now) {
  auto fail = [](error e) { return rproxy::result<void>(rproxy::failure(make_error_code(e))); };
  json::value c = claims.root();
  if (!c.is_object()) return fail(error::bad_claims);
  const double t = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double skew = static_cast<double>(cfg.leeway.count());

  if (auto exp = c.find("exp")) {
    if (!exp->is_number()) return fail(error::bad_claim_type);
    if (t >= exp->as_number() + skew) return fail(error::expired);
  } else if (cfg.require_exp) {
    return fail(error::missing_claim);
  }
  if (auto nbf = c.find("nbf")) {
    if (!nbf->is_number()) return fail(error::bad_claim_type);
    if (t + skew < nbf->as_number()) return fail(error::not_yet_valid);
  }
  if (auto iat = c.find("iat"); iat && !iat->is_number()) return fail(error::bad_claim_type);
  if (auto sub = c.find("sub"); sub && !sub->is_string()) return fail(error::bad_claim_type);

  if (!cfg.issuers.empty()) {
    auto iss = c.find("iss");
    if (!iss || !iss->is_string() || !detail::contains(cfg.issuers, iss->as_string())) return fail(error::bad_issuer);
  }
  if (!cfg.audiences.empty()) {
    auto aud = c.find("aud");
    if (!aud) return fail(error::bad_audience);
    bool ok = false;
    if (aud->is_string()) {
      ok = detail::contains(cfg.audiences, aud->as_string());
    } else if (aud->is_array()) {
      for (json::value a : aud->children()) {
        if (!a.is_string()) return fail(error::bad_claim_type);
        ok |= detail::contains(cfg.audiences, a.as_string());
      }
    } else {
      return fail(error::bad_claim_type);
    }
    if (!ok) return fail(error::bad_audience);
  }
  for (const auto& name : cfg.required_claims)
    if (!c.find(name)) return fail(error::missing_claim);
  return {};
}

/// Parses, verifies the signature, then checks the claims.
inline rproxy::result<verified_jwt> verify_jwt(std::string_view token, const key_set& keys, const jwt_config& cfg,
                                               std::chrono::system_clock::time_point now) {
  auto p = parse_jwt(token, cfg.max_token_bytes);
  if (!p) return rproxy::failure(p.error());
  if (auto r = verify_signature(*p, keys, cfg); !r) return rproxy::failure(r.error());
  if (auto r = check_claims(p->claims, cfg, now); !r) return rproxy::failure(r.error());
  verified_jwt v;
  v.alg = p->alg;
  v.kid = std::move(p->kid);
  v.claims = std::move(p->claims);
  return v;
}

/// The text form of a claim for headers and rate-limit keys: strings as is, numbers as written,
/// booleans as true/false, arrays of those joined with ','. Objects and null give nullopt.
inline std::optional<std::string> claim_text(json::value v) {
  switch (v.type()) {
    case json::kind::string:
    case json::kind::number: return std::string(v.as_string());
    case json::kind::boolean: return std::string(v.as_bool() ? "true" : "false");
    case json::kind::array: {
      std::string s;
      for (json::value e : v.children()) {
        if (e.is_array() || e.is_object() || e.is_null()) return std::nullopt;
        if (!s.empty()) s += ',';
        s += *claim_text(e);
      }
      return s;
    }
    default: return std::nullopt;
  }
}

}  // namespace rproxy::middleware
