// examples/tcp_proxy/tcp_proxy.hpp: an L4 proxy made of rproxy parts, as a reusable function so
// that examples/custom_middleware can add its own stage in front.
//
// Per route: a listener on every worker (SO_REUSEPORT), optional PROXY protocol in and out,
// a pipeline (metrics, extra stages, route name, balancer over the route's backend pool) per
// worker, and the relay. A reload (SIGHUP, file change, POST /reload) updates each route's
// backends in place; flows in progress keep their backend. Adding, removing or moving a
// listener needs a restart (the reload says so in the log).
//
// Per route, optionally: active health checks (`health_check`: tcp connect or HTTP GET, with
// rise/fall thresholds; a backend that fails them leaves the rotation until it passes again)
// and dynamic weights (`dynamic_weights`: each backend's load report, polled over HTTP, sets
// its weight). A reload that changes either block restarts it; checks keep their verdicts.
// A connect failure is retried on another backend within the same client connection. The admin
// /metrics shows per-backend series (rproxy_backend_*, labelled by route and backend).
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <boost/hana/adapt_struct.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <rproxy/app/config_blocks.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/balance/least_conn.hpp>
#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/balance/stage.hpp>
#include <rproxy/balance/weighted_round_robin.hpp>
#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/health/checker.hpp>
#include <rproxy/health/load_report.hpp>
#include <rproxy/health/probe.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/net/l4_flow.hpp>
#include <rproxy/net/listener.hpp>
#include <rproxy/observe/flow_metrics.hpp>
#include <rproxy/observe/pool_metrics.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/route/fixed.hpp>

namespace tcp_proxy {

using namespace std::chrono_literals;
namespace cfg = rproxy::config;

enum class balancer_kind { round_robin, weighted_round_robin, least_conn };
constexpr auto config_enum_names(balancer_kind) {
  return std::array{cfg::enum_name{"round_robin", balancer_kind::round_robin},
                    cfg::enum_name{"weighted_round_robin", balancer_kind::weighted_round_robin},
                    cfg::enum_name{"least_conn", balancer_kind::least_conn}};
}
enum class check_kind { tcp, http };
constexpr auto config_enum_names(check_kind) {
  return std::array{cfg::enum_name{"tcp", check_kind::tcp}, cfg::enum_name{"http", check_kind::http}};
}
using rproxy::net::proxy_accept;
using rproxy::net::proxy_send;

struct backend_config {
  cfg::endpoint address;
  std::uint32_t weight = 1;
  static constexpr auto describe() {
    return cfg::fields(cfg::required(&backend_config::address, "backend IP address and port, e.g. 10.0.0.5:5432"),
                       cfg::doc(&backend_config::weight, "share of new flows (weighted balancers); 0: standby"));
  }
};

struct proxy_protocol_config {
  proxy_accept accept = proxy_accept::none;
  std::vector<std::string> trusted{"127.0.0.0/8", "::1"};
  proxy_send send = proxy_send::none;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc(&proxy_protocol_config::accept, "read a PROXY v1/v2 header from clients: none, optional, required"),
                       cfg::doc(&proxy_protocol_config::trusted, "CIDRs allowed to send a PROXY header; others are never believed"),
                       cfg::doc(&proxy_protocol_config::send, "send a PROXY header to backends: none, v1, v2"));
  }
};

struct health_check_config {
  check_kind type = check_kind::tcp;
  std::string path = "/";
  std::string host{};
  unsigned expect_status = 200;
  std::string body_contains{};
  std::chrono::milliseconds interval = 5s;
  std::chrono::milliseconds timeout = 2s;
  unsigned rise = 2;
  unsigned fall = 3;

