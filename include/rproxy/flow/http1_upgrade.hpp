// rproxy/flow/http1_upgrade.hpp: HTTP/1.1 upgrades (WebSocket) passed through by the HTTP/1.1
// adapter (flow/http1.hpp, which includes this header at its end).
//
//     rproxy::flow::http1_adapter a;
//     a.upgrades = {"websocket"};     // GET + Connection: upgrade + Upgrade: websocket
//
// An upgrade request is a request like any other until the backend answers: the pipeline runs
// on it (on_hello: auth, limits; on_route: routing and the balancer; on_connect), and the
// backend gets its head with `Connection: upgrade` and `Upgrade:` (the protocols the adapter
// passes on; the client's other Upgrade tokens are dropped). Then:
//   - a 101 naming a protocol that was offered (with Connection: upgrade): on_response runs,
//     the client gets the 101 (hop-by-hop fields dropped, Connection/Upgrade set again, the
//     stages' response_fields), and bytes go both ways (net/relay.hpp, splice(2) on plain
//     TCP) until either side closes or nothing moves for the request's idle timeout (a route's
//     idle_timeout, else the adapter's). The connection carries nothing after it.
//   - a 101 naming another protocol, or without Connection: upgrade: 502 (backend_failed).
//   - any other final status (the backend refused the upgrade: 400, 403, 426, ...): relayed as
//     a plain response, and the client connection may carry its next request.
// Only a bodiless HTTP/1.1 request is an upgrade here (a body, or a protocol not in `upgrades`:
// 501). ctx.status is 101 for a switched connection (the apps count upgrades from it).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/relay.hpp>
#include <rproxy/net/relay_options.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

namespace rproxy::flow {

namespace http1_detail {

/// The protocol name of an Upgrade token ("websocket" of "websocket/13").
constexpr std::string_view upgrade_name(std::string_view token) noexcept { return token.substr(0, token.find('/')); }

}  // namespace http1_detail

inline bool http1_adapter::offered_upgrades(const codec::http1::request_head_view& h, const codec::http1::message_info& info,
                                            std::string& out) const {
  namespace d = codec::http1::detail;
  out.clear();
  // (the parser calls a CONNECT an upgrade too: a tunnel is not passed on here)
  if (upgrades.empty() || !info.upgrade || h.method == "CONNECT" || info.chunked || info.content_length > 0) return false;
  for (const auto& f : h.fields) {
    if (!d::iequals(f.name, "upgrade")) continue;
    d::for_each_element(f.value, [&](std::string_view token) {  // protocol-name ["/" protocol-version]
      const auto name = http1_detail::upgrade_name(token);
      const auto version = token.substr(name.size());
      if (name.empty() || !d::is_token(name) || (!version.empty() && (version.size() == 1 || !d::is_token(version.substr(1)))))
        return true;
      for (const auto& u : upgrades)
        if (d::iequals(name, u)) {
          if (!out.empty()) out += ", ";
          out += token;
          break;
        }
      return true;
    });
  }
  return !out.empty();
}

template <class Pipeline, class Client>
asio::awaitable<exchange_result> http1_adapter::switch_protocols(Pipeline& p, typename Pipeline::context_type& ctx,
                                                                 Client& client, backend_stream& backend, reader& r,
                                                                 const codec::http1::response_parser& bp,
                                                                 std::size_t head_size) const {
  namespace http1 = codec::http1;
  namespace d = codec::http1::detail;
  using net::error;
  auto& bin = r.bin_;
  const auto& rh = bp.head();
  auto fail = [&](unsigned status) -> asio::awaitable<exchange_result> {
    bin.consume(bin.view().size());
    co_await http1_detail::answer_and_close(client, error_response(ctx, status), idle_timeout);
    co_return exchange_result{make_error_code(error::backend_failed)};
  };

  // The backend switches to one of the protocols offered, and says so in Connection.
  const auto proto = rh.fields.find("upgrade");
  bool offered = false;
  if (proto && rh.fields.has_token("connection", "upgrade"))
    d::for_each_element(r.upgrade_, [&](std::string_view token) {
      offered = d::iequals(http1_detail::upgrade_name(token), http1_detail::upgrade_name(*proto));
      return !offered;
    });
  if (!offered || !http1::is_valid_field_value(*proto)) co_return co_await fail(502);

  if (auto v = co_await run_phase<phase::response>(p, ctx, rh); !v.is_next()) {
    if (v.is_reject()) ctx.rejected = v.reason();
    co_return co_await fail(502);
  }
  http1::response_head down{101, std::string(rh.reason.empty() ? std::string_view("Switching Protocols") : rh.reason)};
  for (const auto& f : rh.fields)
    if (!http1_detail::hop_by_hop(f.name, rh.fields)) down.fields.add(f.name, f.value);
  if constexpr (requires { ctx.response_fields; }) ctx.response_fields.apply(down.fields);
  down.fields.erase("connection");  // (a stage cannot unset what makes this a switch)
  down.fields.erase("upgrade");
  down.fields.add("Connection", "upgrade");
  down.fields.add("Upgrade", *proto);
  const std::string head = http1::serialize(down);
  sent(ctx, 101);
  if constexpr (requires { ctx.upgraded; }) ctx.upgraded = true;

  // The head and what the backend sent after it (the new protocol's first bytes) in one write.
  bin.consume(head_size);
  const auto early = bin.view();
  const std::array<asio::const_buffer, 2> out{asio::buffer(head), asio::buffer(early.data(), early.size())};
  const auto wec = co_await http1_detail::write_for(client, out, step_timeout(ctx));
  ctx.bytes_to_client += head.size() + early.size();
  bin.consume(early.size());
  if (wec) co_return exchange_result{make_error_code(error::client_failed)};

  // Then bytes both ways; what the client sent after its request goes first.
  net::relay_options ro;
  ro.buffer_size = buffer_size;
  ro.idle_timeout = idle_timeout;
  if constexpr (requires { ctx.idle_timeout; })
    if (ctx.idle_timeout.count() > 0) ro.idle_timeout = ctx.idle_timeout;
  ro.initial_to_backend = std::string(r.in_.view());
  ctx.bytes_from_client += ro.initial_to_backend.size();
  r.in_.consume(r.in_.view().size());
  auto [rec, stats] = co_await net::async_relay(client, backend, std::move(ro), asio::experimental::as_tuple(asio::use_awaitable));
  ctx.bytes_from_client += stats.bytes_client_to_backend;
  ctx.bytes_to_client += stats.bytes_backend_to_client;
  co_return exchange_result{rec};
}

}  // namespace rproxy::flow
