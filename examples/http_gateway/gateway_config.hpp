// examples/http_gateway/gateway_config.hpp: the YAML of the HTTP gateway, declared once (the
// decoder, `init` and `validate` come from rproxy/config), and its translation into the
// middleware stages' own config structs.
#pragma once

#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/codec/http1/message.hpp>
#include <rproxy/app/config_blocks.hpp>
#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/middleware/jwt_auth.hpp>
#include <rproxy/middleware/rate_limit.hpp>

namespace http_gateway {

using namespace std::chrono_literals;
namespace cfg = rproxy::config;
namespace mw = rproxy::middleware;

struct backend_config {
  cfg::endpoint address;
  static constexpr auto describe() {
    return cfg::fields(cfg::required<&backend_config::address>("backend IP address and port (HTTP/1.1)"));
  }
};

struct limits_config {
  std::chrono::milliseconds header_timeout = 10s;
  std::chrono::milliseconds idle_timeout = 60s;
  std::chrono::milliseconds connect_timeout = 5s;
  cfg::byte_size max_header = cfg::byte_size::kib(16);
  std::uint32_t max_header_count = 100;
  cfg::byte_size max_body = cfg::byte_size::mib(8);
  cfg::byte_size buffer_size = cfg::byte_size::kib(16);
  static constexpr auto describe() {
    return cfg::fields(
        cfg::doc<&limits_config::header_timeout>("a request head must arrive whole within this (slowloris); also the keep-alive wait"),
        cfg::doc<&limits_config::idle_timeout>("no progress on a body or a response for this long ends the connection"),
        cfg::doc<&limits_config::connect_timeout>("give up on a backend after this long, try the next"),
        cfg::doc<&limits_config::max_header>("request header section (431 beyond)"),
        cfg::doc<&limits_config::max_header_count>("request header lines (431 beyond)"),
        cfg::doc<&limits_config::max_body>("request body (413 beyond)"),
        cfg::doc<&limits_config::buffer_size>("body buffer per direction per connection (bounds memory)"));
  }
};

struct ip_filter_block {
  bool default_allow = true;
  std::vector<std::string> allow;
  std::vector<std::string> deny;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&ip_filter_block::default_allow>("when no block matches the client"),
                       cfg::doc<&ip_filter_block::allow>("CIDRs let in (the most specific block decides)"),
                       cfg::doc<&ip_filter_block::deny>("CIDRs refused with 403"));
  }
};

struct conn_limit_block {
  std::uint32_t max_per_ip = 0;
  std::uint32_t max_total = 0;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&conn_limit_block::max_per_ip>("open connections per client (IPv6: per /64); 0: no cap"),
                       cfg::doc<&conn_limit_block::max_total>("open connections in all; 0: no cap"));
  }
};

struct bans_block {
  std::string file;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&bans_block::file>("ban file (docs/security.md), re-read on reload; empty: none"));
  }
};

enum class key_type { pem, jwks, hmac };
constexpr auto config_enum_names(key_type) {
  return std::array{cfg::enum_name{"pem", key_type::pem}, cfg::enum_name{"jwks", key_type::jwks},
                    cfg::enum_name{"hmac", key_type::hmac}};
}

struct jwt_key_config {
  key_type type = key_type::jwks;
  std::string file;
  std::string kid;
  std::string algorithm;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&jwt_key_config::type>("pem (public key or certificate), jwks, or hmac (a file holding the secret)"),
                       cfg::required<&jwt_key_config::file>("where the key is; re-read on reload"),
                       cfg::doc<&jwt_key_config::kid>("pem, hmac: the key id tokens name (empty: any)"),
                       cfg::doc<&jwt_key_config::algorithm>("pem, hmac: the one algorithm allowed with this key, e.g. RS256"));
  }
};

struct forward_config {
  std::string claim;
  std::string header;
  static constexpr auto describe() {
    return cfg::fields(cfg::required<&forward_config::claim>("claim of a verified token"),
                       cfg::required<&forward_config::header>("request header the backend gets it in (a client's own is dropped)"));
  }
};