  friend bool operator==(const health_check_config&, const health_check_config&) = default;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc(&health_check_config::type, "tcp (connect) or http (GET path)"),
                       cfg::doc(&health_check_config::path, "http: the path to GET"),
                       cfg::doc(&health_check_config::host, "http: Host header (default: the backend's address)"),
                       cfg::doc(&health_check_config::expect_status, "http: the status a healthy backend answers; 0: any 2xx"),
                       cfg::doc(&health_check_config::body_contains, "http: text the body must contain (empty: not checked)"),
                       cfg::doc(&health_check_config::interval, "time between checks of a backend (+/- 10% jitter)"),
                       cfg::doc(&health_check_config::timeout, "a check that takes longer fails"),
                       cfg::doc(&health_check_config::rise, "passed checks in a row that bring a backend back"),
                       cfg::doc(&health_check_config::fall, "failed checks in a row that take a backend out"));
  }
  void validate(cfg::validator& v) const {
    if (!path.starts_with('/')) v.at(&health_check_config::path).error("path must start with '/'");
    if (expect_status != 0 && (expect_status < 100 || expect_status > 599))
      v.at(&health_check_config::expect_status).error("expect_status must be 0 or 100..599");
    if (interval.count() <= 0) v.at(&health_check_config::interval).error("interval must be positive");
    if (timeout.count() <= 0) v.at(&health_check_config::timeout).error("timeout must be positive");
    if (rise == 0) v.at(&health_check_config::rise).error("rise must be at least 1");
    if (fall == 0) v.at(&health_check_config::fall).error("fall must be at least 1");
  }
};

struct dynamic_weights_config {
  std::string path = "/metric";
  std::uint16_t port = 0;
  std::chrono::milliseconds interval = 5s;
  std::chrono::milliseconds timeout = 2s;

  friend bool operator==(const dynamic_weights_config&, const dynamic_weights_config&) = default;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc(&dynamic_weights_config::path, "where each backend publishes its load report (HTTP GET)"),
                       cfg::doc(&dynamic_weights_config::port, "port of the report (0: the backend's own port)"),
                       cfg::doc(&dynamic_weights_config::interval, "time between polls of a backend"),
                       cfg::doc(&dynamic_weights_config::timeout, "a poll that takes longer is counted as failed"));
  }
  void validate(cfg::validator& v) const {
    if (!path.starts_with('/')) v.at(&dynamic_weights_config::path).error("path must start with '/'");
    if (interval.count() <= 0) v.at(&dynamic_weights_config::interval).error("interval must be positive");
    if (timeout.count() <= 0) v.at(&dynamic_weights_config::timeout).error("timeout must be positive");
  }
};

struct route_config {
  std::string name;
  cfg::endpoint listen;
  std::vector<backend_config> backends;
  balancer_kind balancer = balancer_kind::round_robin;
  std::chrono::milliseconds connect_timeout = 5s;
  std::chrono::milliseconds idle_timeout = 5min;
  proxy_protocol_config proxy_protocol{};
  std::optional<health_check_config> health_check{};
  std::optional<dynamic_weights_config> dynamic_weights{};

  static constexpr auto describe() {
    return cfg::fields(cfg::required(&route_config::name, "route name (metrics label)"),
                       cfg::required(&route_config::listen, "address and port to accept clients on"),
                       cfg::required(&route_config::backends, "where flows go"),
                       cfg::doc(&route_config::balancer, "round_robin, weighted_round_robin or least_conn"),
                       cfg::doc(&route_config::connect_timeout, "give up on a backend after this long, try the next"),
                       cfg::doc(&route_config::idle_timeout, "close flows with no bytes either way for this long"),
                       cfg::doc(&route_config::proxy_protocol, "PROXY protocol in and out"),
                       cfg::doc(&route_config::health_check, "active health checks of the backends (off when absent)"),
                       cfg::doc(&route_config::dynamic_weights, "weights from the backends' load reports (off when absent)"));
  }
  void validate(cfg::validator& v) const {
    if (backends.empty()) v.at(&route_config::backends).error("a route needs at least one backend");
    for (std::size_t i = 0; i < backends.size(); ++i) {
      std::error_code ec;
      (void)asio::ip::make_address(backends[i].address.host, ec);
      if (ec) v.at(&route_config::backends).at(i).at(&backend_config::address).error("backend address must be an IP address: '" + backends[i].address.host + "'");
    }
    for (std::size_t i = 0; i < proxy_protocol.trusted.size(); ++i)
      if (!rproxy::middleware::cidr::parse(proxy_protocol.trusted[i]))
        v.at(&route_config::proxy_protocol).at(&proxy_protocol_config::trusted).at(i).error("not a CIDR: '" + proxy_protocol.trusted[i] + "'");
    std::error_code ec;
    (void)asio::ip::make_address(listen.host, ec);
    if (ec) v.at(&route_config::listen).error("listen address must be an IP address: '" + listen.host + "'");
  }
};

