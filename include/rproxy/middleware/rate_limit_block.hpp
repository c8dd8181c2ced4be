// rproxy/middleware/rate_limit_block.hpp: the YAML block of the rate_limit stage (one counted
// operation, tiers, back-off), declared once.
//
//     rate_limit:
//       key: [ identity ]
//       tiers: [ { name: default, limit: 10, window: 1s, burst: 20 } ]
//       penalty: { after: 5, block: 10s }
//
//     std::optional<mw::rate_limit_block> rate_limit;   // in the app's config struct
//     mw::rate_limit_config rc = c.rate_limit->config("request");   // counted on_hello
#pragma once

#include <algorithm>
#include <cctype>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/middleware/rate_limit.hpp>

namespace rproxy::middleware {

constexpr auto config_enum_names(rate_algorithm) {
  namespace cfg = rproxy::config;
  return std::array{cfg::enum_name{"token_bucket", rate_algorithm::token_bucket},
                    cfg::enum_name{"sliding_window", rate_algorithm::sliding_window}};
}

struct rate_tier_block {
  std::string name = "default";
  rate_algorithm algorithm = rate_algorithm::token_bucket;
  std::uint32_t limit = 10;
  std::chrono::milliseconds window{1000};
  std::uint32_t burst = 0;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&rate_tier_block::name>("tier name (from the tier claim or the API key file)"),
                       cfg::doc<&rate_tier_block::algorithm>("token_bucket or sliding_window"),
                       cfg::required<&rate_tier_block::limit>("operations per window"),
                       cfg::doc<&rate_tier_block::window>("the window"),
                       cfg::doc<&rate_tier_block::burst>("token_bucket capacity; 0: limit"));
  }
};

struct rate_penalty_block {
  std::uint32_t after = 0;
  std::chrono::milliseconds block{10'000};
  std::chrono::milliseconds max_block{3'600'000};
  std::chrono::milliseconds forgive_after{600'000};
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&rate_penalty_block::after>("refusals before a key is blocked; 0: never"),
                       cfg::doc<&rate_penalty_block::block>("first block; doubles with each further refusal"),
                       cfg::doc<&rate_penalty_block::max_block>("longest block"),
                       cfg::doc<&rate_penalty_block::forgive_after>("refusals older than this are forgotten"));
  }
};

constexpr auto config_enum_names(rate_mode) {
  namespace cfg = rproxy::config;
  return std::array{cfg::enum_name{"local", rate_mode::local}, cfg::enum_name{"exact", rate_mode::exact},
                    cfg::enum_name{"batched", rate_mode::batched}};
}
constexpr auto config_enum_names(rate_failure) {
  namespace cfg = rproxy::config;
  return std::array{cfg::enum_name{"local", rate_failure::local}, cfg::enum_name{"open", rate_failure::open},
                    cfg::enum_name{"closed", rate_failure::closed}};
}

/// One route's own sharing (else the block's).
struct rate_route_sharing_block {
  std::string route;
  rate_mode mode = rate_mode::exact;
  rate_failure on_failure = rate_failure::local;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&rate_route_sharing_block::route>("route name"),
                       cfg::doc<&rate_route_sharing_block::mode>("local, exact or batched"),
                       cfg::doc<&rate_route_sharing_block::on_failure>("while Redis is unreachable: local, open or closed"));
  }
};

/// Limits shared by every instance through the app's `redis:` block (docs/scaling.md).
struct rate_distributed_block {
  rate_mode mode = rate_mode::exact;
  rate_failure on_failure = rate_failure::local;
  std::chrono::milliseconds sync_interval{100};
  std::vector<rate_route_sharing_block> routes;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&rate_distributed_block::mode>(
            "local (this process), exact (one atomic Redis script per request: the instances together admit within the limit) "
            "or batched (counts synced every sync_interval: at most the limit plus what one interval lets through)"),
        cfg::doc<&rate_distributed_block::on_failure>("while Redis is unreachable: local (count here), open (admit) or closed (refuse)"),
        cfg::doc<&rate_distributed_block::sync_interval>("batched mode: how often counts are synced"),
        cfg::doc<&rate_distributed_block::routes>("routes with their own mode and failure policy"));
  }
  void validate(rproxy::config::validator& v) const {
    if (sync_interval.count() <= 0) v.at(&rate_distributed_block::sync_interval).error("must be positive");
  }
  /// Puts this sharing (the block's, each route's) into a stage's config.
  void apply(rate_limit_config& c) const {
    c.sharing = {mode, on_failure};
    c.route_sharing.clear();
    for (const auto& r : routes) c.route_sharing.emplace_back(r.route, rate_sharing{r.mode, r.on_failure});
  }
  /// What limits do while Redis is unreachable, for the log: "rate limits on_failure=local
  /// (route login: closed)".
  std::string failure_policy() const {
    auto name = [](rate_failure f) { return f == rate_failure::open ? "open" : f == rate_failure::closed ? "closed" : "local"; };
    std::string s = std::string("rate limits on_failure=") + name(on_failure);
    for (const auto& r : routes)
      if (r.on_failure != on_failure) s += std::string(" (route ") + r.route + ": " + name(r.on_failure) + ")";
    return s;
  }
};