struct jwt_block {
  std::vector<jwt_key_config> keys;
  std::vector<std::string> issuers;
  std::vector<std::string> audiences;
  std::chrono::seconds leeway = 30s;
  std::vector<std::string> algorithms;
  std::string cookie;
  std::string query;
  std::string tier_claim = "tier";
  std::vector<forward_config> forward;
  static constexpr auto describe() {
    return cfg::fields(cfg::required<&jwt_block::keys>("verification keys"),
                       cfg::doc<&jwt_block::issuers>("accepted iss values; empty: not checked"),
                       cfg::doc<&jwt_block::audiences>("aud must name one of these; empty: not checked"),
                       cfg::doc<&jwt_block::leeway>("clock skew allowed on exp and nbf"),
                       cfg::doc<&jwt_block::algorithms>("accepted algorithms; empty: all implemented"),
                       cfg::doc<&jwt_block::cookie>("also take the token from this cookie"),
                       cfg::doc<&jwt_block::query>("also take the token from this query parameter"),
                       cfg::doc<&jwt_block::tier_claim>("claim naming the rate-limit tier"),
                       cfg::doc<&jwt_block::forward>("claims passed to the backend as headers"));
  }
};

struct api_keys_block {
  std::string file;
  std::string header = "X-API-Key";
  static constexpr auto describe() {
    return cfg::fields(cfg::required<&api_keys_block::file>("hashed key file (sha256 name [tier] per line); re-read on reload"),
                       cfg::doc<&api_keys_block::header>("request header carrying the key"));
  }
};

enum class rate_algorithm { token_bucket, sliding_window };
constexpr auto config_enum_names(rate_algorithm) {
  return std::array{cfg::enum_name{"token_bucket", rate_algorithm::token_bucket},
                    cfg::enum_name{"sliding_window", rate_algorithm::sliding_window}};
}

struct tier_config {
  std::string name = "default";
  rate_algorithm algorithm = rate_algorithm::token_bucket;
  std::uint32_t limit = 10;
  std::chrono::milliseconds window = 1s;
  std::uint32_t burst = 0;
  static constexpr auto describe() {
    return cfg::fields(cfg::required<&tier_config::name>("tier name (from the tier claim or the API key file)"),
                       cfg::doc<&tier_config::algorithm>("token_bucket or sliding_window"),
                       cfg::required<&tier_config::limit>("requests per window"),
                       cfg::doc<&tier_config::window>("the window"),
                       cfg::doc<&tier_config::burst>("token_bucket capacity; 0: limit"));
  }
};

struct penalty_config {
  std::uint32_t after = 0;
  std::chrono::milliseconds block = 10s;
  std::chrono::milliseconds max_block = 1h;
  std::chrono::milliseconds forgive_after = 10min;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&penalty_config::after>("refusals before a key is blocked; 0: never"),
                       cfg::doc<&penalty_config::block>("first block; doubles with each further refusal"),
                       cfg::doc<&penalty_config::max_block>("longest block"),
                       cfg::doc<&penalty_config::forgive_after>("refusals older than this are forgotten"));
  }
};

struct rate_limit_block {
  std::vector<std::string> key{"ip"};
  std::vector<std::string> trusted_headers;
  std::string default_tier = "default";
  std::vector<tier_config> tiers;
  penalty_config penalty{};
  std::uint32_t max_keys = 100000;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&rate_limit_block::key>("key parts: ip, identity, api_key, claim:NAME, header:NAME"),
                       cfg::doc<&rate_limit_block::trusted_headers>("headers a trusted proxy in front sets (a client cannot): only these may be header:NAME keys"),
                       cfg::doc<&rate_limit_block::default_tier>("tier of anonymous flows and unknown tiers"),
                       cfg::required<&rate_limit_block::tiers>("request limits per tier"),
                       cfg::doc<&rate_limit_block::penalty>("back-off for repeat offenders"),
                       cfg::doc<&rate_limit_block::max_keys>("counters kept (least recently used evicted)"));
  }
};

struct audit_block {
  std::string file;
  double per_second = 20;
  std::uint32_t burst = 100;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc<&audit_block::file>("append audit lines here; empty: the main log"),
                       cfg::doc<&audit_block::per_second>("audit lines per second (more are counted, not written)"),
                       cfg::doc<&audit_block::burst>("audit lines at once"));
  }
};

struct forwarding_block {
  std::vector<std::string> trusted_proxies;
  bool allow_underscore_headers = false;
  std::vector<std::string> allow_trailers;
  static constexpr auto describe() {
    return cfg::fields(
        cfg::doc<&forwarding_block::trusted_proxies>("CIDRs of proxies in front of the gateway: their X-Forwarded-For, Forwarded, X-Real-IP, "
                 "X-Forwarded-Host/Proto are extended; anyone else's are replaced"),
        cfg::doc<&forwarding_block::allow_underscore_headers>("forward request headers whose names contain '_'"),
        cfg::doc<&forwarding_block::allow_trailers>("request trailers forwarded (others are dropped)"));
  }
};

