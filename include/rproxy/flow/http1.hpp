// rproxy/flow/http1.hpp: the HTTP/1.1 adapter of the flow driver (flow/serve.hpp).
//
//     using proto = rproxy::flow::http1_protocol;           // flow type: rproxy::flow::http_flow
//     auto conn = rproxy::make_pipeline<proto>(...per-connection stages...);
//     auto reqs = rproxy::make_pipeline<proto>(...per-request stages...);
//     co_await rproxy::flow::serve(conn, reqs, rproxy::flow::http1_adapter{...}, std::move(socket), options);
//
// A flow is one request. What HTTP/1.1 adds to the driver:
//   - the hello is the request head (on_hello sees a codec::http1::request_view), parsed by
//     codec/http1 from a bounded client buffer that is kept across the flows of a connection,
//     so pipelined requests are served in order. A head must be whole within
//     options.hello_timeout (the header timeout: slowloris gets a 408); a malformed or oversized
//     head gets its 400/414/431/501 and the connection ends. CONNECT: 501. An Upgrade to a
//     protocol in `upgrades` (websocket) runs the pipeline like any request; the backend's 101
//     is relayed, then bytes both ways (flow/http1_upgrade.hpp). Other upgrades: 501.
//   - refusals as an HTTP status (codec/http1/reject.hpp) with ctx.response_fields (a rate
//     limiter's X-RateLimit-*); a failed connect is a 502 (504 on a connect timeout).
//   - `replied`: ctx.reply, a whole response from a stage, goes to the client.
//   - the backend's first bytes and the exchange (the request body up through on_message, the
//     response through on_response and on_response_body down): flow/http1_exchange.hpp.
// The flow type and the protocol of the pipelines: flow/http_flow.hpp; the byte helpers both
// sides use: flow/http1_io.hpp.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/reject.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/codec/http1/status.hpp>
#include <rproxy/core/error.hpp>
#include <rproxy/core/json.hpp>
#include <rproxy/flow/drain.hpp>
#include <rproxy/flow/http1_io.hpp>
#include <rproxy/flow/http_flow.hpp>
#include <rproxy/flow/options.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/flow/upstream.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/upstream_stream.hpp>
#include <rproxy/pipeline/context.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::flow {

/// The HTTP/1.1 adapter. Its members are read by every flow; keep it alive as long as they run.
struct http1_adapter {
  static constexpr bool reads_hello = true;
  /// Backend connections: plain TCP, or TLS when the flow's ctx.upstream says so.
  using backend_stream = net::upstream_stream;

