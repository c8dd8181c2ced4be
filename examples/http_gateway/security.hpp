// examples/http_gateway/security.hpp: the security stages' shared state (rules, bans, keys,
// counters, audit log), built once from the config and shared by all workers; and the two
// pipelines the gateway runs: one per connection, one per request.
#pragma once

#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/balance/stage.hpp>
#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/middleware/api_key.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/ban.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/middleware/ip_filter.hpp>
#include <rproxy/middleware/jwt_auth.hpp>
#include <rproxy/middleware/principal.hpp>
#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/observe/flow_metrics.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/route/fixed.hpp>

#include "gateway_config.hpp"

namespace http_gateway {

namespace http1 = rproxy::codec::http1;

/// The protocol the pipelines see: the hello is the request head (as a request_view).
struct http_protocol {
  using flow = rproxy::flow_info;
  using hello = http1::request_view;
  using message = std::span<const char>;  // body bytes (no stage here counts them)
  using response = http1::response_head_view;
};

/// Where audit lines go: a file of their own, or the main log. Called from any worker.
class audit_sink {
public:
  audit_sink(const rproxy::observe::logger* log, const std::string& file) : log_(log) {
    if (!file.empty()) file_.open(file, std::ios::app);
  }
  bool ok() const { return !file_.is_open() || file_.good(); }
  void operator()(const mw::audit_record&, std::string_view line) {
    if (!file_.is_open()) return log_->warn(line);
    std::lock_guard lock(mu_);
    file_ << line << '\n' << std::flush;
  }

private:
  const rproxy::observe::logger* log_;
  std::mutex mu_;
  std::ofstream file_;
};

/// Everything the stages point at. Built once; reload() re-reads the files (bans, keys).
struct security {
  explicit security(const config& c, const rproxy::observe::logger& log)
      : log(&log),
        sink(&log, c.audit.file),
        audit(mw::audit_log::to(sink, {.per_second = c.audit.per_second, .burst = c.audit.burst})),
        conn_cfg{c.conn_limit.max_per_ip, c.conn_limit.max_total},
        ban_file(c.bans.file),
        keys(c.jwt ? key_sources(*c.jwt) : std::vector<mw::key_source>{}),
        api_keys(c.api_keys ? c.api_keys->file : std::string()),
        counters({.max_keys = c.rate_limit ? c.rate_limit->max_keys : 1}),
        require_auth(c.require_auth && (c.jwt || c.api_keys)) {
    ip_cfg.default_allow = c.ip_filter.default_allow;
    ip_cfg.allow = c.ip_filter.allow;
    ip_cfg.deny = c.ip_filter.deny;
    rules = std::move(*mw::ip_rules::build(ip_cfg));  // validated with the config
    if (c.jwt) jwt_cfg = jwt_config(*c.jwt, c.rate_limit);
    else jwt_cfg.sources.clear();  // no token is ever looked for
    jwt_cfg.optional = true;
    if (c.api_keys) key_cfg.sources = {{mw::credential_source::place::header, c.api_keys->header, ""}};
    else key_cfg.sources.clear();
    key_cfg.optional = true;
    if (c.rate_limit) rl_cfg = rate_config(*c.rate_limit);
    else rl_cfg.hello_operation.clear();  // nothing counted
    for (const auto& f : jwt_cfg.forward) strip.push_back(f.header);  // a client cannot forge X-User
    for (const auto& t : c.forwarding.trusted_proxies) trusted_proxies.push_back(*mw::cidr::parse(t));  // validated
    forward_rules = {.strip = strip, .allow_underscore = c.forwarding.allow_underscore_headers,
                     .allow_trailers = c.forwarding.allow_trailers};
  }
  /// Are `peer`'s forwarding headers believed?
  bool trusted(const asio::ip::address& peer) const {
    for (const auto& n : trusted_proxies)
      if (n.contains(peer)) return true;
    return false;
  }

