// rproxy/upstream/backends.hpp: how an HTTP proxy reaches its groups' backends (upstream/
// group_block.hpp), per config version: a TLS client context per group that speaks TLS (read
// again on every reload), the transport settings its flows use, and the stand-ins of the
// HTTP/2 and HTTP/3 groups (upstream/h2_backends.hpp, upstream/h3_backends.hpp) with the one
// redirect table that finds them. stage() builds a version aside; commit() makes it live once
// nothing after it can fail, so a failed reload leaves the running backends as they were.
// Metrics, named `<prefix>_upstream_*`: the stand-ins' own, and TLS handshakes to backends
// (full or resumed), every version's contexts together.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/flow/upstream.hpp>
#include <rproxy/flow/upstream_redirect.hpp>
#include <rproxy/net/io_pool.hpp>
#include <rproxy/net/tls_client.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/upstream/group_block.hpp>
#include <rproxy/upstream/group_transports.hpp>
#include <rproxy/upstream/h2_backends.hpp>
#include <rproxy/upstream/h3_backends.hpp>

namespace rproxy::upstream {

class backends {
public:
  /// Kept for the process (the metrics' callbacks point at it).
  backends(net::io_pool& pool, observe::registry& m, const observe::logger& log, std::string_view prefix)
      : log_(log), h3_(pool, m, log, prefix), h2_(pool, m, log, prefix) {
    auto& hs = m.add_callback_counter_family(std::string(prefix) + "_upstream_tls_handshakes",
                                             "TLS handshakes to backends that succeeded: full, or resumed (a session kept from an earlier one).",
                                             {"session"});
    hs.with({"full"}, [this] { return static_cast<double>(handshakes_.full.load(std::memory_order_relaxed)); });
    hs.with({"resumed"}, [this] { return static_cast<double>(handshakes_.resumed.load(std::memory_order_relaxed)); });
  }
  backends(const backends&) = delete;
  backends& operator=(const backends&) = delete;

  /// A config version's backends, built aside: `transports` is the version's to keep.
  struct staged {
    group_transports transports;
    h3_backends::staged h3;
    h2_backends::staged h2;
  };

  /// Builds the version of `groups` aside; nullopt on an error (logged), nothing live changed.
  std::optional<staged> stage(const std::vector<group_block>& groups) {
    group_transports t;
    std::vector<std::shared_ptr<const net::tls_client_context>> h2_tls(groups.size());  ///< per group (proto: h2)
    for (const auto& g : groups) {  // the CA files are read on every reload
      auto& u = t.by_group.emplace_back();
      const auto tls = g.tls_settings();
      if (!tls) continue;
      auto c = net::tls_client_context::load(tls->options());
      if (!c) return log_.error("cannot load the backends' TLS settings", {{"group", g.name}, {"error", c.error().message}}), std::nullopt;
      if (!tls->verify) log_.warn("TLS to backends without certificate verification", {{"group", g.name}});
      auto ctx = std::make_shared<net::tls_client_context>(std::move(*c));
      ctx->count_into(&handshakes_);  // (its sessions, kept per backend and SNI, go with this version)
      t.contexts.push_back(ctx);
      if (g.proto == flow::upstream_proto::h2) {                     // the flow reaches the plain loopback stand-in,
        h2_tls[static_cast<std::size_t>(&g - groups.data())] = ctx;  // whose HTTP/2 connections are TLS
        continue;
      }
      u.tls = ctx.get();
      u.sni = tls->sni;
    }
    auto h3 = h3_.stage(groups);
    if (!h3) return std::nullopt;  // logged
    auto h2 = h2_.stage(groups, h2_tls);
    if (!h2) return std::nullopt;  // logged
    t.redirect = h3->table();
    if (!h2->table().empty()) {
      auto both = std::make_shared<flow::upstream_redirect>();
      if (t.redirect) both->add_all(*t.redirect);
      both->add_all(h2->table());
      t.redirect = std::move(both);
    }
    return staged{std::move(t), std::move(*h3), std::move(*h2)};
  }

  /// Makes a staged version live (its transports taken or not): stand-ins of backends gone stop.
  void commit(staged s) {
    h3_.commit(std::move(s.h3));
    h2_.commit(std::move(s.h2));
  }

  /// Stops every stand-in (at shutdown).
  void stop() {
    h3_.stop();
    h2_.stop();
  }

private:
  const observe::logger& log_;
  net::tls_client_stats handshakes_;
  h3_backends h3_;
  h2_backends h2_;
};

}  // namespace rproxy::upstream
