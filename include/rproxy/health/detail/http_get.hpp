// rproxy/health/detail/http_get.hpp: one bounded HTTP/1.1 GET to a backend endpoint, for the
// HTTP probe and the load-report poller (not a public API).
//
// Connects within `timeout`, sends `GET target` with `Connection: close`, and reads until one
// final (non-1xx) response is complete, all within `timeout`. The reply (head and body) may
// not exceed `max_response` bytes. Cancellable through the calling coroutine's cancellation
// slot (asio::bind_cancellation_slot on co_spawn).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

#include <rproxy/codec/http1/collector.hpp>
#include <rproxy/codec/http1/error.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/health/error.hpp>
#include <rproxy/net/connector.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>

namespace rproxy::health::detail {

struct http_get_result {
  std::error_code error;
  unsigned status = 0;
  std::string body;
  std::chrono::nanoseconds latency{};
};

/// "127.0.0.1:8080" or "[::1]:8080": the Host field when none is configured.
inline std::string host_of(const asio::ip::tcp::endpoint& ep) {
  auto a = ep.address();
  std::string s = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return s + ":" + std::to_string(ep.port());
}

inline asio::awaitable<http_get_result> http_get(asio::any_io_executor ex, asio::ip::tcp::endpoint ep,
                                                 std::string host, std::string target,
                                                 std::chrono::milliseconds timeout, std::size_t max_response) {
  using asio::experimental::as_tuple;
  namespace http1 = rproxy::codec::http1;
  http_get_result out;
  const auto start = std::chrono::steady_clock::now();

  std::string request;
  try {
    http1::request_head h{"GET", target};
    h.fields.add("Host", host.empty() ? host_of(ep) : host)
        .add("User-Agent", "rproxy-health")
        .add("Accept", "*/*")
        .add("Connection", "close");
    request = http1::serialize(h);
  } catch (const std::invalid_argument&) {
    out.error = make_error_code(error::invalid_probe);
    co_return out;
  }

  auto [cec, sock] = co_await net::async_connect(ex, ep, timeout, as_tuple(asio::use_awaitable));
  if (cec) {
    out.error = cec;
    co_return out;
  }

  // The write and every read run with the exchange's deadline (net/deadline.hpp).
  using asio::experimental::deferred;
  const auto deadline = start + timeout;
  const auto timed_out = make_error_code(error::probe_timeout);
  auto io_error = [&](const std::error_code& ec) {
    if (ec == timed_out) return ec;
    return net::classify(ec, net::side::upstream);
  };

  if (auto [wec, n] = co_await net::with_deadline(asio::async_write(sock, asio::buffer(request), deferred), deadline,
                                                  timed_out);
      wec) {
    (void)n;
    out.error = io_error(wec);
    co_return out;
  }

  http1::limits lim;
  lim.max_header_bytes = std::min<std::size_t>(lim.max_header_bytes, max_response);
  lim.max_body_size = max_response;
  http1::response_collector col{lim};
  col.parser().set_request_method("GET");
  // The first final response, if complete.
  auto final_response = [&]() -> const http1::response* {
    for (const auto& m : col.messages())
      if (m.head.status >= 200) return &m;
    return nullptr;
  };
  auto done = [&](const http1::response& m) {
    out.status = m.head.status;
    out.body = m.body;
    out.latency = std::chrono::steady_clock::now() - start;
  };

  std::array<char, 4096> buf;
  std::size_t total = 0;
  for (;;) {
    auto [ec, n] = co_await net::with_deadline(sock.async_read_some(asio::buffer(buf), deferred), deadline, timed_out);
    if (n > 0) {
      total += n;
      if (total > max_response) {
        out.error = make_error_code(error::response_too_large);
        break;
      }
      col.feed(std::string_view(buf.data(), n));
      if (const auto* m = final_response()) {
        done(*m);
        break;
      }
      if (col.failed()) {
        out.error = col.last_error() == http1::error::body_too_large
                        ? make_error_code(error::response_too_large)
                        : http1::make_upstream_error_code(col.last_error());
        break;
      }
    }
    if (!ec) continue;
    if (ec == asio::error::eof) {
      col.finish();  // a body delimited by the close
      if (const auto* m = final_response()) done(*m);
      else if (col.failed() && col.last_error() != http1::error::partial_message)
        out.error = http1::make_upstream_error_code(col.last_error());
      else out.error = make_error_code(error::closed_early);
    } else {
      out.error = io_error(ec);
    }
    break;
  }
  std::error_code ignored;
  sock.close(ignored);
  co_return out;
}

}  // namespace rproxy::health::detail
