// rproxy/health/mc_status_probe.hpp: asks a Minecraft server for its status (server list ping),
// the way a client does: connect, Handshake (next state: status), Status Request, then read the
// Status Response. Used by mc-proxy to fill its status cache and, as `mc_status_probe`, as the
// active health probe of a Minecraft server pool (the probe type of health/checker.hpp).
//
//     auto r = co_await rproxy::health::fetch_mc_status(ex, backend, {.host = "lobby.example.com"}, 2s);
//     if (r) cache.store(r->json);  // r->latency: connect to response
//
// Everything is bounded: one deadline for the whole exchange, a frame limit on the response.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/codec/mc/handshake.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/codec/mc/versions.hpp>
#include <rproxy/core/proxy_mode.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/health/probe.hpp>
#include <rproxy/net/connector.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/proxy_protocol.hpp>

namespace rproxy::health {

struct mc_status_query {
  std::string host = "localhost";  ///< server address written into the handshake
  std::uint16_t port = 25565;      ///< server port written into the handshake
  /// Protocol version in the handshake: servers answer any, and put theirs in the reply; a
  /// proxy passes the client's so version-aware backends answer for that client.
  std::int32_t protocol = codec::mc::protocol::newest;
  std::string prefix;  ///< bytes sent before the handshake (a PROXY protocol header), or ""
};

struct mc_status_reply {
  std::string json;                   ///< the Status Response JSON, as the server sent it
  std::chrono::nanoseconds latency{};  ///< from connect to the whole response read
};

/// One status exchange with `server`, all of it within `timeout`.
inline asio::awaitable<result<mc_status_reply>> fetch_mc_status(asio::any_io_executor ex, asio::ip::tcp::endpoint server,
                                                                mc_status_query q, std::chrono::milliseconds timeout) {
  using asio::experimental::as_tuple;
  namespace mc = codec::mc;
  const auto start = std::chrono::steady_clock::now();
  auto connected = co_await net::async_connect(ex, server, timeout, as_tuple(asio::use_awaitable));
  if (auto ec = std::get<0>(connected)) co_return failure(ec);
  auto& sock = std::get<1>(connected);

  // Every step after the connect runs with the exchange's deadline (net/deadline.hpp).
  using asio::experimental::deferred;
  const auto deadline = start + timeout;
  const auto timed_out = make_error_code(net::error::connect_timeout);

  mc::bytes out(mc::as_bytes(q.prefix).begin(), mc::as_bytes(q.prefix).end());
  mc::handshake hs;
  hs.protocol_version = q.protocol;
  hs.server_address = q.host;
  hs.server_port = q.port;
  hs.next_state = mc::intent::status;
  mc::append_handshake(out, hs);
  mc::append_status_request(out);
  auto [wec, wn] = co_await net::with_deadline(asio::async_write(sock, asio::buffer(out), deferred), deadline, timed_out);
  (void)wn;
  if (wec) co_return failure(wec);

  // The JSON is at most 32767 UTF-16 units: at most 3 bytes each in UTF-8, plus framing.
  mc::packet_reader in(32767 * 3 + 16);
  for (;;) {
    auto room = in.prepare(4096);
    auto [rec, n] = co_await net::with_deadline(sock.async_read_some(asio::buffer(room.data(), room.size()), deferred),
                                                deadline, timed_out);
    if (rec) co_return failure(rec);
    in.commit(n);
    auto p = in.next();
    if (p.need_more()) continue;
    if (p.failed()) co_return failure(p.error());
    auto json = mc::parse_status_response(p->body);
    if (!json) co_return failure(json.error());
    std::error_code ignored;
    sock.close(ignored);
    co_return mc_status_reply{std::move(*json), std::chrono::steady_clock::now() - start};
  }
}

/// The Minecraft status ping as an active health probe (health/checker.hpp): healthy when the
/// server answers the status request with a status response, within the timeout.
///
///     rproxy::health::checker<rproxy::health::mc_status_probe, Pool> hc(ex, pool, {{.host = "lobby.example.com"}}, opts);
struct mc_status_probe {
  mc_status_query query{};
  /// Backends that expect a PROXY header before the handshake, and which version (1 or 2).
  std::vector<std::pair<asio::ip::tcp::endpoint, int>> proxied{};

  asio::awaitable<probe_result> check(asio::any_io_executor ex, const asio::ip::tcp::endpoint& ep,
                                      std::chrono::milliseconds timeout) {
    mc_status_query q = query;
    for (const auto& [e, version] : proxied)
      if (e == ep) {
        // The probe speaks for the proxy itself: source and destination are the backend's own.
        auto h = net::proxy_protocol::make_header(ep, ep);
        if (version == 1) {
          q.prefix = net::proxy_protocol::write_v1(h);
        } else {
          auto bin = net::proxy_protocol::write_v2(h);
          q.prefix.assign(reinterpret_cast<const char*>(bin.data()), bin.size());
        }
      }
    auto r = co_await fetch_mc_status(std::move(ex), ep, std::move(q), timeout);
    probe_result out;
    if (r) {
      out.latency = r->latency;
    } else {
      out.error = r.error();
      out.detail = "status ping: " + r.error().message();
    }
    co_return out;
  }
};

/// The probe of a Minecraft server pool, asking as a player who typed `host`:`port`, with the
/// PROXY header each backend wants: `backends` lists them as balance::backend_settings do
/// (`address.host`, an IP, and `address.port`; `send_proxy_protocol`).
template <class Backends>
mc_status_probe make_mc_status_probe(std::string host, std::uint16_t port, const Backends& backends) {
  mc_status_probe p;
  p.query.host = std::move(host);
  p.query.port = port;
  for (const auto& b : backends)
    if (b.send_proxy_protocol != proxy_send::none)
      p.proxied.push_back({{asio::ip::make_address(b.address.host), b.address.port}, b.send_proxy_protocol == proxy_send::v1 ? 1 : 2});
  return p;
}

}  // namespace rproxy::health