struct config {
  rproxy::app::admin_config admin{};
  std::string name = "gateway";
  cfg::endpoint listen{"127.0.0.1", 8080};
  std::vector<backend_config> backends;
  limits_config limits{};
  ip_filter_block ip_filter{};
  conn_limit_block conn_limit{};
  bans_block bans{};
  std::optional<jwt_block> jwt;
  std::optional<api_keys_block> api_keys;
  bool require_auth = true;
  std::optional<rate_limit_block> rate_limit;
  audit_block audit{};
  forwarding_block forwarding{};

  static constexpr auto describe() {
    return cfg::fields(
        cfg::doc<&config::admin>("admin HTTP endpoint (off when listen is unset)"),
        cfg::doc<&config::name>("route label in metrics"),
        cfg::doc<&config::listen>("address and port clients connect to"),
        cfg::required<&config::backends>("HTTP/1.1 backends, round robin"),
        cfg::doc<&config::limits>("timeouts and sizes"),
        cfg::doc<&config::ip_filter>("allow/deny lists, per connection"),
        cfg::doc<&config::conn_limit>("connection caps"),
        cfg::doc<&config::bans>("bans by address or identity"),
        cfg::doc<&config::jwt>("JWT bearer tokens (Authorization: Bearer, optional cookie/query)"),
        cfg::doc<&config::api_keys>("API keys"),
        cfg::doc<&config::require_auth>("with jwt or api_keys set: a request needs a valid token or key (else 401)"),
        cfg::doc<&config::rate_limit>("request rate limits"),
        cfg::doc<&config::audit>("security audit log: one line per rejection, no secrets"),
        cfg::doc<&config::forwarding>("which request headers and trailers reach the backends"));
  }

  void validate(cfg::validator& v) const {
    auto ip = [&](const cfg::endpoint& e) {
      std::error_code ec;
      (void)asio::ip::make_address(e.host, ec);
      return !ec;
    };
    if (!ip(listen)) v.at(&config::listen).error("listen address must be an IP address: '" + listen.host + "'");
    if (backends.empty()) v.at(&config::backends).error("at least one backend");
    for (std::size_t i = 0; i < backends.size(); ++i)
      if (!ip(backends[i].address))
        v.at(&config::backends).at(i).at(&backend_config::address).error("backend address must be an IP address");
    for (const auto* list : {&ip_filter.allow, &ip_filter.deny})
      for (std::size_t i = 0; i < list->size(); ++i)
        if (!mw::cidr::parse((*list)[i]))
          v.at(&config::ip_filter).at(list == &ip_filter.allow ? &ip_filter_block::allow : &ip_filter_block::deny).at(i)
              .error("not a CIDR: '" + (*list)[i] + "'");
    for (std::size_t i = 0; i < forwarding.trusted_proxies.size(); ++i)
      if (!mw::cidr::parse(forwarding.trusted_proxies[i]))
        v.at(&config::forwarding).at(&forwarding_block::trusted_proxies).at(i)
            .error("not a CIDR: '" + forwarding.trusted_proxies[i] + "'");
    for (std::size_t i = 0; i < forwarding.allow_trailers.size(); ++i)
      if (!rproxy::codec::http1::is_valid_field_name(forwarding.allow_trailers[i]))
        v.at(&config::forwarding).at(&forwarding_block::allow_trailers).at(i).error("not a header name");
    if (jwt) {
      for (std::size_t i = 0; i < jwt->keys.size(); ++i)
        if (!jwt->keys[i].algorithm.empty() && !mw::parse_alg(jwt->keys[i].algorithm))
          v.at(&config::jwt).at(&jwt_block::keys).at(i).at(&jwt_key_config::algorithm).error("unknown algorithm '" + jwt->keys[i].algorithm + "'");
      for (std::size_t i = 0; i < jwt->algorithms.size(); ++i)
        if (!mw::parse_alg(jwt->algorithms[i]))
          v.at(&config::jwt).at(&jwt_block::algorithms).at(i).error("unknown algorithm '" + jwt->algorithms[i] + "'");
      for (std::size_t i = 0; i < jwt->forward.size(); ++i)
        if (!rproxy::codec::http1::is_valid_field_name(jwt->forward[i].header))
          v.at(&config::jwt).at(&jwt_block::forward).at(i).at(&forward_config::header).error("not a header name");
    }
    if (api_keys && !rproxy::codec::http1::is_valid_field_name(api_keys->header))
      v.at(&config::api_keys).at(&api_keys_block::header).error("not a header name");
    if (rate_limit)
      for (std::size_t i = 0; i < rate_limit->key.size(); ++i) {
        const std::string& k = rate_limit->key[i];
        const bool ok = k == "ip" || k == "identity" || k == "api_key" || (k.starts_with("claim:") && k.size() > 6) ||
                        (k.starts_with("header:") && k.size() > 7);
        if (!ok) v.at(&config::rate_limit).at(&rate_limit_block::key).at(i).error("unknown key part '" + k + "'");
        bool trusted = false;  // a header the client chooses would give it a fresh bucket per request
        for (const auto& t : rate_limit->trusted_headers)
          trusted = trusted || (k.size() > 7 && rproxy::codec::http1::detail::iequals(k.substr(7), t));
        if (ok && k.starts_with("header:") && !trusted)
          v.at(&config::rate_limit).at(&rate_limit_block::key).at(i).error(
              "'" + k + "' is chosen by the client (a fresh bucket per request): list the header in "
              "rate_limit.trusted_headers only if a trusted proxy in front sets it");
      }
  }
};

