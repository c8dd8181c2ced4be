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
//
// A web page the operator visits must not reach it: a request whose Host is neither the
// address the connection came in on nor one of `allowed_hosts` gets 403 (DNS rebinding), and
// with a `token` set every request but a GET or HEAD needs `Authorization: Bearer <token>` (else
// 401), and so does every request under a path given to require_token() (a REST API's reads).
// A handler can serve a whole subtree: handle_prefix("PUT", "/api/backends/", h).
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/admin/request_reader.hpp>
#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/codec/http1/status.hpp>
#include <rproxy/core/result.hpp>
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
  std::string token{};                      ///< bearer token every non-GET request needs; empty: none
  std::vector<std::string> allowed_hosts{}; ///< Host names accepted besides the local address
};

/// Reads a bearer token from a file: its text without surrounding whitespace. An empty
/// file, or one with whitespace inside the token, is an error (a startup error for the app).
inline result<std::string> read_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return failure(std::make_error_code(std::errc::no_such_file_or_directory));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && ws(text.back())) text.pop_back();
  std::size_t b = 0;
  while (b < text.size() && ws(text[b])) ++b;
  text.erase(0, b);
  if (text.empty() || std::any_of(text.begin(), text.end(), [&](char c) { return ws(c) || c < 0x21 || c > 0x7e; }))
    return failure(std::make_error_code(std::errc::invalid_argument));
  return text;
}

namespace detail {

/// The host part of a Host field value: "[::1]:9901" -> "::1", "a.example:80" -> "a.example".
inline std::string_view host_name(std::string_view host) {
  if (host.starts_with('[')) {
    const auto e = host.find(']');
    return e == std::string_view::npos ? std::string_view{} : host.substr(1, e - 1);
  }
  return host.substr(0, host.find(':'));
}

/// Equal in constant time for a given length (the token's length is not a secret here).
inline bool same_secret(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

}  // namespace detail

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
  /// Registers a handler for a method and every path starting with `prefix` (an exact
  /// handler wins; among prefixes, the longest).
  void handle_prefix(std::string method, std::string prefix, handler h) {
    prefixes_[{std::move(method), std::move(prefix)}] = std::move(h);
  }
  /// With a token set, requests under `prefix` need it whatever their method.
  void require_token(std::string prefix) { token_prefixes_.push_back(std::move(prefix)); }
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
      if (*connections_ >= opt_.max_connections) continue;  // dropped: closes at end of scope
      asio::co_spawn(io_, session(std::move(sock)), asio::detached);
    }
  }

  asio::awaitable<void> session(asio::ip::tcp::socket sock) {
    namespace http1 = codec::http1;
    ++*connections_;
    // The count is shared with the session: a session still waiting when the server is gone is
    // destroyed with the io_context (at shutdown), after the server, and must not touch it.
    struct count_guard {
      std::shared_ptr<std::size_t> n;
      ~count_guard() { --*n; }
    } guard{connections_};

    // Each request, from its first byte read to its response written, has request_timeout;
    // every read and write runs with that deadline (net/deadline.hpp), so no timer outlives them.
    auto deadline = std::chrono::steady_clock::now() + opt_.request_timeout;

    request_reader reader(opt_.max_body);
    std::string out;
    char chunk[4096];
    for (;;) {
      const auto r = reader.next();
      if (r.what == request_reader::step::need_more) {
        auto [ec, n] = co_await net::with_deadline(sock.async_read_some(asio::buffer(chunk), asio::experimental::deferred), deadline);
        if (ec) co_return;  // the client went away, or the request took too long
        reader.feed(std::string_view(chunk, n));
        continue;
      }
      if (r.what == request_reader::step::error) {
        co_await write(sock, http1::make_error_response(r.status), deadline);
        co_return;
      }
      const auto& head = reader.head();
      const bool keep = reader.keep_alive() && !stopping_;
      out = render(!host_allowed(head, sock) ? text(403, "host not allowed\n")
                   : !token_ok(head)              ? text(401, "a bearer token is required\n")
                                                  : dispatch(head, std::move(reader.body())),
                   keep);
      if (!co_await write(sock, out, deadline) || !keep) co_return;
      deadline = std::chrono::steady_clock::now() + opt_.request_timeout;
    }
  }

  /// Host is this connection's local address or an allowed name (DNS rebinding).
  bool host_allowed(const codec::http1::request_head& head, const asio::ip::tcp::socket& sock) const {
    const auto host = head.fields.find("host");
    if (!host) return false;
    const auto name = detail::host_name(*host);
    if (name.empty()) return false;
    for (const auto& a : opt_.allowed_hosts)
      if (codec::http1::detail::iequals(name, a)) return true;
    std::error_code ec;
    const auto local = sock.local_endpoint(ec);
    if (ec) return false;
    const auto parsed = asio::ip::make_address(std::string(name), ec);
    return !ec && parsed == local.address();
  }
  /// With a token set, a request that changes something (any method but GET and HEAD), or one
  /// under a require_token() prefix, carries it as `Authorization: Bearer <token>`.
  bool token_ok(const codec::http1::request_head& head) const {
    if (opt_.token.empty()) return true;
    const std::string_view path = std::string_view(head.target).substr(0, head.target.find('?'));
    const bool reads = head.method == "GET" || head.method == "HEAD";
    if (reads && std::none_of(token_prefixes_.begin(), token_prefixes_.end(), [&](const std::string& p) { return path.starts_with(p); }))
      return true;
    const auto auth = head.fields.find("authorization");
    constexpr std::string_view scheme = "Bearer ";
    if (!auth || auth->size() <= scheme.size() || !codec::http1::detail::iequals(auth->substr(0, scheme.size()), scheme))
      return false;
    return detail::same_secret(auth->substr(scheme.size()), opt_.token);
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
    const handler* best = nullptr;
    std::size_t best_len = 0;
    bool other_method = false;
    for (const auto& [key, h] : prefixes_) {
      if (!req.path.starts_with(key.second)) continue;
      if (key.first != req.method) other_method = true;
      else if (best == nullptr || key.second.size() > best_len) best = &h, best_len = key.second.size();
    }
    if (best != nullptr) return (*best)(req);
    for (const auto& [key, h] : routes_)
      if (key.second == req.path) other_method = true;
    return other_method ? text(405, "method not allowed\n") : text(404, "not found\n");
  }

  static std::string render(const response& r, bool keep_alive) {
    namespace http1 = codec::http1;
    http1::response_head h{r.status, std::string(http1::reason_phrase(r.status))};
    h.fields.add("Content-Type", r.content_type);
    http1::set_content_length(h.fields, r.body.size());
    if (r.status == 401) h.fields.add("WWW-Authenticate", "Bearer");
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
  std::map<std::pair<std::string, std::string>, handler> prefixes_;
  std::vector<std::string> token_prefixes_;
  std::function<bool()> ready_;
  std::shared_ptr<std::size_t> connections_ = std::make_shared<std::size_t>(0);
  bool stopping_ = false;
};

}  // namespace rproxy::admin