  codec::http1::limits request_limits{};   ///< the client's heads and bodies
  codec::http1::limits response_limits{.max_header_bytes = 64 * 1024,
                                        .max_body_size = std::numeric_limits<std::uint64_t>::max()};
  std::size_t buffer_size = 16 * 1024;     ///< body bytes read at once, per side
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);  ///< a body or response without progress
  /// While set and draining, a connection waiting for its next request is closed.
  const drain_tracker* drain = nullptr;
  /// Peers whose X-Forwarded-For, Forwarded, X-Real-IP and X-Forwarded-Host/Proto are extended;
  /// anyone else's are replaced (codec/http1/forwarded.hpp).
  std::vector<middleware::cidr> trusted_proxies{};
  bool allow_underscore_headers = false;  ///< forward request field names with '_' (CGI reads X_User as X-User)
  std::vector<std::string> allow_trailers{};  ///< request trailers forwarded (others are dropped)
  /// The proxy's own refusals and errors (404, 429, 502, 503, 504, ...) as a short JSON body
  /// naming the cause and the route: {"error":"no_backend","route":"users","message":"..."}.
  bool json_errors = false;
  /// Upgrade protocols passed through to the backend (`websocket`): a bodiless HTTP/1.1 request
  /// with `Connection: upgrade` and an Upgrade naming one runs the pipeline as any request; the
  /// backend's 101 is relayed, then bytes both ways (flow/http1_upgrade.hpp). Other upgrades: 501.
  std::vector<std::string> upgrades{};

  /// Whether `upgrades` lists the protocol (case-insensitive): an HTTP/2 extended CONNECT for it is passed on.
  bool passes_upgrade(std::string_view protocol) const noexcept {
    return std::any_of(upgrades.begin(), upgrades.end(), [&](const std::string& u) { return codec::http1::detail::iequals(u, protocol); });
  }

  codec::http1::forward_rules forward_rules() const {
    return {.strip = {}, .allow_underscore = allow_underscore_headers, .allow_trailers = allow_trailers};
  }
  bool trusted_proxy(const asio::ip::address& a) const {
    const auto k = middleware::to_ip_key(a);
    return std::any_of(trusted_proxies.begin(), trusted_proxies.end(), [&](const auto& c) { return c.contains(k); });
  }

  /// The client side of one connection: its buffer and parser, kept across its requests, and
  /// the buffer for its backends' responses.
  class reader {
  public:
    explicit reader(const http1_adapter& a)
        : a_(&a),
          in_(a.request_limits.max_start_line + a.request_limits.max_header_bytes + 4 + a.buffer_size),
          bin_(a.response_limits.max_start_line + a.response_limits.max_header_bytes + 4 + a.buffer_size),
          parser_(a.request_limits),
          bparser_(a.response_limits) {}
    reader(const reader&) = delete;  // hello() points into it
    reader& operator=(const reader&) = delete;

    std::span<std::byte> prepare(std::size_t n) {
      auto room = in_.prepare(n);
      return {reinterpret_cast<std::byte*>(room.data()), room.size()};
    }
    void commit(std::size_t n) { in_.commit(n); }
    void feed(std::string_view early) { in_.append(early); }

    /// Between requests, with a drain tracker: look every 250 ms whether the app is stopping.
    std::optional<std::chrono::milliseconds> settle_time() const {
      if (a_->drain != nullptr && in_.view().empty()) return std::chrono::milliseconds(250);
      return std::nullopt;
    }

    template <class Ctx>
    hello_step next(Ctx& ctx, bool paused) {
      namespace http1 = codec::http1;
      if (paused && in_.view().empty() && a_->drain != nullptr && a_->drain->draining())
        return hello_step::fail(make_error_code(net::error::flow_aborted));
      head_taken_ = false;
      replay_ = false;
      auto r = parser_.parse(in_.view());
      switch (r.what) {
        case http1::event::head: {
          head_bytes_ = r.consumed;
          const auto& h = parser_.head();
          upgrade_.clear();
          if (h.method == "CONNECT" || (parser_.info().upgrade && !a_->offered_upgrades(h, parser_.info(), upgrade_))) {
            unsupported_ = true;
            return hello_step::fail(make_error_code(http1::error::unsupported_transfer_encoding));
          }
          view_.emplace(h);
          if constexpr (requires { ctx.head_request; }) ctx.head_request = h.method == "HEAD";
          return hello_step::ready();
        }
        case http1::event::need_more:
          in_.consume(r.consumed);
          if (in_.full()) return hello_step::fail(make_error_code(http1::error::header_too_large));
          return hello_step::need_more();
        case http1::event::error: return hello_step::fail(parser_.error_code());
        default: return hello_step::fail(make_error_code(net::error::flow_aborted));
      }
    }

    /// The request head for on_hello (valid once next() said ready, until its body is read).
    const codec::http1::request_view& hello() const { return *view_; }
    const codec::http1::request_parser& parser() const noexcept { return parser_; }
    /// Bytes of a head that is not whole yet (none: the connection is between requests).
    bool started() const noexcept { return !in_.view().empty() || parser_.last_error() != codec::http1::error{}; }
    bool unsupported() const noexcept { return unsupported_; }

  private:
    friend struct http1_adapter;
    /// The head is forwarded: its bytes may go (its views are not used past this point).
    void take_head() {
      if (head_taken_) return;
      head_taken_ = true;
      view_.reset();
      in_.consume(head_bytes_);
    }

    const http1_adapter* a_;
    codec::http1::fields connection_;  ///< the current request's Connection lines (for its trailers)
    http1_detail::recv_buffer in_, bin_;
    codec::http1::request_parser parser_;
    // Kept across the connection's requests so that their storage is reused (no allocation
    // per request once they have grown): the backends' response parser, the head the client
    // gets and its bytes, the head the backend gets.
    codec::http1::response_parser bparser_;
    codec::http1::response_head down_;
    std::string down_bytes_;
    codec::http1::request_head up_;
    std::optional<codec::http1::request_view> view_;
    std::size_t head_bytes_ = 0;
    bool head_taken_ = false;
    bool unsupported_ = false;
    std::string upgrade_;  ///< the current request's Upgrade protocols passed on (none: not an upgrade)
    // The request as the first exchange saw it, for a retry on another backend (replay_: the
    // next exchange sends the same head again; its views are gone, its body was empty).
    bool replay_ = false;
    bool idempotent_ = false;
    codec::http1::message_info info_{};
  };

  reader make_reader() const { return reader(*this); }

  /// Before a refusal or a stage's answer ends a request early: may the connection carry the
  /// next request? Yes when the client keeps it (HTTP/1.1, no Connection: close), the app is
  /// not draining, and the request's body is absent or already whole in the buffer (it is then
  /// skipped, so the next request starts where it should). A body still on its way would have
  /// to be read first: the connection ends instead. Says so in ctx.keep_alive.
  template <class Ctx>
  bool keep_after_stop(Ctx& ctx, reader& r) const {
    namespace http1 = codec::http1;
    if constexpr (!requires { ctx.keep_alive; }) {
      return false;
    } else {
      ctx.keep_alive = false;
      if (!r.view_ || r.head_taken_) return false;  // no whole head to answer, or already forwarded
      const auto info = r.parser_.info();
      if (!info.keep_alive || info.version != http1::http_version::http11 || (drain != nullptr && drain->draining())) return false;
      r.take_head();
      for (;;) {
        auto pr = r.parser_.parse(r.in_.view());
        if (pr.what == http1::event::body) {
          r.in_.consume(pr.consumed);
          continue;
        }
        if (pr.what != http1::event::message_complete) return false;  // more to come, or a bad body: close
        r.in_.consume(pr.consumed);
        return ctx.keep_alive = true;
      }
    }
  }

  /// A refusal as an HTTP status; the connection ends after it unless keep_after_stop() said
  /// it may carry on. A failed connect is a 502 (504 when it timed out).
  template <class Ctx>
  std::string render(Ctx& ctx, const reject_reason& why) const {
    namespace http1 = codec::http1;
    codec::http1::fields extra;
    if constexpr (requires { ctx.response_fields; }) ctx.response_fields.apply(extra);
    const http1::error_response_options opt{.keep_alive = keeps(ctx), .head_request = head_request(ctx),
                                            .retry_after_s = why.retry_after_s};
    if (why.code == reject_code::unavailable && ctx.connect_error && why.cause.empty())  // the last attempt's failure
      return error_response(ctx, ctx.connect_error == net::error::connect_timeout ? 504 : 502, ctx.connect_error);
    sent(ctx, http1::status_for(why.code));
    if (!json_errors) return http1::make_reject_response(why, extra, opt);
    extra.set("Content-Type", "application/json");
    const std::string_view cause = !why.cause.empty()                      ? why.cause
                                   : why.code == reject_code::unavailable ? std::string_view("no_backend")
                                   : why.code == reject_code::too_large   ? std::string_view("body_too_large")
                                                                          : to_string(why.code);
    return http1::make_error_response(http1::status_for(why.code), json_error(ctx, cause, why.message), extra, opt);
  }

  /// The proxy's own error response (502, 504, ...), with the stages' response fields; the
  /// connection ends after it. `why`: the backend's failure (none: ctx.connect_error), named in
  /// the JSON body (upstream_cause).
  template <class Ctx>
  std::string error_response(Ctx& ctx, unsigned status, std::error_code why = {}) const {
    codec::http1::fields extra;
    if constexpr (requires { ctx.response_fields; }) ctx.response_fields.apply(extra);
    sent(ctx, status);
    const codec::http1::error_response_options opt{.keep_alive = keeps(ctx), .head_request = head_request(ctx)};
    if (!json_errors) return codec::http1::make_error_response(status, {}, extra, opt);
    extra.set("Content-Type", "application/json");
    std::string_view cause = "bad_request";
    if (status == 502 || status == 504) cause = upstream_cause(why ? why : ctx.connect_error, status);
    else if (status == 413) cause = "body_too_large";
    else if (status >= 500) cause = "internal";
    return codec::http1::make_error_response(status, json_error(ctx, cause, {}), extra, opt);
  }

  /// The name of a backend failure in a 502/504 body: connect_refused, connect_timeout,
  /// backend_unreachable (another connect failure), backend_reset (closed or reset before its
  /// response), backend_timeout (no progress in time), tls_verify (the backend's certificate
  /// was refused), tls_handshake (its TLS handshake failed), backend_failed (anything else).
  static std::string_view upstream_cause(const std::error_code& ec, unsigned status) noexcept {
    using net::error;
    if (ec == error::connect_refused) return "connect_refused";
    if (ec == error::connect_timeout) return "connect_timeout";
    if (ec == error::tls_verify_failed) return "tls_verify";
    if (ec == error::tls_handshake_failed) return "tls_handshake";
    if (ec == condition::retry_safe) return "backend_unreachable";
    if (ec == error::backend_reset) return "backend_reset";
    if (ec == error::idle_timeout || status == 504) return "backend_timeout";
    return "backend_failed";
  }

  /// {"error":cause,"route":ctx.route,"message":text} (route and message when known).
  template <class Ctx>
  static std::string json_error(const Ctx& ctx, std::string_view cause, std::string_view message) {
    std::string out = "{\"error\":";
    json::append_string(out, cause);
    if (!ctx.route.empty()) {
      out += ",\"route\":";
      json::append_string(out, ctx.route);
    }
    if (!message.empty()) {
      out += ",\"message\":";
      json::append_string(out, message);
    }
    out += "}";
    return out;
  }

  /// Records the status the client is sent (flows that keep one).
  template <class Ctx>
  static void sent(Ctx& ctx, unsigned status) noexcept {
    if constexpr (requires { ctx.status = status; }) ctx.status = status;
  }

  /// The head could not be read: 408 for a slow one, its status for a bad one; nothing when
  /// the connection ended between requests.
  template <class Client, class Ctx>
  asio::awaitable<void> hello_failed(Client& client, Ctx& ctx, reader& r, std::error_code ec) const {
    namespace http1 = codec::http1;
    if (!r.started() && !r.unsupported()) co_return;
    unsigned status = 400;
    std::string_view text;
    if (r.unsupported()) status = 501, text = "upgrades and CONNECT are not supported";
    else if (ec == net::error::idle_timeout) status = 408;
    else if (r.parser().last_error() != http1::error{}) status = http1::status_for(r.parser().last_error());
    else if (ec == http1::error::header_too_large) status = 431;
    sent(ctx, status);
    co_await http1_detail::answer_and_close(client, http1::make_error_response(status, text), idle_timeout);
  }

  /// How long one step of an exchange may wait: the request's idle timeout (a route's, else
  /// the adapter's), cut at the request's deadline. The HTTP/2 flow uses it too.
  template <class Ctx>
  std::chrono::milliseconds step_timeout(const Ctx& ctx) const {
    std::chrono::milliseconds idle = idle_timeout;
    if constexpr (requires { ctx.idle_timeout; ctx.deadline; }) {
      if (ctx.idle_timeout.count() > 0) idle = ctx.idle_timeout;
      if (ctx.deadline != std::chrono::steady_clock::time_point{}) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(ctx.deadline - std::chrono::steady_clock::now());
        idle = std::max(std::chrono::milliseconds(1), std::min(idle, left));
      }
    }
    return idle;
  }

  /// After `replied`: the stage's response, as it is. The connection carries on when
  /// keep_after_stop() allowed it and the answer has a Content-Length and no Connection: close;
  /// otherwise it gets Connection: close (if it lacks one) and the connection ends.
  template <class Client, class Ctx>
  asio::awaitable<std::error_code> answer(Client& client, Ctx& ctx, reader&, const options&) const {
    if constexpr (requires { ctx.reply; }) {  // "HTTP/1.1 204 ...": its status, for the log
      std::string_view line(ctx.reply);
      unsigned status = 0;
      if (line.size() >= 12 && line.substr(0, 5) == "HTTP/" && line[8] == ' ')
        for (char c : line.substr(9, 3)) status = status * 10 + static_cast<unsigned>(c >= '0' && c <= '9' ? c - '0' : 0);
      sent(ctx, status);
      const auto end = line.find("\r\n\r\n");
      const auto head = line.substr(0, end == std::string_view::npos ? 0 : end + 2);
      auto has_line = [&](std::string_view prefix) {  // a field line starting with `prefix`, any case
        for (std::size_t i = head.find("\r\n"); i != std::string_view::npos; i = head.find("\r\n", i + 2))
          if (codec::http1::detail::iequals(head.substr(i + 2, prefix.size()), prefix)) return true;
        return false;
      };
      const bool says_close = has_line("connection: close");
      bool keep = keeps(ctx) && end != std::string_view::npos && has_line("content-length:") && !says_close;
      if constexpr (requires { ctx.keep_alive; }) ctx.keep_alive = keep;
      if (!keep && !says_close && end != std::string_view::npos) ctx.reply.insert(end + 2, "Connection: close\r\n");
    }
    co_return co_await detail::send(client, ctx.reply);
  }

  /// Whether the request is retried on a fresh connection when a kept one turns out stale
  /// (bodiless and idempotent: nothing is lost). Such a request may take a kept connection
  /// without probing it first (detail::kept_backend).
  bool retry_safe(const reader& r) const {
    const auto info = r.parser().info();
    return !info.chunked && info.content_length == 0 && http1_detail::idempotent(r.parser().head().method);
  }

  /// The request head the backend gets (and the request's Connection lines, kept for its trailers).
  /// Defined, as the rest of the upstream side, in flow/http1_exchange.hpp.
  template <class Ctx>
  std::string first_bytes(const Ctx& ctx, reader& r) const;

  /// The upstream request head: the client's fields as codec/http1/forward.hpp's rules allow
  /// (no hop-by-hop, Connection-listed, forwarding or '_' names) minus those a stage owns
  /// (ctx.request_fields), plus the stages' fields, the forwarding fields (the client's extended
  /// only for a trusted proxy), Host if missing and the body's framing; for an upgrade
  /// (`upgrade`: the protocols passed on), Connection: upgrade and Upgrade. The one place where
  /// forwarding rules apply to a request head.
  template <class Ctx>
  std::string upstream_head(const Ctx& ctx, const codec::http1::request_head_view& head,
                            const codec::http1::message_info& info, std::string_view upgrade = {}) const;
  /// The same, built in `up` (a head kept across requests: its storage is reused).
  template <class Ctx>
  void build_upstream_head(codec::http1::request_head& up, const Ctx& ctx, const codec::http1::request_head_view& head,
                           const codec::http1::message_info& info, std::string_view upgrade = {}) const;

  /// A connection to the flow's backend: TLS when ctx.upstream says so (flow/upstream.hpp).
  template <class Ctx>
  static asio::awaitable<std::pair<std::error_code, backend_stream>> connect_backend(Ctx& ctx, const asio::any_io_executor& ex,
                                                                                    const options& o) {
    const upstream_settings* via = nullptr;
    if constexpr (requires { ctx.upstream; }) via = ctx.upstream;
    co_return co_await connect_upstream(ex, connect_target(o, *ctx.backend), via, o.connect_timeout);
  }

  /// One request's exchange: the head (`first`) and the body up, the response down.
  template <class Pipeline, class Client>
  asio::awaitable<exchange_result> exchange(Pipeline& p, typename Pipeline::context_type& ctx,
                                            Client& client, backend_stream& backend,
                                            const std::string& first, const options&, reader& r, bool reused) const;

  /// The protocols of an upgrade request's Upgrade field(s) that `upgrades` lists, into `out`
  /// (comma-separated, as sent; a token's "/version" kept). False: none, not an upgrade
  /// (HTTP/1.1 with Connection: upgrade), a CONNECT, or a request with a body (an upgrade is
  /// passed on only for a bodiless request).
  bool offered_upgrades(const codec::http1::request_head_view& h, const codec::http1::message_info& info,
                        std::string& out) const;

  /// After an upgrade request's 101 head (`head_size` bytes of the backend buffer): checks it
  /// names a protocol offered, runs on_response, relays the head to the client, then bytes both
  /// ways until either side closes (net/relay.hpp, the request's idle timeout). Never keeps a
  /// connection. Defined in flow/http1_upgrade.hpp.
  template <class Pipeline, class Client>
  asio::awaitable<exchange_result> switch_protocols(Pipeline& p, typename Pipeline::context_type& ctx, Client& client,
                                                    backend_stream& backend, reader& r,
                                                    const codec::http1::response_parser& bp, std::size_t head_size) const;

private:
  /// Whether a stage transforms this flow's response body.
  template <class Pipeline, class Ctx>
  static bool body_filtered(const Ctx& ctx);
  /// A transformed body's end: the transforms' last bytes (a gzip trailer), as one more piece.
  template <class Pipeline, class Client>
  static asio::awaitable<std::error_code> end_filtered_body(Pipeline& p, typename Pipeline::context_type& ctx,
                                                            Client& client, bool chunked,
                                                            std::chrono::milliseconds wait);

  template <class Ctx>
  static bool keeps(const Ctx& ctx) {
    if constexpr (requires { ctx.keep_alive; }) return ctx.keep_alive;
    else return false;
  }
  template <class Ctx>
  static bool head_request(const Ctx& ctx) {
    if constexpr (requires { ctx.head_request; }) return ctx.head_request;
    else return false;
  }
};

}  // namespace rproxy::flow

#include <rproxy/flow/http1_exchange.hpp>
#include <rproxy/flow/http1_upgrade.hpp>
