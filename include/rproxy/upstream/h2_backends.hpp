// rproxy/upstream/h2_backends.hpp: the HTTP/2 backends of a proxy's groups (upstream/
// group_block.hpp, `proto: h2c`, or `proto: h2` over TLS): per backend and worker a
// flow::h2_upstream (multiplexed connections behind a loopback stand-in), kept across reloads
// while the group's `h2:` and `tls:` settings stay (a kept one takes the reloaded client
// context, so a CA file read again applies to its next connections). Staged and committed as
// the HTTP/3 backends are (upstream/standin_set.hpp). Metrics per backend, named
// `<prefix>_upstream_h2_*`: connections opened and failed (a TLS handshake or ALPN failure too),
// connections and streams active, requests carried, failed and sent again (refused unprocessed
// by the backend: REFUSED_STREAM, or above a GOAWAY's last stream).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <rproxy/flow/h2_upstream.hpp>
#include <rproxy/flow/h2_upstream_block.hpp>
#include <rproxy/flow/upstream_redirect.hpp>
#include <rproxy/net/io_pool.hpp>
#include <rproxy/net/tls_client.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/metrics.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/upstream/group_block.hpp>
#include <rproxy/upstream/standin_set.hpp>

namespace rproxy::upstream {

class h2_backends {
  using set = standin_set<flow::h2_upstream>;

public:
  h2_backends(net::io_pool& pool, observe::registry& m, const observe::logger& log, std::string_view prefix) : pool_(pool), log_(log) {
    const std::string p(prefix);
    connections_ = &m.add_counter_family(p + "_upstream_h2_connections", "HTTP/2 connections opened to HTTP/2 backends (h2c, h2).", {"backend"});
    connect_failures_ = &m.add_counter_family(p + "_upstream_h2_connect_failures",
                                              "HTTP/2 connections to HTTP/2 backends that failed to open (connect, TLS handshake, ALPN).", {"backend"});
    requests_ = &m.add_counter_family(p + "_upstream_h2_requests", "Requests carried to HTTP/2 backends.", {"backend"});
    failures_ = &m.add_counter_family(p + "_upstream_h2_failures", "Requests to HTTP/2 backends that failed (502, 503, 504, cut).", {"backend"});
    active_ = &m.add_gauge_family(p + "_upstream_h2_connections_active", "HTTP/2 connections open to HTTP/2 backends.", {"backend"});
    streams_ = &m.add_gauge_family(p + "_upstream_h2_streams_active", "Streams open on HTTP/2 connections to HTTP/2 backends.", {"backend"});
    retries_ = &m.add_counter_family(p + "_upstream_h2_retries",
                                     "Requests sent again to HTTP/2 backends that refused them unprocessed (REFUSED_STREAM, GOAWAY).", {"backend"});
  }

  /// The backends of a config version, built aside (upstream/standin_set.hpp).
  class staged {
  public:
    const flow::upstream_redirect& table() const { return table_; }

  private:
    friend class h2_backends;
    staged() = default;
    set::staged standins_;
    /// Kept backends over TLS and their reloaded context (given at commit).
    std::vector<std::pair<set::entry, std::shared_ptr<const net::tls_client_context>>> retls_;
    flow::upstream_redirect table_;
  };

  /// `tls`: per group, the client context of a proto: h2 group (null for the others).
  std::optional<staged> stage(const std::vector<group_block>& groups, const std::vector<std::shared_ptr<const net::tls_client_context>>& tls) {
    staged s;
    for (std::size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& g = groups[gi];
      if (!g.is_h2()) continue;
      const flow::h2_upstream_block b = g.h2.value_or(flow::h2_upstream_block{});
      const auto ts = g.tls_settings();
      const auto& ctx = tls.at(gi);
      // With TLS, its settings are part of the key: a changed name or trust makes new connections.
      const std::string tls_key = ctx && ts ? "|tls|" + ts->sni + "|" + ts->ca + "|" + (ts->verify ? "1" : "0") : "";
      for (const auto& be : g.backends) {
        const asio::ip::tcp::endpoint addr{asio::ip::make_address(be.address.host), be.address.port};
        const std::string key = g.name + "|" + be.address.to_string() + "|" + b.key() + tls_key;
        const auto label = be.address.to_string();
        const auto got = standins_.get(s.standins_, key, pool_.size(), [&](std::size_t i) {
          const flow::h2_upstream_metrics m{&connections_->with({label}), &connect_failures_->with({label}), &requests_->with({label}),
                                            &failures_->with({label}),    &active_->with({label}),           &streams_->with({label}),
                                            &retries_->with({label})};
          return std::make_shared<flow::h2_upstream>(pool_.context(i), flow::h2_upstream::target{addr, label, ctx, ts && ctx ? ts->sni : std::string()},
                                                     b.options(), m);
        });
        if (!got.standins) {
          log_.error("cannot open the HTTP/2 stand-in", {{"backend", label}, {"error", got.error.message()}});
          return std::nullopt;
        }
        const auto& e = *got.standins;
        if (got.kept && ctx) s.retls_.emplace_back(e, ctx);
        std::vector<asio::ip::tcp::endpoint> locals;
        for (const auto& up : e) locals.push_back(up->local());
        s.table_.add(addr, std::move(locals));
      }
    }
    return s;
  }

  /// Makes a staged set the live one: the stand-ins of backends gone from it stop; kept ones
  /// over TLS take the reloaded client context.
  void commit(staged s) {
    standins_.commit(s.standins_);
    for (auto& [e, ctx] : s.retls_)
      for (auto& up : e) up->update_tls(ctx);
  }

  void stop() { standins_.stop(); }

private:
  net::io_pool& pool_;
  const observe::logger& log_;
  observe::counter_family* connections_ = nullptr;
  observe::counter_family* connect_failures_ = nullptr;
  observe::counter_family* requests_ = nullptr;
  observe::counter_family* failures_ = nullptr;
  observe::gauge_family* active_ = nullptr;
  observe::gauge_family* streams_ = nullptr;
  observe::counter_family* retries_ = nullptr;
  set standins_;
};

}  // namespace rproxy::upstream