// ---- YAML blocks to the stages' configs -------------------------------------------------

inline std::vector<mw::key_source> key_sources(const jwt_block& j) {
  std::vector<mw::key_source> out;
  for (const auto& k : j.keys) {
    mw::key_source s;
    s.type = k.type == key_type::pem    ? mw::key_source::kind::pem_file
             : k.type == key_type::hmac ? mw::key_source::kind::hmac_secret_file
                                        : mw::key_source::kind::jwks_file;
    s.path = k.file;
    s.kid = k.kid;
    if (!k.algorithm.empty()) s.alg = mw::parse_alg(k.algorithm);
    out.push_back(std::move(s));
  }
  return out;
}

inline mw::jwt_auth_config jwt_config(const jwt_block& j, const std::optional<rate_limit_block>& rl) {
  mw::jwt_auth_config c;
  c.token.issuers = j.issuers;
  c.token.audiences = j.audiences;
  c.token.leeway = j.leeway;
  for (const auto& a : j.algorithms) c.token.algorithms.push_back(*mw::parse_alg(a));
  c.sources = {mw::credential_source{}};  // Authorization: Bearer
  using place = mw::credential_source::place;
  if (!j.cookie.empty()) c.sources.push_back({place::cookie, j.cookie, ""});
  if (!j.query.empty()) c.sources.push_back({place::query, j.query, ""});
  c.optional = true;  // "no credentials" is require_auth's call: a JWT or an API key will do
  c.tier_claim = j.tier_claim;
  c.keep_claims.clear();
  if (rl)
    for (const auto& k : rl->key)
      if (k.starts_with("claim:")) c.keep_claims.push_back(k.substr(6));
  for (const auto& f : j.forward) c.forward.push_back({f.claim, f.header});
  return c;
}

inline mw::rate_limit_config rate_config(const rate_limit_block& b) {
  mw::rate_limit_config c;
  c.key.clear();
  using S = mw::rate_key_part::source;
  for (const auto& k : b.key) {
    if (k == "ip") c.key.push_back({S::ip, {}});
    else if (k == "identity") c.key.push_back({S::identity, {}});
    else if (k == "api_key") c.key.push_back({S::api_key, {}});
    else if (k.starts_with("claim:")) c.key.push_back({S::claim, k.substr(6)});
    else if (k.starts_with("header:")) c.key.push_back({S::header, k.substr(7)});
  }
  c.default_tier = b.default_tier;
  c.hello_operation = "request";
  for (const auto& t : b.tiers) {
    mw::rate_rule r;
    r.algorithm = t.algorithm == rate_algorithm::sliding_window ? mw::rate_algorithm::sliding_window
                                                                 : mw::rate_algorithm::token_bucket;
    r.limit = t.limit;
    r.window = t.window;
    r.burst = t.burst;
    c.tiers.push_back({t.name, {{"request", r}}});
  }
  c.penalty = {b.penalty.after, b.penalty.block, b.penalty.max_block, b.penalty.forgive_after};
  return c;
}

}  // namespace http_gateway

