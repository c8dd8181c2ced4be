// rproxy/app/http_metrics.hpp: an HTTP proxy's request metrics, for a request pipeline that
// routes with route::by_http_route to backend groups (upstream/group_block.hpp):
//
//     auto m = rproxy::app::http_metrics::add_to(registry, "h3gw");        // once, at startup
//     world.requests = m.bind(world.table, world.groups, cfg.groups);      // per config version
//     rproxy::app::http_request_metrics{&world.requests, &m.upstream_connections, &m.by_protocol}  // a stage
//     rproxy::app::connection_gauge{m.connections_open, m.connections_accepted}  // connection pipeline
//
//   <p>_requests{route,status_class,backend}      requests (status_class "none": no status sent)
//   <p>_request_duration_seconds{route}           head read to flow end (downstream latency)
//   <p>_upstream_duration_seconds{route,backend}  backend connected to response head
//   <p>_retries{route}, <p>_retries_shed{route}   retries on another pick; refused by the budget
//   <p>_upgrades{route}                           101 relayed, or an HTTP/2 extended CONNECT
//   <p>_rejects{route,reason}                     requests a stage refused
//   <p>_upstream_connections{transport,connection} backend connections per request: new or reused
//   <p>_requests_by_protocol{protocol}            http/1.0, http/1.1, h2, h3, whichever flow brought it
//   <p>_connections, <p>_connections_active       client connections accepted and open
//
// Label values are bound on the control path (add_to, bind); flows only touch counters.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <rproxy/codec/http1/message.hpp>
#include <rproxy/observe/metrics.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/pipeline/verdict.hpp>
#include <rproxy/route/by_http_route.hpp>
#include <rproxy/upstream/group_block.hpp>

namespace rproxy::app {

/// The request pipeline's stage: counts each request by route, status class and backend, and
/// times it (see the file's head).
struct http_request_metrics {
  using row = std::array<observe::counter*, 6>;
  struct backend_series {
    asio::ip::tcp::endpoint ep;
    row requests;
    observe::histogram* upstream;
  };
  struct per_route {
    row none;  ///< no backend picked
    std::vector<backend_series> backends;
    observe::histogram* duration;
    observe::counter* retries;
    observe::counter* shed;
    observe::counter* upgrades;
    observe::counter_family* rejects;  ///< bound per reason when one is first refused (the set is closed)
    std::string name;
  };
  struct state {
    std::chrono::steady_clock::time_point connected{};
  };
  const std::vector<per_route>* by_route;  ///< per route index, then one for "no route"
  /// Backend connections per request: [tls][reused] (plain new, plain kept, TLS new, TLS kept).
  const std::array<std::array<observe::counter*, 2>, 2>* connections = nullptr;
  /// Requests by what the client spoke: [http/1.0, http/1.1, h2, h3] (protocol_index).
  const std::array<observe::counter*, 4>* by_protocol = nullptr;

  static constexpr std::array<std::string_view, 4> protocols{"http/1.0", "http/1.1", "h2", "h3"};
  static constexpr std::size_t protocol_index(const codec::http1::request_head_view& h) noexcept {
    using w = codec::http1::wire_protocol;
    if (h.wire == w::h2) return 2;
    if (h.wire == w::h3) return 3;
    return h.version == codec::http1::http_version::http10 ? 0 : 1;
  }

  template <class Ctx>
  const per_route& route_of(const Ctx& ctx) const {
    const auto& m = ctx.template state<route::by_http_route>().match;
    return (*by_route)[m ? m.route()->index() : by_route->size() - 1];
  }
  template <class Ctx>
  static const backend_series* backend_of(const per_route& r, const Ctx& ctx) {
    if (ctx.backend)
      for (const auto& b : r.backends)
        if (b.ep == *ctx.backend) return &b;
    return nullptr;
  }
  template <class Ctx, class Req>
  verdict on_hello(Ctx&, const Req& req) {
    if (by_protocol) (*by_protocol)[protocol_index(req.head())]->inc();
    return next;
  }
  template <class Ctx>
  verdict on_route(Ctx& ctx) {
    if (ctx.connect_error && !ctx.out_of_attempts) route_of(ctx).retries->inc();  // the retry stage let the driver try again
    return next;
  }
  template <class Ctx>
  verdict on_connect(Ctx& ctx) {
    ctx.template state<http_request_metrics>().connected = std::chrono::steady_clock::now();
    if (connections) (*connections)[ctx.upstream && ctx.upstream->tls ? 1 : 0][ctx.upstream_reused ? 1 : 0]->inc();
    return next;
  }
  template <class Ctx, class Resp>
  verdict on_response(Ctx& ctx, const Resp&) {
    const auto t = ctx.template state<http_request_metrics>().connected;
    if (const auto* b = backend_of(route_of(ctx), ctx); b && t != std::chrono::steady_clock::time_point{})
      b->upstream->observe(std::chrono::steady_clock::now() - t);
    return next;
  }
  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    if (ctx.hello_done == std::chrono::steady_clock::time_point{} && ctx.status == 0) return;  // no request came
    const auto& r = route_of(ctx);
    const auto* b = backend_of(r, ctx);
    if (ctx.rejected) {
      if (ctx.rejected->cause == "shed") r.shed->inc();
      r.rejects->with({r.name, to_string(ctx.rejected->code)}).inc();
    }
    (b ? b->requests : r.none)[ctx.status >= 100 && ctx.status < 600 ? ctx.status / 100 : 0]->inc();
    if (ctx.upgraded) r.upgrades->inc();  // (a 101 relayed, or an HTTP/2 extended CONNECT)
    if (ctx.hello_done != std::chrono::steady_clock::time_point{}) r.duration->observe(std::chrono::steady_clock::now() - ctx.hello_done);
  }
};

