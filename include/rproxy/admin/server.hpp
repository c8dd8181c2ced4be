// rproxy/admin/server.hpp: the admin HTTP endpoint every app exposes.
//
//     rproxy::admin::server admin(io, {asio::ip::make_address("127.0.0.1"), 9901});
//     admin.serve_metrics(registry);                       // GET /metrics (Prometheus text)
//     admin.set_ready([&] { return config_loaded; });     // GET /readyz: 200 or 503
//     admin.handle("GET", "/routes", [&](const admin::request&) { return admin::json(...); });
//     admin.start();                                       // GET /healthz: 200 while running
//
// It runs on one io_context (admin traffic is light; the data path never waits on it), speaks
// HTTP/1.1 with keep-alive through codec/http1, and is bounded: head size (http1 limits), body
// size, connections, and a timeout per request so slow clients cannot hold it. Handlers are
// control-path code (std::function is fine here).
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/codec/http1/status.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/observe/registry.hpp>

namespace rproxy::admin {

struct request {
  std::string_view method;
  std::string_view path;   ///< target without the query
  std::string_view query;  ///< after '?', may be empty
  const codec::http1::request_head* head = nullptr;
  std::string body;
};

struct response {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

inline response text(unsigned status, std::string body) { return {status, "text/plain; charset=utf-8", std::move(body)}; }
inline response json(unsigned status, std::string body) { return {status, "application/json", std::move(body)}; }

struct server_options {
  std::size_t max_connections = 64;
  std::size_t max_body = 1 << 20;
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
};

class server {
public:
  using handler = std::function<response(const request&)>;

  server(asio::io_context& io, const asio::ip::tcp::endpoint& ep, server_options opt = {})
      : io_(io), acceptor_(io, ep), opt_(opt) {
    handle("GET", "/healthz", [](const request&) { return text(200, "ok\n"); });
    handle("GET", "/readyz", [this](const request&) {
      return ready_ && !ready_() ? text(503, "not ready\n") : text(200, "ready\n");
    });
  }

  /// Registers a handler for an exact method and path (replacing any earlier one).
  void handle(std::string method, std::string path, handler h) {
    routes_[{std::move(method), std::move(path)}] = std::move(h);
  }
  /// GET /metrics serves the registry's Prometheus text.
  void serve_metrics(const observe::registry& reg) {
    handle("GET", "/metrics", [&reg](const request&) {
      return response{200, std::string(observe::registry::content_type), reg.serialize_prometheus()};
    });
  }
  /// /readyz answers 503 while `f()` is false.
  void set_ready(std::function<bool()> f) { ready_ = std::move(f); }

  asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void start() {
    asio::co_spawn(io_, accept_loop(), asio::detached);
  }
  /// Stops accepting; open admin connections end after their current request.
  void stop() {
    std::error_code ignored;
    acceptor_.close(ignored);
    stopping_ = true;
  }

private:
  asio::awaitable<void> accept_loop() {
    using asio::experimental::as_tuple;
    for (;;) {
      auto [ec, sock] = co_await acceptor_.async_accept(as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      if (ec) continue;
      if (connections_ >= opt_.max_connections) continue;  // dropped: closes at end of scope
      asio::co_spawn(io_, session(std::move(sock)), asio::detached);
    }
  }

  asio::awaitable<void> session(asio::ip::tcp::socket sock) {
    namespace http1 = codec::http1;
    using asio::experimental::deferred;
    ++connections_;
    struct count_guard {
      std::size_t& n;
      ~count_guard() { --n; }
    } guard{connections_};

    // Each request, from its first byte read to its response written, has request_timeout;
    // every read and write runs with that deadline (net/deadline.hpp), so no timer outlives them.
    auto deadline = std::chrono::steady_clock::now() + opt_.request_timeout;

    http1::request_parser parser;
    std::string buf;
    std::size_t start = 0;  // first unconsumed byte of buf
    http1::request_head head;
    std::string body;
    std::string out;
    char chunk[4096];
    for (;;) {
      auto r = parser.parse(std::string_view(buf).substr(start));
      switch (r.what) {
        case http1::event::need_more: {
          if (start > 0) {
            buf.erase(0, start);
            start = 0;
          }
          auto [ec, n] = co_await net::with_deadline(sock.async_read_some(asio::buffer(chunk), deferred), deadline);
          if (ec) co_return;  // the client went away, or the request took too long
          buf.append(chunk, n);
          continue;
        }
        case http1::event::head:
          head = http1::request_head::from(parser.head());  // the views die with the buffer
          body.clear();
          break;
        case http1::event::body:
          if (body.size() + r.data.size() > opt_.max_body) {
            co_await write(sock, http1::make_error_response(413), deadline);
            co_return;
          }
          body.append(r.data);
          break;
        case http1::event::message_complete:
        case http1::event::upgrade: {
          const bool keep = r.what == http1::event::message_complete && parser.info().keep_alive && !stopping_;
          out = render(dispatch(head, std::move(body)), keep);
          start += r.consumed;
          if (!co_await write(sock, out, deadline) || !keep) co_return;
          deadline = std::chrono::steady_clock::now() + opt_.request_timeout;
          continue;
        }
        case http1::event::error:
          co_await write(sock, http1::make_error_response(http1::status_for(r.error)), deadline);
          co_return;
        case http1::event::end_of_stream:
          co_return;
      }
      start += r.consumed;
    }
  }

  response dispatch(const codec::http1::request_head& head, std::string body) const {
    request req;
    req.method = head.method;
    req.head = &head;
    req.body = std::move(body);
    std::string_view target = head.target;
    auto q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string_view::npos) req.query = target.substr(q + 1);
    auto it = routes_.find({std::string(req.method), std::string(req.path)});
    if (it != routes_.end()) return it->second(req);
    for (const auto& [key, h] : routes_)
      if (key.second == req.path) return text(405, "method not allowed\n");
    return text(404, "not found\n");
  }

  static std::string render(const response& r, bool keep_alive) {
    namespace http1 = codec::http1;
    http1::response_head h{r.status, std::string(http1::reason_phrase(r.status))};
    h.fields.add("Content-Type", r.content_type);
    http1::set_content_length(h.fields, r.body.size());
    if (!keep_alive) h.fields.add("Connection", "close");
    std::string out = http1::serialize(h);
    out += r.body;
    return out;
  }

  static asio::awaitable<bool> write(asio::ip::tcp::socket& sock, std::string_view bytes,
                                    std::chrono::steady_clock::time_point deadline) {
    auto [ec, n] = co_await net::with_deadline(
        asio::async_write(sock, asio::buffer(bytes), asio::experimental::deferred), deadline);
    (void)n;
    co_return !ec;
  }

  asio::io_context& io_;
  asio::ip::tcp::acceptor acceptor_;
  server_options opt_;
  std::map<std::pair<std::string, std::string>, handler> routes_;
  std::function<bool()> ready_;
  std::size_t connections_ = 0;
  bool stopping_ = false;
};

}  // namespace rproxy::admin