struct relay_config {
  cfg::byte_size buffer_size = cfg::byte_size::kib(64);
  bool splice = true;
  static constexpr auto describe() {
    return cfg::fields(cfg::doc(&relay_config::buffer_size, "buffer per direction per flow (bounds memory; backpressure beyond)"),
                       cfg::doc(&relay_config::splice, "zero-copy splice(2) between sockets on Linux"));
  }
};

struct config {
  rproxy::app::admin_config admin{};
  std::vector<route_config> routes;
  relay_config relay{};
  static constexpr auto describe() {
    return cfg::fields(cfg::doc(&config::admin, "admin HTTP endpoint (off when listen is unset)"),
                       cfg::required(&config::routes, "one listener and backend pool each"),
                       cfg::doc(&config::relay, "byte relay settings"));
  }
  void validate(cfg::validator& v) const {
    std::set<std::string> names, listens;
    for (std::size_t i = 0; i < routes.size(); ++i) {
      if (!names.insert(routes[i].name).second)
        v.at(&config::routes).at(i).at(&route_config::name).error("duplicate route name '" + routes[i].name + "'");
      if (!listens.insert(routes[i].listen.to_string()).second)
        v.at(&config::routes).at(i).at(&route_config::listen).error("two routes listen on " + routes[i].listen.to_string());
    }
  }
};

}  // namespace tcp_proxy

BOOST_HANA_ADAPT_STRUCT(tcp_proxy::backend_config, address, weight);
BOOST_HANA_ADAPT_STRUCT(tcp_proxy::proxy_protocol_config, accept, trusted, send);
BOOST_HANA_ADAPT_STRUCT(tcp_proxy::health_check_config, type, path, host, expect_status, body_contains, interval, timeout, rise, fall);
BOOST_HANA_ADAPT_STRUCT(tcp_proxy::dynamic_weights_config, path, port, interval, timeout);
BOOST_HANA_ADAPT_STRUCT(tcp_proxy::route_config, name, listen, backends, balancer, connect_timeout, idle_timeout, proxy_protocol, health_check, dynamic_weights);
BOOST_HANA_ADAPT_STRUCT(tcp_proxy::relay_config, buffer_size, splice);
BOOST_HANA_ADAPT_STRUCT(tcp_proxy::config, admin, routes, relay);