/// Client connections accepted and open (first in the connection pipeline, so its on_accept always runs).
struct connection_gauge {
  observe::gauge* open;
  observe::counter* accepted;
  template <class Ctx>
  verdict on_accept(Ctx&) {
    accepted->inc();
    open->inc();
    return next;
  }
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {
    open->dec();
  }
};

/// The families (see the file's head), registered once; the stages point at them.
struct http_metrics {
  observe::counter_family* requests = nullptr;
  observe::histogram_family* duration = nullptr;
  observe::histogram_family* upstream = nullptr;
  observe::counter_family* retries = nullptr;
  observe::counter_family* shed = nullptr;
  observe::counter_family* upgrades = nullptr;
  observe::counter_family* rejects = nullptr;
  observe::gauge* connections_open = nullptr;
  observe::counter* connections_accepted = nullptr;
  std::array<std::array<observe::counter*, 2>, 2> upstream_connections{};
  std::array<observe::counter*, 4> by_protocol{};

  static http_metrics add_to(observe::registry& reg, std::string_view prefix) {
    const std::string p(prefix);
    http_metrics m;
    m.requests = &reg.add_counter_family(p + "_requests", "Requests by route, status class (none: no status sent) and backend.",
                                         {"route", "status_class", "backend"});
    const auto buckets = observe::exponential_buckets(0.0001, 2, 17);  // 100 us .. 6.6 s
    m.duration = &reg.add_histogram_family(p + "_request_duration_seconds", "Requests from their head read to their end (downstream latency).",
                                           {"route"}, buckets);
    m.upstream = &reg.add_histogram_family(p + "_upstream_duration_seconds",
                                           "From the backend connection to its response head (upstream latency).", {"route", "backend"}, buckets);
    m.retries = &reg.add_counter_family(p + "_retries", "Attempts retried on another pick (failed connects, resets, 502/503).", {"route"});
    m.shed = &reg.add_counter_family(p + "_retries_shed", "Requests refused (503) because the route's retry budget was spent.", {"route"});
    m.upgrades = &reg.add_counter_family(p + "_upgrades", "Connections switched to another protocol (WebSocket): 101 relayed.", {"route"});
    m.rejects = &reg.add_counter_family(p + "_rejects", "Requests a stage refused, by reason (unauthorized, rate_limited, ...).", {"route", "reason"});
    m.connections_open = &reg.add_gauge(p + "_connections_active", "Open client connections.");
    auto& conns = reg.add_counter_family(
        p + "_upstream_connections", "Backend connections per request: new or reused (kept alive), by transport (tcp, tls).", {"transport", "connection"});
    for (std::size_t t = 0; t < 2; ++t)
      for (std::size_t k = 0; k < 2; ++k) m.upstream_connections[t][k] = &conns.with({t ? "tls" : "tcp", k ? "reused" : "new"});
    m.connections_accepted = &reg.add_counter(p + "_connections", "Client connections accepted.");
    auto& by_protocol =
        reg.add_counter_family(p + "_requests_by_protocol", "Requests by the protocol the client spoke (http/1.0, http/1.1, h2, h3).", {"protocol"});
    for (std::size_t i = 0; i < m.by_protocol.size(); ++i) m.by_protocol[i] = &by_protocol.with({std::string(http_request_metrics::protocols[i])});
    return m;
  }

  /// A config version's series: per route of `table` (its groups: indices into `groups`), then
  /// one for requests that matched no route.
  std::vector<http_request_metrics::per_route> bind(const route::http_router& table, const std::vector<std::vector<std::size_t>>& route_groups,
                                                    const std::vector<upstream::group_block>& groups) const {
    static constexpr std::array<const char*, 6> classes{"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
    auto row = [&](const std::string& route, const std::string& backend) {
      http_request_metrics::row r{};
      for (std::size_t i = 0; i < r.size(); ++i) r[i] = &requests->with({route, classes[i], backend});
      return r;
    };
    auto series = [&](const std::string& name) {
      return http_request_metrics::per_route{row(name, ""),           {}, &duration->with({name}), &retries->with({name}), &shed->with({name}),
                                             &upgrades->with({name}), rejects, name};
    };
    std::vector<http_request_metrics::per_route> out;
    for (std::size_t i = 0; i < table.routes().size(); ++i) {
      const auto& name = table.routes()[i].name();
      auto& m = out.emplace_back(series(name));
      for (const auto g : route_groups[i])
        for (const auto& b : groups[g].backends)
          m.backends.push_back({asio::ip::tcp::endpoint{asio::ip::make_address(b.address.host), b.address.port}, row(name, b.address.to_string()),
                                &upstream->with({name, b.address.to_string()})});
    }
    out.push_back(series(""));
    return out;
  }
};

}  // namespace rproxy::app
