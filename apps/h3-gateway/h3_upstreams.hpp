// apps/h3-gateway/h3_upstreams.hpp: the gateway's HTTP/3 backends (groups with `proto: h3`):
// per backend and worker a flow::h3_upstream (pooled QUIC connections behind a loopback
// stand-in), kept across reloads while the group's `h3:` settings stay, and the redirect table
// a world's flows connect through. A reload stages the new set aside and commits it only once
// nothing after it can fail, so a failed reload leaves the running backends as they were.
// Metrics per backend: QUIC connections opened, handshakes failed, requests carried, requests
// failed. Active health checks of these groups (h3_probe) go through the same stand-ins, so
// they test the QUIC path and the backend's HTTP/3 answer.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <rproxy/flow/h3_upstream.hpp>
#include <rproxy/flow/h3_upstream_block.hpp>
#include <rproxy/flow/upstream_redirect.hpp>
#include <rproxy/health/check_config.hpp>
#include <rproxy/health/probe.hpp>
#include <rproxy/net/quic/tls.hpp>

#include "gateway.hpp"

namespace h3_gateway {

/// The active check of an HTTP/3 backend (a group with `proto: h3` and a `health_check:`
/// block): `GET path` sent to this process's stand-in for the backend, which carries it over
/// the backend's pooled QUIC connections. A backend down answers nothing over QUIC: the
/// stand-in's 502 or 504, or the check's timeout, counts as a failure. Both check types do
/// this (a TCP connect to the local stand-in would prove nothing); Host is the backend's
/// address unless the block names one.
struct h3_probe {
  rproxy::health::http_probe http;
  std::shared_ptr<const rproxy::flow::upstream_redirect> redirect;  ///< the config's stand-ins

  asio::awaitable<rproxy::health::probe_result> check(asio::any_io_executor ex, const asio::ip::tcp::endpoint& ep,
                                                      std::chrono::milliseconds timeout) {
    rproxy::health::http_probe p = http;
    if (p.host.empty()) p.host = ep.address().is_v6() ? "[" + ep.address().to_string() + "]:" + std::to_string(ep.port())
                                                      : ep.address().to_string() + ":" + std::to_string(ep.port());
    const asio::ip::tcp::endpoint target = redirect ? redirect->target(ep) : ep;
    co_return co_await p.check(std::move(ex), target, timeout);
  }

  static h3_probe of(const rproxy::health::check_config& c, std::shared_ptr<const rproxy::flow::upstream_redirect> r) {
    return {{.path = c.path, .host = c.host, .expect_status = c.expect_status, .body_contains = c.body_contains}, std::move(r)};
  }
};
static_assert(rproxy::health::probe<h3_probe>);

class h3_upstreams {
  struct entry {
    std::vector<std::shared_ptr<rproxy::flow::h3_upstream>> per_worker;
  };

public:
  explicit h3_upstreams(runtime& rt) : rt_(rt) {
    auto& m = rt.metrics();
    connections_ = &m.add_counter_family("h3gw_upstream_h3_connections", "QUIC connections opened to HTTP/3 backends.", {"backend"});
    handshake_failures_ =
        &m.add_counter_family("h3gw_upstream_h3_handshake_failures", "QUIC connections to HTTP/3 backends that never completed.", {"backend"});
    requests_ = &m.add_counter_family("h3gw_upstream_h3_requests", "Requests carried to HTTP/3 backends.", {"backend"});
    failures_ = &m.add_counter_family("h3gw_upstream_h3_failures", "Requests to HTTP/3 backends that failed (502, 504, cut).", {"backend"});
  }

  /// The backends of a config version, built aside: stand-ins made for new backends, shared
  /// with the live set for known ones. Until commit() nothing live changes, so a reload that
  /// fails (here or in a later step) leaves the running config's backends as they were; a
  /// staged set dropped uncommitted stops only the stand-ins it made.
  class staged {
  public:
    staged(staged&& o) noexcept
        : next_(std::move(o.next_)), made_(std::exchange(o.made_, {})), table_(std::move(o.table_)) {}
    staged& operator=(staged&&) = delete;
    ~staged() {
      for (auto& up : made_) up->stop();
    }
    /// The redirect table the new config's flows connect through (null: no group speaks HTTP/3).
    std::shared_ptr<const rproxy::flow::upstream_redirect> table() const { return table_; }