namespace tcp_proxy {

using runtime = rproxy::app::runtime<config>;

/// One balancer chosen at run time from the config; the pick is a switch, not a virtual call.
struct any_balancer {
  std::variant<rproxy::balance::round_robin, rproxy::balance::weighted_round_robin, rproxy::balance::least_conn> b;
  template <class Pool, class Key>
  auto pick(const Pool& pool, const Key& key) {
    return std::visit([&](auto& x) { return x.pick(pool, key); }, b);
  }
  static any_balancer make(balancer_kind k) {
    switch (k) {
      case balancer_kind::weighted_round_robin: return {rproxy::balance::weighted_round_robin{}};
      case balancer_kind::least_conn: return {rproxy::balance::least_conn{}};
      default: return {rproxy::balance::round_robin{}};
    }
  }
};

inline std::vector<rproxy::balance::pool::config_type> pool_config(const route_config& r) {
  std::vector<rproxy::balance::pool::config_type> out;
  for (const auto& b : r.backends)
    out.push_back({b.address.to_string(), {asio::ip::make_address(b.address.host), b.address.port}, b.weight});
  return out;
}

inline rproxy::net::l4_options flow_options(const route_config& r, const relay_config& relay) {
  rproxy::net::l4_options o;
  o.accept = r.proxy_protocol.accept;
  o.send = r.proxy_protocol.send;
  o.connect_timeout = r.connect_timeout;
  o.relay.idle_timeout = r.idle_timeout;
  o.relay.buffer_size = relay.buffer_size.bytes;
  o.relay.splice = relay.splice;
  return o;
}

/// A route's health checker and load-report poller (each optional), on the control thread.
/// Restarted by a reload that changes their config block.
class route_health {
public:
  using base_fn = std::function<std::optional<std::uint32_t>(std::string_view backend_id)>;

  /// `configured_weight(id)`: the backend's weight in the current config (the base of load reports).
  route_health(asio::any_io_executor ex, std::shared_ptr<rproxy::balance::pool> pool, std::string route,
               const rproxy::observe::logger& log, base_fn configured_weight)
      : ex_(std::move(ex)), pool_(std::move(pool)), route_(std::move(route)), log_(log),
        configured_weight_(std::move(configured_weight)) {}
  route_health(const route_health&) = delete;
  route_health& operator=(const route_health&) = delete;
  ~route_health() { stop(); }

  /// Starts, restarts or stops the checker and the poller to match `r`.
  void apply(const route_config& r) {
    if (r.health_check != check_cfg_) {
      const bool had = check_cfg_.has_value();
      tcp_.reset();
      http_.reset();
      check_cfg_ = r.health_check;
      if (check_cfg_) start_checker(*check_cfg_);
      else if (had)  // checks turned off: nothing keeps a backend out any more
        for (const auto& b : pool_->snapshot()->backends) pool_->set_health(b->id(), true);
    }
    if (r.dynamic_weights != weights_cfg_) {
      stop_poller();
      weights_cfg_ = r.dynamic_weights;
      if (weights_cfg_) start_poller(*weights_cfg_);
    }
  }

  void stop() {
    tcp_.reset();
    http_.reset();
    stop_poller();
  }

  /// Before a reload updates the pool: backends keep their reported weights while the same
  /// dynamic_weights block stays on (the poller rescales load reports with the new config).
  void keep_reported_weights(const route_config& r, std::vector<rproxy::balance::pool::config_type>& backends) const {
    std::lock_guard lk(mu_);
    if (!weights_ || r.dynamic_weights != weights_cfg_) return;
    for (auto& b : backends)
      if (auto w = weights_->reported_weight(b.id)) b.weight = *w;
  }

  /// Load reports by result since start (for a callback counter; never decreases).
  double reports(std::string_view result) const {
    std::lock_guard lk(mu_);
    auto s = retired_;
    if (weights_) add(s, weights_->stats());
    return static_cast<double>(result == "ok" ? s.ok : result == "bad" ? s.bad : s.unreachable);
  }

private:
  template <class Checker>
  void wire(Checker& c) {
    c.on_change([log = &log_, route = route_](std::string_view id, bool up, const rproxy::health::probe_result& r) {
      if (up) log->info("backend up", {{"route", route}, {"backend", id}});
      else log->warn("backend down", {{"route", route}, {"backend", id}, {"error", r.error.message()}, {"detail", r.detail}});
    });
    c.start();
  }

