// rproxy/upstream/h3_backends.hpp: the HTTP/3 backends of a proxy's groups (upstream/
// group_block.hpp, `proto: h3`): per backend and worker a flow::h3_upstream (pooled QUIC
// connections behind a loopback stand-in), kept across reloads while the group's `h3:` settings
// stay, and the redirect table a config version's flows connect through. A reload stages the
// new set aside and commits it only once nothing after it can fail (upstream/standin_set.hpp,
// as the HTTP/2 backends'). Metrics per backend, named `<prefix>_upstream_h3_*`: QUIC
// connections opened, handshakes failed, requests carried, requests failed.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <rproxy/flow/h3_upstream.hpp>
#include <rproxy/flow/h3_upstream_block.hpp>
#include <rproxy/flow/upstream_redirect.hpp>
#include <rproxy/net/io_pool.hpp>
#include <rproxy/net/quic/tls.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/upstream/group_block.hpp>
#include <rproxy/upstream/standin_set.hpp>

namespace rproxy::upstream {

class h3_backends {
  using set = standin_set<flow::h3_upstream>;

public:
  h3_backends(net::io_pool& pool, observe::registry& m, const observe::logger& log, std::string_view prefix) : pool_(pool), log_(log) {
    const std::string p(prefix);
    connections_ = &m.add_counter_family(p + "_upstream_h3_connections", "QUIC connections opened to HTTP/3 backends.", {"backend"});
    handshake_failures_ =
        &m.add_counter_family(p + "_upstream_h3_handshake_failures", "QUIC connections to HTTP/3 backends that never completed.", {"backend"});
    requests_ = &m.add_counter_family(p + "_upstream_h3_requests", "Requests carried to HTTP/3 backends.", {"backend"});
    failures_ = &m.add_counter_family(p + "_upstream_h3_failures", "Requests to HTTP/3 backends that failed (502, 504, cut).", {"backend"});
    retries_ = &m.add_counter_family(p + "_upstream_h3_retries",
                                     "Requests sent again to HTTP/3 backends: rejected unprocessed, or idempotent and their connection lost.", {"backend"});
  }

  /// The backends of a config version, built aside (upstream/standin_set.hpp).
  class staged {
  public:
    /// The redirect table the new config's flows connect through (null: no group speaks HTTP/3).
    std::shared_ptr<const flow::upstream_redirect> table() const { return table_; }

  private:
    friend class h3_backends;
    staged() = default;
    set::staged standins_;
    std::shared_ptr<const flow::upstream_redirect> table_;
  };

  /// Builds the set for `groups` aside (see staged); nullopt on an error (logged), nothing changed.
  std::optional<staged> stage(const std::vector<group_block>& groups) {
    staged s;
    auto table = std::make_shared<flow::upstream_redirect>();
    for (const auto& g : groups) {
      if (g.proto != flow::upstream_proto::h3) continue;
      const flow::h3_upstream_block b = g.h3.value_or(flow::h3_upstream_block{});
      auto creds = credentials(b);
      if (!creds) return std::nullopt;
      for (const auto& be : g.backends) {
        const auto addr = asio::ip::make_address(be.address.host);
        const std::string name = b.server_name.empty() ? be.address.host : b.server_name;
        const std::string key = g.name + "|" + be.address.to_string() + "|" + name + "|" + b.ca_file + "|" + (b.verify ? "v" : "-") + "|" +
                                std::to_string(b.max_connections) + "|" + std::to_string(b.max_streams) + "|" +
                                std::to_string(b.response_timeout.count()) + "|" + std::to_string(b.idle_timeout.count());
        const auto label = be.address.to_string();
        const auto got = standins_.get(s.standins_, key, pool_.size(), [&](std::size_t i) {
          flow::h3_upstream_metrics m{&connections_->with({label}), &handshake_failures_->with({label}), &requests_->with({label}),
                                      &failures_->with({label}), &retries_->with({label})};
          return std::make_shared<flow::h3_upstream>(pool_.context(i), flow::h3_upstream::target{{addr, be.address.port}, name}, *creds,
                                                     b.options(), m);
        });
        if (!got.standins) {
          log_.error("cannot open the HTTP/3 stand-in", {{"backend", label}, {"error", got.error.message()}});
          return std::nullopt;
        }
        const auto& e = *got.standins;
        std::vector<asio::ip::tcp::endpoint> locals;
        for (const auto& up : e) locals.push_back(up->local());
        table->add({addr, be.address.port}, std::move(locals));
      }
    }
    if (!table->empty()) s.table_ = std::move(table);
    return s;
  }

  /// Makes a staged set the live one: the stand-ins of backends gone from it stop.
  void commit(staged s) { standins_.commit(s.standins_); }

  void stop() { standins_.stop(); }

private:
  const net::quic::tls_credentials* credentials(const flow::h3_upstream_block& b) {
    const auto key = std::make_tuple(b.ca_file, b.verify);
    if (auto it = creds_.find(key); it != creds_.end()) return it->second.get();
    auto c = net::quic::tls_credentials::client({.verify = b.verify, .ca_file = b.ca_file});
    if (!c) return log_.error("cannot load the HTTP/3 backends' trust anchors", {{"error", c.error()}}), nullptr;
    // Kept for the process: the stand-ins of older configs may still use them.
    return creds_.emplace(key, std::make_unique<net::quic::tls_credentials>(std::move(*c))).first->second.get();
  }

  net::io_pool& pool_;
  const observe::logger& log_;
  observe::counter_family* connections_ = nullptr;
  observe::counter_family* handshake_failures_ = nullptr;
  observe::counter_family* requests_ = nullptr;
  observe::counter_family* failures_ = nullptr;
  observe::counter_family* retries_ = nullptr;
  set standins_;
  std::map<std::tuple<std::string, bool>, std::unique_ptr<net::quic::tls_credentials>> creds_;
};

}  // namespace rproxy::upstream