struct rate_limit_block {
  std::vector<std::string> key{"ip"};
  std::vector<std::string> trusted_headers;
  std::string default_tier = "default";
  std::vector<rate_tier_block> tiers;
  rate_penalty_block penalty{};
  std::uint32_t max_keys = 100000;
  std::optional<rate_distributed_block> distributed;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&rate_limit_block::key>("key parts: ip, identity, api_key, route, claim:NAME, header:NAME"),
                       cfg::doc<&rate_limit_block::trusted_headers>(
                           "headers a trusted proxy in front sets (a client cannot): only these may be header:NAME keys"),
                       cfg::doc<&rate_limit_block::default_tier>("tier of anonymous flows and unknown tiers"),
                       cfg::required<&rate_limit_block::tiers>("limits per tier"),
                       cfg::doc<&rate_limit_block::penalty>("back-off for repeat offenders"),
                       cfg::doc<&rate_limit_block::max_keys>("counters kept (least recently used evicted)"),
                       cfg::doc<&rate_limit_block::distributed>("share the limits with other instances through Redis (needs a redis: block)"));
  }
  void validate(rproxy::config::validator& v) const {
    for (std::size_t i = 0; i < key.size(); ++i) {
      const auto& k = key[i];
      if (!part(k)) {
        v.at(&rate_limit_block::key).at(i).error("unknown key part '" + k + "'");
        continue;
      }
      // A header the client chooses would give it a fresh bucket per request.
      if (!k.starts_with("header:")) continue;
      bool trusted = false;
      for (const auto& t : trusted_headers) trusted = trusted || iequal(std::string_view(k).substr(7), t);
      if (!trusted)
        v.at(&rate_limit_block::key).at(i).error("'" + k + "' is chosen by the client (a fresh bucket per request): list the header in "
                                                 "rate_limit.trusted_headers only if a trusted proxy in front sets it");
    }
  }
  static bool iequal(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
  }

  /// The claims the key needs (for the JWT stage to keep).
  std::vector<std::string> claims() const {
    std::vector<std::string> out;
    for (const auto& k : key)
      if (k.starts_with("claim:")) out.push_back(k.substr(6));
    return out;
  }

  /// The stage's config: each tier limits `operation`, counted on_hello.
  rate_limit_config config(std::string_view operation) const {
    rate_limit_config c;
    c.key.clear();
    for (const auto& k : key) c.key.push_back(*part(k));
    c.default_tier = default_tier;
    c.hello_operation = std::string(operation);
    for (const auto& t : tiers) {
      rate_rule r;
      r.algorithm = t.algorithm;
      r.limit = t.limit;
      r.window = t.window;
      r.burst = t.burst;
      c.tiers.push_back({t.name, {{std::string(operation), r}}});
    }
    c.penalty = {penalty.after, penalty.block, penalty.max_block, penalty.forgive_after};
    if (distributed) distributed->apply(c);
    return c;
  }

private:
  static std::optional<rate_key_part> part(std::string_view k) {
    using S = rate_key_part::source;
    if (k == "ip") return rate_key_part{S::ip, {}};
    if (k == "identity") return rate_key_part{S::identity, {}};
    if (k == "api_key") return rate_key_part{S::api_key, {}};
    if (k == "route") return rate_key_part{S::route, {}};
    if (k.starts_with("claim:") && k.size() > 6) return rate_key_part{S::claim, std::string(k.substr(6))};
    if (k.starts_with("header:") && k.size() > 7) return rate_key_part{S::header, std::string(k.substr(7))};
    return std::nullopt;
  }
};

}  // namespace rproxy::middleware
