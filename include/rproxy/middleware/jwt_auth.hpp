// rproxy/middleware/jwt_auth.hpp: the JWT pipeline stage. On the request head / upgrade request
// (on_hello) it finds the token (Authorization: Bearer, a cookie or a query parameter), verifies
// it (jwt.hpp) against the live key_store, and on success publishes the principal (sub, tier,
// kept claims) for later stages, sets ctx.identity = sub, and prepares claim-to-header forwards.
// Failures reject with reject_code::unauthorized and a generic message (the precise reason goes
// to the audit log only).
//
//     rproxy::middleware::jwt_auth_config cfg;            // owned by the config snapshot
//     cfg.token.audiences = {"chat"};
//     cfg.forward = {{"sub", "X-User"}, {"role", "X-Role"}};
//     rproxy::middleware::key_store keys({{key_source::kind::jwks_file, "jwks.json"}});
//     auto p = rproxy::make_pipeline<http_protocol>(rproxy::middleware::jwt_auth{&cfg, &keys, &audit}, ...);
//     // later: ctx.state<jwt_auth>().forward_headers, find_principal(ctx)->claim("role")
//     // a flow type with `request_fields` (flow/http_flow.hpp's http_flow) gets them set there,
//     // with every configured forward header set (empty when absent) so a client cannot forge one;
//     // with forward_token = false, the token's header is removed there too.
//
// Decision logic without a pipeline: authenticate(req, now) -> result<verified_jwt>.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/core/result.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/drop_credentials.hpp>
#include <rproxy/middleware/error.hpp>
#include <rproxy/middleware/jwt.hpp>
#include <rproxy/middleware/jwt_key.hpp>
#include <rproxy/middleware/principal.hpp>
#include <rproxy/middleware/request_view.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

/// A claim copied into a request header for the backend ("sub" -> "X-User").
struct claim_header {
  std::string claim;
  std::string header;
};

struct jwt_auth_config {
  jwt_config token;  ///< issuer, audience, leeway, required claims, algorithms
  std::vector<credential_source> sources{credential_source{}};  ///< default: Authorization: Bearer
  bool optional = false;           ///< no token: pass as anonymous (a bad token still rejects)
  std::string tier_claim = "tier"; ///< claim giving the rate-limit tier; empty: none
  std::vector<std::string> keep_claims{"role"};  ///< claims kept in the principal for later stages
  std::vector<claim_header> forward;  ///< claims forwarded to the backend as headers
  /// Pass the token's header (Authorization) on to the backend, which may verify it again or
  /// call other services with it. false: removed from the request sent upstream.
  bool forward_token = true;
  std::string reject_message = "invalid or missing token";
};

template <class Tag = void, class Clock = std::chrono::system_clock>
struct basic_jwt_auth {
  /// Made when a token is verified (pipeline/context.hpp): a flow without one (no jwt block,
  /// an optional token not sent) holds a null pointer, not 150 bytes.
  static constexpr bool state_on_demand = true;
  struct state {
    principal auth;
    /// Headers to add to the upstream request: (config-owned header name, claim text).
    std::vector<std::pair<std::string_view, std::string>> forward_headers;
  };

  const jwt_auth_config* cfg = nullptr;
  const key_store* keys = nullptr;
  audit_log* audit = nullptr;

  /// Finds and verifies the request's token. error::missing_credentials when there is none.
  template <class Req>
  rproxy::result<verified_jwt> authenticate(const Req& req, typename Clock::time_point now) const {
    auto token = find_credential(req, std::span<const credential_source>(cfg->sources));
    if (!token) return rproxy::failure(make_error_code(error::missing_credentials));
    auto ks = keys->current();
    return verify_jwt(*token, *ks, cfg->token, std::chrono::time_point_cast<std::chrono::system_clock::duration>(now));
  }

  /// Fills a principal and the forwarded headers from a verified token.
  void publish(const verified_jwt& t, state& s) const {
    s.auth.authenticated = true;
    s.auth.subject = std::string(t.subject());
    s.auth.tier.clear();
    s.auth.claims.clear();
    if (!cfg->tier_claim.empty())
      if (auto v = t.claim(cfg->tier_claim))
        if (auto text = claim_text(*v)) s.auth.tier = std::move(*text);
    for (const auto& name : cfg->keep_claims)
      if (auto v = t.claim(name))
        if (auto text = claim_text(*v)) s.auth.claims.emplace_back(name, std::move(*text));
    s.forward_headers.clear();
    for (const auto& f : cfg->forward)
      if (auto v = t.claim(f.claim))
        if (auto text = claim_text(*v); text && header_safe(*text))
          s.forward_headers.emplace_back(f.header, std::move(*text));
  }

  template <class Ctx, request_view Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    constexpr bool owns_fields = requires { ctx.request_fields.set(std::string_view(), std::string_view()); };
    if constexpr (owns_fields) {  // a client's own value of a forwarded claim never reaches the backend
      for (const auto& f : cfg->forward) ctx.request_fields.set(f.header, std::string_view());
    }
    // The token's header, query parameter or cookie (middleware/drop_credentials.hpp), dropped
    // whatever the outcome, as api_key_auth does.
    if (!cfg->forward_token) drop_credentials(ctx, req, std::span<const credential_source>(cfg->sources));
    auto r = authenticate(req, Clock::now());
    if (!r) {
      if (r.error() == error::missing_credentials && cfg->optional) return rproxy::next;
      return reject_and_audit(ctx, audit, {reject_code::unauthorized, cfg->reject_message}, "jwt_auth",
                              r.error().message());
    }
    auto& s = ctx.template state<basic_jwt_auth>();
    publish(*r, s);
    if constexpr (owns_fields)
      for (const auto& [header, value] : s.forward_headers) ctx.request_fields.set(header, value);
    ctx.identity = s.auth.subject;
    return rproxy::next;
  }

  /// No CR, LF, NUL or other control bytes: the value cannot split or forge a header.
  static bool header_safe(std::string_view v) noexcept {
    for (char c : v) {
      auto u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7F) return false;
    }
    return true;
  }
};

/// The everyday JWT stage (system clock).
using jwt_auth = basic_jwt_auth<>;

}  // namespace rproxy::middleware
