// rproxy/middleware/jwt_block.hpp: the YAML block of the jwt_auth stage, declared once.
//
//     jwt:
//       keys: [ { type: hmac, file: jwt.secret, kid: demo, algorithm: HS256 } ]
//       issuers: [ https://idp.example ]
//       audiences: [ api ]
//       forward: [ { claim: sub, header: X-User } ]
//
//     std::optional<mw::jwt_block> jwt;             // in the app's config struct
//     mw::key_store keys(c.jwt->key_sources());      // reload() at start and on reload
//     mw::jwt_auth_config jc = c.jwt->config(keep_claims);
#pragma once

#include <array>
#include <chrono>
#include <string>
#include <vector>

#include <rproxy/codec/http1/message.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/middleware/jwt_auth.hpp>
#include <rproxy/middleware/jwt_key.hpp>

namespace rproxy::middleware {

enum class jwt_key_type { pem, jwks, hmac };
constexpr auto config_enum_names(jwt_key_type) {
  namespace cfg = rproxy::config;
  return std::array{cfg::enum_name{"pem", jwt_key_type::pem}, cfg::enum_name{"jwks", jwt_key_type::jwks},
                    cfg::enum_name{"hmac", jwt_key_type::hmac}};
}

struct jwt_key_block {
  jwt_key_type type = jwt_key_type::jwks;
  std::string file;
  std::string kid;
  std::string algorithm;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&jwt_key_block::type>("pem (public key or certificate), jwks, or hmac (a file holding the secret)"),
                       cfg::required<&jwt_key_block::file>("where the key is; re-read on reload"),
                       cfg::doc<&jwt_key_block::kid>("pem, hmac: the key id tokens name (empty: any)"),
                       cfg::doc<&jwt_key_block::algorithm>("pem, hmac: the one algorithm allowed with this key, e.g. RS256"));
  }
  void validate(rproxy::config::validator& v) const {
    if (!algorithm.empty() && !parse_alg(algorithm)) v.at(&jwt_key_block::algorithm).error("unknown algorithm '" + algorithm + "'");
  }
};

struct jwt_forward_block {
  std::string claim;
  std::string header;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&jwt_forward_block::claim>("claim of a verified token"),
                       cfg::required<&jwt_forward_block::header>("request header the backend gets it in (a client's own is dropped)"));
  }
  void validate(rproxy::config::validator& v) const {
    if (!codec::http1::is_valid_field_name(header)) v.at(&jwt_forward_block::header).error("not a header name");
  }
};

struct jwt_block {
  std::vector<jwt_key_block> keys;
  std::vector<std::string> issuers;
  std::vector<std::string> audiences;
  std::chrono::seconds leeway{30};
  std::vector<std::string> algorithms;
  std::string cookie;
  std::string query;
  std::string tier_claim = "tier";
  std::vector<jwt_forward_block> forward;
  bool forward_token = true;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&jwt_block::keys>("verification keys"),
                       cfg::doc<&jwt_block::issuers>("accepted iss values; empty: not checked"),
                       cfg::doc<&jwt_block::audiences>("aud must name one of these; empty: not checked"),
                       cfg::doc<&jwt_block::leeway>("clock skew allowed on exp and nbf"),
                       cfg::doc<&jwt_block::algorithms>("accepted algorithms; empty: all implemented"),
                       cfg::doc<&jwt_block::cookie>("also take the token from this cookie"),
                       cfg::doc<&jwt_block::query>("also take the token from this query parameter"),
                       cfg::doc<&jwt_block::tier_claim>("claim naming the rate-limit tier"),
                       cfg::doc<&jwt_block::forward>("claims passed to the backend as headers"),
                       cfg::doc<&jwt_block::forward_token>(
                           "pass the token on to the backend (false: the Authorization header removed, the query parameter and cookie taken out)"));
  }
  void validate(rproxy::config::validator& v) const {
    for (std::size_t i = 0; i < algorithms.size(); ++i)
      if (!parse_alg(algorithms[i])) v.at(&jwt_block::algorithms).at(i).error("unknown algorithm '" + algorithms[i] + "'");
    if (!query.empty() && query.find_first_of("&=#?; ") != std::string::npos)
      v.at(&jwt_block::query).error("not a query parameter name (no '&', '=', '#', '?', ';' or space)");
    if (!cookie.empty() && !codec::http1::is_valid_field_name(cookie)) v.at(&jwt_block::cookie).error("not a cookie name (a token)");
  }

  /// Where the key store reads the keys.
  std::vector<key_source> key_sources() const {
    std::vector<key_source> out;
    for (const auto& k : keys) {
      key_source s;
      s.type = k.type == jwt_key_type::pem    ? key_source::kind::pem_file
               : k.type == jwt_key_type::hmac ? key_source::kind::hmac_secret_file
                                              : key_source::kind::jwks_file;
      s.path = k.file;
      s.kid = k.kid;
      if (!k.algorithm.empty()) s.alg = parse_alg(k.algorithm);
      out.push_back(std::move(s));
    }
    return out;
  }

  /// The stage's config: the Bearer header, then the cookie and query parameter if named;
  /// `keep_claims` are kept in the principal for later stages (a rate limit key's claims).
  jwt_auth_config config(std::vector<std::string> keep_claims = {}) const {
    jwt_auth_config c;
    c.token.issuers = issuers;
    c.token.audiences = audiences;
    c.token.leeway = leeway;
    for (const auto& a : algorithms) c.token.algorithms.push_back(*parse_alg(a));
    c.sources = {credential_source{}};  // Authorization: Bearer
    using place = credential_source::place;
    if (!cookie.empty()) c.sources.push_back({place::cookie, cookie, ""});
    if (!query.empty()) c.sources.push_back({place::query, query, ""});
    c.tier_claim = tier_claim;
    c.keep_claims = std::move(keep_claims);
    for (const auto& f : forward) c.forward.push_back({f.claim, f.header});
    c.forward_token = forward_token;
    return c;
  }
};

}  // namespace rproxy::middleware