  /// Re-reads the ban file, the JWT keys and the API keys; a bad file keeps the old contents.
  bool reload(const config& c) {
    bool ok = true;
    auto fail = [&](std::string_view what, const std::error_code& ec, std::size_t line = 0) {
      log->error("not reloaded; the previous contents stay in use",
                 {{"what", what}, {"error", ec.message()}, {"line", line}});
      ok = false;
    };
    if (!ban_file.empty()) {
      std::size_t line = 0;
      if (auto r = bans.load(ban_file, &line); !r) fail(ban_file, r.error(), line);
    }
    if (c.jwt)
      if (auto r = keys.reload(); !r) fail("jwt keys", r.error());
    if (c.api_keys) {
      std::size_t line = 0;
      if (auto r = api_keys.reload(&line); !r) fail(c.api_keys->file, r.error(), line);
    }
    return ok;
  }

  const rproxy::observe::logger* log;
  audit_sink sink;
  mw::audit_log audit;
  mw::ip_filter_config ip_cfg;
  mw::ip_rules rules;
  mw::conn_limit_config conn_cfg;
  mw::conn_counter conns;
  std::string ban_file;
  mw::ban_list bans;
  mw::jwt_auth_config jwt_cfg;
  mw::key_store keys;
  mw::api_key_config key_cfg;
  mw::api_key_store api_keys;
  mw::rate_limit_config rl_cfg;
  mw::local_counter_store counters;
  bool require_auth;
  std::vector<std::string> strip;  // header names the gateway sets itself
  std::vector<mw::cidr> trusted_proxies;
  http1::forward_rules forward_rules;  // views into strip and the config
};

/// Refuses requests that no auth stage authenticated (the stages themselves let a request
/// without credentials through, so that either a JWT or an API key will do).
struct require_auth {
  bool required = false;
  mw::audit_log* audit = nullptr;

  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const http1::request_view&) {
    if (!required || mw::find_principal(ctx) != nullptr) return rproxy::next;
    return mw::reject_and_audit(ctx, audit, {rproxy::reject_code::unauthorized, "credentials required"},
                                "require_auth", "no token or API key");
  }
};

/// Per connection: address filter and connection caps (on_accept, on_close).
inline auto make_connection_pipeline(security& s, const rproxy::observe::flow_metrics::families& fam,
                                     std::string_view label) {
  return rproxy::make_pipeline<http_protocol>(rproxy::observe::flow_metrics{fam, label},
                                              mw::ip_filter{&s.rules, &s.audit, &s.ip_cfg},
                                              mw::conn_limit{&s.conn_cfg, &s.conns, &s.audit});
}

/// Per request: bans, authentication, rate limit, then the backend.
inline auto make_request_pipeline(security& s, const rproxy::observe::flow_metrics::families& fam,
                                  std::string_view route, std::shared_ptr<rproxy::balance::pool> pool) {
  return rproxy::make_pipeline<http_protocol>(
      rproxy::observe::flow_metrics{fam, route},
      mw::ban_check{&s.bans, &s.audit},
      mw::jwt_auth{&s.jwt_cfg, &s.keys, &s.audit},
      mw::api_key_auth{&s.key_cfg, &s.api_keys, &s.audit},
      require_auth{s.require_auth, &s.audit},
      mw::rate_limit{&s.rl_cfg, &s.counters, &s.audit},
      rproxy::route::fixed{route},
      rproxy::balance::make_stage(std::move(pool), rproxy::balance::round_robin{}));
}

using connection_pipeline = decltype(make_connection_pipeline(std::declval<security&>(),
                                                              std::declval<const rproxy::observe::flow_metrics::families&>(), ""));
using request_pipeline = decltype(make_request_pipeline(std::declval<security&>(),
                                                        std::declval<const rproxy::observe::flow_metrics::families&>(), "",
                                                        nullptr));

}  // namespace http_gateway