  private:
    friend class h3_upstreams;
    staged() = default;
    std::map<std::string, entry> next_;
    std::vector<std::shared_ptr<rproxy::flow::h3_upstream>> made_;  ///< stopped unless committed
    std::shared_ptr<const rproxy::flow::upstream_redirect> table_;
  };

  /// Builds the set for `c` aside (see staged); nullopt on an error (logged), nothing changed.
  std::optional<staged> stage(const config& c) {
    staged s;
    auto table = std::make_shared<rproxy::flow::upstream_redirect>();
    for (const auto& g : c.groups) {
      if (g.proto != rproxy::flow::upstream_proto::h3) continue;
      const rproxy::flow::h3_upstream_block b = g.h3.value_or(rproxy::flow::h3_upstream_block{});
      auto creds = credentials(b);
      if (!creds) return std::nullopt;
      for (const auto& be : g.backends) {
        const auto addr = asio::ip::make_address(be.address.host);
        const std::string name = b.server_name.empty() ? be.address.host : b.server_name;
        const std::string key = g.name + "|" + be.address.to_string() + "|" + name + "|" + b.ca_file + "|" + (b.verify ? "v" : "-") + "|" +
                                std::to_string(b.max_connections) + "|" + std::to_string(b.max_streams) + "|" +
                                std::to_string(b.response_timeout.count()) + "|" + std::to_string(b.idle_timeout.count());
        auto& e = s.next_[key];
        if (auto it = entries_.find(key); it != entries_.end()) {
          e = it->second;  // shared: the live set keeps it until commit
        } else if (e.per_worker.empty()) {
          const auto label = be.address.to_string();
          rproxy::flow::h3_upstream_metrics m{&connections_->with({label}), &handshake_failures_->with({label}), &requests_->with({label}),
                                              &failures_->with({label})};
          for (std::size_t i = 0; i < rt_.pool().size(); ++i) {
            auto up = std::make_shared<rproxy::flow::h3_upstream>(rt_.pool().context(i),
                                                                  rproxy::flow::h3_upstream::target{{addr, be.address.port}, name}, *creds,
                                                                  b.options(), m);
            s.made_.push_back(up);
            if (auto ec = up->listen()) {
              rt_.log().error("cannot open the HTTP/3 stand-in", {{"backend", label}, {"error", ec.message()}});
              return std::nullopt;
            }
            e.per_worker.push_back(std::move(up));
          }
        }
        std::vector<asio::ip::tcp::endpoint> locals;
        for (const auto& up : e.per_worker) locals.push_back(up->local());
        table->add({addr, be.address.port}, std::move(locals));
      }
    }
    if (!table->empty()) s.table_ = std::move(table);
    return s;
  }

  /// Makes a staged set the live one: the stand-ins of backends gone from it stop.
  void commit(staged s) {
    for (auto& [key, e] : entries_)
      if (!s.next_.contains(key))
        for (auto& up : e.per_worker) up->stop();
    entries_ = std::move(s.next_);
    s.made_.clear();
  }

  void stop() {
    for (auto& [key, e] : entries_)
      for (auto& up : e.per_worker) up->stop();
  }

private:
  const rproxy::net::quic::tls_credentials* credentials(const rproxy::flow::h3_upstream_block& b) {
    const auto key = std::make_tuple(b.ca_file, b.verify);
    if (auto it = creds_.find(key); it != creds_.end()) return it->second.get();
    auto c = rproxy::net::quic::tls_credentials::client({.verify = b.verify, .ca_file = b.ca_file});
    if (!c) return rt_.log().error("cannot load the HTTP/3 backends' trust anchors", {{"error", c.error()}}), nullptr;
    // Kept for the process: the stand-ins of older configs may still use them.
    return creds_.emplace(key, std::make_unique<rproxy::net::quic::tls_credentials>(std::move(*c))).first->second.get();
  }

  runtime& rt_;
  rproxy::observe::counter_family* connections_ = nullptr;
  rproxy::observe::counter_family* handshake_failures_ = nullptr;
  rproxy::observe::counter_family* requests_ = nullptr;
  rproxy::observe::counter_family* failures_ = nullptr;
  std::map<std::string, entry> entries_;
  std::map<std::tuple<std::string, bool>, std::unique_ptr<rproxy::net::quic::tls_credentials>> creds_;
};

}  // namespace h3_gateway