  void start_checker(const health_check_config& h) {
    rproxy::health::check_options o{.interval = h.interval, .timeout = h.timeout, .jitter = 0.1, .rise = h.rise, .fall = h.fall};
    if (h.type == check_kind::http) {
      rproxy::health::http_probe p{.path = h.path, .host = h.host, .expect_status = h.expect_status,
                                   .body_contains = h.body_contains};
      http_ = std::make_unique<rproxy::health::checker<rproxy::health::http_probe>>(ex_, pool_, std::move(p), o);
      wire(*http_);
    } else {
      tcp_ = std::make_unique<rproxy::health::checker<rproxy::health::tcp_probe>>(ex_, pool_, rproxy::health::tcp_probe{}, o);
      wire(*tcp_);
    }
  }

  void start_poller(const dynamic_weights_config& d) {
    rproxy::health::load_report_options o;
    o.path = d.path;
    o.port = d.port;
    o.interval = d.interval;
    o.timeout = d.timeout;
    o.base_weight = configured_weight_;
    auto p = std::make_unique<rproxy::health::load_report_poller<>>(ex_, pool_, std::move(o));
    p->on_report([log = &log_, route = route_](std::string_view id, const std::error_code& ec, std::uint32_t w) {
      if (ec) log->warn("bad load report; weight unchanged", {{"route", route}, {"backend", id}, {"error", ec.message()}, {"weight", w}});
      else log->info("backend weight from load report", {{"route", route}, {"backend", id}, {"weight", w}});
    });
    p->start();
    std::lock_guard lk(mu_);
    weights_ = std::move(p);
  }

  void stop_poller() {
    std::unique_ptr<rproxy::health::load_report_poller<>> old;
    {
      std::lock_guard lk(mu_);
      if (weights_) add(retired_, weights_->stats());
      old = std::move(weights_);
    }
    old.reset();
  }

  static void add(rproxy::health::load_report_stats& a, const rproxy::health::load_report_stats& b) {
    a.ok += b.ok;
    a.bad += b.bad;
    a.unreachable += b.unreachable;
  }

  asio::any_io_executor ex_;
  std::shared_ptr<rproxy::balance::pool> pool_;
  std::string route_;
  const rproxy::observe::logger& log_;
  base_fn configured_weight_;
  std::optional<health_check_config> check_cfg_;
  std::optional<dynamic_weights_config> weights_cfg_;
  std::unique_ptr<rproxy::health::checker<rproxy::health::tcp_probe>> tcp_;
  std::unique_ptr<rproxy::health::checker<rproxy::health::http_probe>> http_;
  mutable std::mutex mu_;  // weights_ and retired_ (read by scrapes)
  std::unique_ptr<rproxy::health::load_report_poller<>> weights_;
  rproxy::health::load_report_stats retired_{};
};

/// Serves every route of the config with pipelines of `metrics, extra, route, balancer`.
/// `make_extra()` builds the user's extra stage once per worker and route. Config is any
/// config with tcp_proxy's `routes` and `relay` (examples/custom_middleware adds a block).
template <class Config, class MakeExtra>
int serve(rproxy::app::runtime<Config>& rt, MakeExtra make_extra) {
  auto families = rproxy::observe::flow_metrics::families::add_to(rt.metrics());
  auto backend_metrics = rproxy::observe::pool_metrics::add_to(rt.metrics());
  auto& load_reports = rt.metrics().add_callback_counter_family(
      "rproxy_load_reports", "Backend load reports polled, by result: ok, bad (weight kept), unreachable.",
      {"route", "result"});
  const auto first = rt.config().get();
  for (const auto& rc : first->routes) {
    auto pool = std::make_shared<rproxy::balance::pool>();
    if (auto r = pool->update(pool_config(rc)); !r) {
      rt.log().error("bad backends", {{"route", rc.name}, {"error", r.error().message()}});
      return 1;
    }
    backend_metrics->track(rc.name, pool);
    auto configured = [&rt, route = rc.name](std::string_view id) -> std::optional<std::uint32_t> {
      auto c = rt.config().get();
      for (const auto& x : c->routes)
        if (x.name == route)
          for (const auto& b : x.backends)
            if (b.address.to_string() == id) return b.weight;
      return std::nullopt;
    };
    auto health = std::make_shared<route_health>(rt.control().get_executor(), pool, rc.name, rt.log(), configured);
    health->apply(rc);
    for (std::string_view result : {"ok", "bad", "unreachable"})
      load_reports.with({rc.name, result}, [health, result] { return health->reports(result); });
    auto name = std::make_shared<const std::string>(rc.name);  // route label, outlives flows
    using pipeline_t = decltype(rproxy::make_pipeline(
        rproxy::observe::flow_metrics{families, ""}, make_extra(), rproxy::route::fixed{},
        rproxy::balance::make_stage(pool, any_balancer{})));
    auto pipelines = std::make_shared<std::vector<pipeline_t>>();
    for (std::size_t w = 0; w < rt.pool().size(); ++w)
      pipelines->push_back(rproxy::make_pipeline(rproxy::observe::flow_metrics{families, *name}, make_extra(),
                                                 rproxy::route::fixed{*name},
                                                 rproxy::balance::make_stage(pool, any_balancer::make(rc.balancer))));
    std::vector<rproxy::middleware::cidr> trusted;
    for (const auto& t : rc.proxy_protocol.trusted) trusted.push_back(*rproxy::middleware::cidr::parse(t));

    auto handler = [&rt, pipelines, name, trusted](asio::ip::tcp::socket s, const rproxy::net::accepted_endpoints& eps) {
      auto cfg = rt.config().get();  // this flow's config version
      const route_config* r = nullptr;
      for (const auto& x : cfg->routes)
        if (x.name == *name) r = &x;
      if (!r) return;  // route removed by a reload: refuse new flows (closes s)
      auto& p = (*pipelines)[rproxy::observe::worker_index() % pipelines->size()];
      auto flow = [](auto& p, asio::ip::tcp::socket s, rproxy::net::accepted_endpoints eps, rproxy::net::l4_options o,
                     auto trusted, rproxy::app::drain_tracker::guard, std::shared_ptr<const Config>) -> asio::awaitable<void> {
        co_await rproxy::net::serve_l4_flow(p, std::move(s), eps, std::move(o), [&](const asio::ip::address& a) {
          auto k = rproxy::middleware::to_ip_key(a);
          for (const auto& c : trusted)
            if (c.contains(k)) return true;
          return false;
        });
      };
      auto ex = s.get_executor();
      asio::co_spawn(ex, flow(p, std::move(s), eps, flow_options(*r, cfg->relay), trusted, rt.drain().track(), cfg),
                     asio::detached);
    };
    auto listener = rproxy::net::listen(rt.pool(), {asio::ip::make_address(rc.listen.host), rc.listen.port}, handler);
    if (!listener) {
      rt.log().error("cannot listen", {{"route", rc.name}, {"address", rc.listen.to_string()},
                                       {"error", listener.error().message()}});
      return 1;
    }
    rt.log().info("route listening", {{"route", rc.name}, {"address", rc.listen.to_string()},
                                      {"backends", rc.backends.size()}});
    auto l = std::make_shared<std::decay_t<decltype(*listener)>>(std::move(*listener));
    rt.on_stop_accepting([l, health] {
      l->close();
      health->stop();
    });
    rt.on_reload([&rt, pool, name, health, backend_metrics](const std::shared_ptr<const Config>& c) {
      for (const auto& x : c->routes)
        if (x.name == *name) {
          auto backends = pool_config(x);
          health->keep_reported_weights(x, backends);
          if (auto r = pool->update(backends); !r)
            rt.log().error("backends not updated", {{"route", x.name}, {"error", r.error().message()}});
          backend_metrics->track(x.name, pool);
          health->apply(x);
          return;
        }
      health->stop();
      rt.log().warn("route removed from config: it refuses new flows until restart", {{"route", *name}});
    });
  }
  return 0;
}

/// No extra stages.
struct no_extra {
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {}
};

}  // namespace tcp_proxy
