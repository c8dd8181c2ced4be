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
//   - the backend's first bytes: the upstream request head, built by upstream_head() (the one
//     place where forwarding rules live: hop-by-hop fields, X-Forwarded-For, the stages'
//     ctx.request_fields, framing).
//   - the exchange: the request body goes up with on_message per body chunk, re-framed
//     (Content-Length or chunked); the response head runs on_response (1xx interim responses
//     are dropped; HEAD, 204 and 304 have no body); the response body comes down, streamed
//     with backpressure, chunked for an HTTP/1.1 client when the backend's framing is unknown
//     or a stage transforms the body (ctx.response_body_filtered: each piece goes through the
//     pipeline's on_response_body hooks; a pipeline without such a hook keeps the plain relay).
//     Every wait is bounded by idle_timeout (no progress), through net::with_deadline. A backend that fails before the
//     response head gives a 502; one that dies mid-body closes the client connection (the
//     client sees a truncated message, never a wrong one). Both connections are kept alive when
//     both sides allow it; a stale kept backend connection is retried once, fresh, when nothing
//     of the request was lost.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>
#include <asio/experimental/deferred.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include <rproxy/flow/drain.hpp>
#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/forwarded.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/reject.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/codec/http1/status.hpp>
#include <rproxy/core/json.hpp>
#include <rproxy/health/retry_on.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/pipeline/context.hpp>

namespace rproxy::flow {

/// Fields a stage leaves for a message, checked when they are used (an invalid name or value
/// is left out, never sent): set() replaces a field of the same name (case-insensitive);
/// add() adds one, keeping those there; remove() drops every field of a name; add_token()
/// lists a token in a comma-separated field (Vary: Origin) unless it is there. They apply in
/// the order they were left (a route's edits: remove, then set, then add).
class pending_fields {
public:
  void set(std::string_view name, std::string_view value) {
    for (auto& e : list_)
      if (e.what == op::set && codec::http1::detail::iequals(e.f.name, name)) {
        e.f.value = std::string(value);
        return;
      }
    list_.push_back({{std::string(name), std::string(value)}, op::set});
  }
  void add(std::string_view name, std::string_view value) { list_.push_back({{std::string(name), std::string(value)}, op::add}); }
  void remove(std::string_view name) { list_.push_back({{std::string(name), {}}, op::remove}); }
  void add_token(std::string_view name, std::string_view token) {
    list_.push_back({{std::string(name), std::string(token)}, op::token});
  }
  /// Whether a stage sets or removes `name` (the client's own field of that name is then dropped).
  bool contains(std::string_view name) const noexcept {
    for (const auto& e : list_)
      if ((e.what == op::set || e.what == op::remove) && codec::http1::detail::iequals(e.f.name, name)) return true;
    return false;
  }
  /// Applies each valid entry to `out` (a set or add without a value does nothing).
  void apply(codec::http1::fields& out) const {
    for (const auto& [f, what] : list_) {
      if (!codec::http1::is_valid_field_name(f.name)) continue;
      if (what == op::remove) {
        out.erase(f.name);
        continue;
      }
      if (f.value.empty() || !codec::http1::is_valid_field_value(f.value)) continue;
      switch (what) {
        case op::set: out.set(f.name, f.value); break;
        case op::add: out.add(f.name, f.value); break;
        default:
          if (!out.has_token(f.name, f.value)) out.add(f.name, f.value);
      }
    }
  }
  void clear() noexcept { list_.clear(); }

private:
  enum class op : std::uint8_t { set, add, remove, token };
  struct entry {
    codec::http1::field f;
    op what = op::set;
  };
  std::vector<entry> list_;
};

/// One HTTP request's flow: what the stages read and leave for the adapter.
struct http_flow : flow_info {
  /// Set on the upstream request; a client's field of the same name is dropped first (so a
  /// client cannot forge a field a stage owns). An empty value only drops the client's field.
  pending_fields request_fields{};
  /// Set on the response to the client, forwarded or rendered (X-RateLimit-*, Retry-After).
  pending_fields response_fields{};
  /// `replied`: the whole response a stage answers with.
  std::string reply{};
  bool head_request = false;  ///< the request is a HEAD: a rendered response has no body
  /// Set by the adapter when a refusal or a stage's answer ends the request early and the
  /// connection carries on (the request had no body, or all of it was already read).
  bool keep_alive = false;
  /// The status the client was sent for this request, forwarded, rendered or a stage's answer
  /// (0: none, e.g. the client left first). For the access log and metrics.
  unsigned status = 0;
  std::string request_id{};  ///< set by a request-id stage (middleware/request_id.hpp)
  /// Set by a stage's on_response when its on_response_body will change the body (compression):
  /// the body's length is then unknown (chunked to an HTTP/1.1 client, no Content-Length).
  bool response_body_filtered = false;
  /// The request target the backend gets (a router's rewrite; the query is the stage's to
  /// keep). Empty: the client's target, as sent.
  std::string upstream_target{};
  /// Per-request bounds a stage sets (a route's timeout and idle_timeout), applied to the
  /// exchange with the backend: no progress for `idle_timeout` (0: the adapter's), and the whole
  /// exchange by `deadline` (none: unbounded). Out of time before the response head: a 504.
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::steady_clock::time_point deadline{};
  /// Failures of the exchange that go back to the driver to be retried on another pick instead
  /// of answered (health::retry_on bits: reset, status_502, status_503; set for each attempt by
  /// a retry stage, health/retry_stage.hpp; 0: none). Only before anything reached the client,
  /// and only for an idempotent request without a body: a POST whose body was sent never is.
  std::uint8_t retry_on = 0;
};

/// The protocol the pipelines of an HTTP/1.1 app see.
struct http1_protocol {
  using flow = http_flow;
  using hello = codec::http1::request_view;
  using message = std::string_view;  ///< a piece of the request body (framing removed)
  using response = codec::http1::response_head_view;
};

namespace http1_detail {

namespace http1 = codec::http1;

/// A fixed-size receive buffer: [begin, end) is unconsumed. The parser's views point into it,
/// so it is only compacted right before a read, when no view is in use. Its storage is not
/// cleared (only bytes read into it are ever looked at): it is sized for the largest head
/// (some 80 KiB): clearing it per HTTP/2 stream took a fifth of the gateway's CPU under h2load.
/// Storage comes from, and goes back to, a small per-thread cache (storage_cache): an HTTP/2
/// stream or a new connection takes a buffer another one left, instead of a fresh allocation
/// of that size (and the page faults of a heap that grows and shrinks by it).
class recv_buffer {
public:
  explicit recv_buffer(std::size_t capacity) : data_(storage_cache::take(capacity)), size_(capacity) {}
  recv_buffer(const recv_buffer&) = delete;
  recv_buffer& operator=(const recv_buffer&) = delete;
  ~recv_buffer() { storage_cache::give(std::move(data_), size_); }
  std::string_view view() const noexcept { return {data_.get() + b_, e_ - b_}; }
  bool full() const noexcept { return b_ == 0 && e_ == size_; }
  void consume(std::size_t n) noexcept {
    b_ += n;
    if (b_ == e_) b_ = e_ = 0;
  }
  /// Room for at most n more bytes (compacts first).
  std::span<char> prepare(std::size_t n) noexcept {
    if (b_ > 0) {
      std::memmove(data_.get(), data_.get() + b_, e_ - b_);
      e_ -= b_;
      b_ = 0;
    }
    return {data_.get() + e_, std::min(n, size_ - e_)};
  }
  void commit(std::size_t n) noexcept { e_ += n; }
  void append(std::string_view s) noexcept {
    auto room = prepare(s.size());
    std::memcpy(room.data(), s.data(), room.size());
    commit(room.size());
  }

  /// Buffers released on this thread, kept for the next buffer of the same size (at most
  /// `slots` of them: a worker keeps at most that many idle buffers, some 1.5 MiB).
  class storage_cache {
  public:
    static constexpr std::size_t slots = 16;
    static std::unique_ptr<char[]> take(std::size_t n) {
      auto& c = local();
      for (std::size_t i = c.count_; i-- > 0;)
        if (c.size_[i] == n) {
          auto out = std::move(c.data_[i]);
          --c.count_;
          c.data_[i] = std::move(c.data_[c.count_]);
          c.size_[i] = c.size_[c.count_];
          return out;
        }
      return std::unique_ptr<char[]>(new char[n]);  // (left uninitialised)
    }
    static void give(std::unique_ptr<char[]> p, std::size_t n) noexcept {
      if (!p) return;
      auto& c = local();
      if (c.count_ == slots) return;  // (p is freed)
      c.data_[c.count_] = std::move(p);
      c.size_[c.count_] = n;
      ++c.count_;
    }

  private:
    static storage_cache& local() noexcept {
      thread_local storage_cache c;
      return c;
    }
    std::array<std::unique_ptr<char[]>, slots> data_{};
    std::array<std::size_t, slots> size_{};
    std::size_t count_ = 0;
  };

private:
  std::unique_ptr<char[]> data_;
  std::size_t size_;
  std::size_t b_ = 0, e_ = 0;
};

/// Response fields not passed on: hop-by-hop and framing ones (RFC 9110 §7.6.1) and those the
/// sender's Connection names. (Request fields follow http1::forward_rules: upstream_head.)
inline bool hop_by_hop(std::string_view name, const http1::fields_view& all) {
  return http1::is_hop_by_hop_field(name) || all.has_token("connection", name);
}

/// Reads some bytes into `b` within `d` (net/deadline.hpp: the timer never outlives the call).
/// Timeout: net::error::idle_timeout.
template <class Stream>
asio::awaitable<std::pair<std::error_code, std::size_t>> read_for(Stream& s, std::span<char> b,
                                                                     std::chrono::milliseconds d) {
  auto [ec, n] = co_await net::with_deadline(s.async_read_some(asio::buffer(b.data(), b.size()), asio::experimental::deferred), d);
  co_return std::pair{ec, n};
}
/// Writes all of `b` within `d`.
template <class Stream, class Buffers>
asio::awaitable<std::error_code> write_for(Stream& s, const Buffers& b, std::chrono::milliseconds d) {
  auto [ec, n] = co_await net::with_deadline(asio::async_write(s, b, asio::experimental::deferred), d);
  (void)n;
  co_return ec;
}
template <class Stream>
asio::awaitable<std::error_code> write_for(Stream& s, std::string_view text, std::chrono::milliseconds d) {
  co_return co_await write_for(s, asio::buffer(text.data(), text.size()), d);
}
/// A piece of a body: one chunk when the peer gets chunked framing, else as it is.
template <class Stream>
asio::awaitable<std::error_code> write_body(Stream& s, std::string_view data, bool chunked,
                                                   std::chrono::milliseconds d) {
  if (!chunked) co_return co_await write_for(s, data, d);
  if (data.empty()) co_return std::error_code{};
  const http1::chunk_header ch(data.size());
  const std::array<asio::const_buffer, 3> chunk{asio::buffer(ch.view().data(), ch.view().size()),
                                                asio::buffer(data.data(), data.size()), asio::buffer(http1::crlf.data(), 2)};
  co_return co_await write_for(s, chunk, d);
}

/// Sends a final answer and ends the sending side, then reads (and drops) what the client
/// still sends for a moment, so the answer is not lost to a reset.
template <class Stream>
asio::awaitable<void> answer_and_close(Stream& s, std::string_view response, std::chrono::milliseconds d) {
  if (co_await write_for(s, response, d)) co_return;
  std::error_code ignored;
  detail::tcp_of(s).shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  std::array<char, 4096> sink;
  for (std::size_t total = 0; total < (1u << 20);) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    auto [ec, n] = co_await read_for(s, sink, left);
    if (ec) break;
    total += n;
  }
}

inline bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE";
}

}  // namespace http1_detail

/// The HTTP/1.1 adapter. Its members are read by every flow; keep it alive as long as they run.
struct http1_adapter {
  static constexpr bool reads_hello = true;

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
  /// response), backend_timeout (no progress in time), backend_failed (anything else).
  static std::string_view upstream_cause(const std::error_code& ec, unsigned status) noexcept {
    using net::error;
    if (ec == error::connect_refused) return "connect_refused";
    if (ec == error::connect_timeout) return "connect_timeout";
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
  template <class Ctx>
  std::string first_bytes(const Ctx& ctx, reader& r) const {
    r.connection_.clear();
    for (const auto& f : r.parser().head().fields)
      if (codec::http1::detail::iequals(f.name, "connection")) r.connection_.add(f.name, f.value);
    build_upstream_head(r.up_, ctx, r.parser().head(), r.parser().info(), r.upgrade_);
    return codec::http1::serialize(r.up_);
  }

  /// The upstream request head: the client's fields as codec/http1/forward.hpp's rules allow
  /// (no hop-by-hop, Connection-listed, forwarding or '_' names) minus those a stage owns
  /// (ctx.request_fields), plus the stages' fields, the forwarding fields (the client's extended
  /// only for a trusted proxy), Host if missing and the body's framing; for an upgrade
  /// (`upgrade`: the protocols passed on), Connection: upgrade and Upgrade. The one place where
  /// forwarding rules apply to a request head.
  template <class Ctx>
  std::string upstream_head(const Ctx& ctx, const codec::http1::request_head_view& head,
                            const codec::http1::message_info& info, std::string_view upgrade = {}) const {
    codec::http1::request_head up;
    build_upstream_head(up, ctx, head, info, upgrade);
    return codec::http1::serialize(up);
  }
  /// The same, built in `up` (a head kept across requests: its storage is reused).
  template <class Ctx>
  void build_upstream_head(codec::http1::request_head& up, const Ctx& ctx, const codec::http1::request_head_view& head,
                           const codec::http1::message_info& info, std::string_view upgrade = {}) const {
    namespace http1 = codec::http1;
    up.method.assign(head.method);
    up.target.assign(head.target);
    up.version = http1::http_version::http11;
    up.fields.clear();
    if constexpr (requires { ctx.upstream_target; })
      if (!ctx.upstream_target.empty()) up.target = ctx.upstream_target;
    const auto rules = forward_rules();
    for (const auto& f : head.fields) {
      if (http1::request_field_fate(f.name, head.fields, rules) != http1::field_fate::forward) continue;
      if constexpr (requires { ctx.request_fields; })
        if (ctx.request_fields.contains(f.name)) continue;
      up.fields.add(f.name, f.value);
    }
    if constexpr (requires { ctx.request_fields; }) ctx.request_fields.apply(up.fields);
    const std::string peer = ctx.client.address().to_string();
    http1::add_forwarding_fields(up.fields, head.fields,
                                 {.peer = peer, .host = head.fields.find("host").value_or(""), .proto = ctx.tls ? "https" : "http",
                                  .trusted = trusted_proxy(ctx.client.address())});
    if (!head.fields.contains("host") && ctx.backend) up.fields.add("Host", ctx.backend->address().to_string());
    if (info.chunked) http1::set_chunked(up.fields);
    else if (info.content_length > 0) http1::set_content_length(up.fields, info.content_length);
    if (!upgrade.empty()) {
      up.fields.add("Connection", "upgrade");
      up.fields.add("Upgrade", upgrade);
    }
  }

  /// One request's exchange: the head (`first`) and the body up, the response down.
  template <class Pipeline, class Client>
  asio::awaitable<exchange_result> exchange(Pipeline& p, typename Pipeline::context_type& ctx,
                                            Client& client, asio::ip::tcp::socket& backend,
                                            const std::string& first, const options&, reader& r, bool reused) const {
    namespace http1 = codec::http1;
    using net::error;
    const bool replay = std::exchange(r.replay_, false);  // a retry on another pick: the head was taken
    if (!replay) {
      r.info_ = r.parser_.info();
      r.idempotent_ = http1_detail::idempotent(r.parser_.head().method);
    }
    const auto info = r.info_;
    const bool has_body = info.chunked || info.content_length > 0;
    const bool bodiless_method = head_request(ctx);
    const bool idempotent = r.idempotent_;
    r.take_head();
    auto wait = [&] { return step_timeout(ctx); };
    exchange_result out;
    bool body_read = false;  // something of the body was taken from the client

    // A failure the flow's retry policy lets go to another pick (ctx.retry_on): only for an
    // idempotent request without a body, so sending it again loses and repeats nothing.
    auto retry_other = [&](std::uint8_t bit) {
      if constexpr (requires { ctx.retry_on; }) return idempotent && !has_body && (ctx.retry_on & bit) != 0;
      else return false;
    };
    // The backend failed before any response byte reached the client: once more on a fresh
    // connection when the kept one was stale and nothing was lost; on another backend when the
    // retry policy allows it (a reset, not a timeout); else 502 (or `status`).
    auto fail_before_response = [&](std::error_code ec, unsigned status = 502,
                                    bool stale = false) -> asio::awaitable<exchange_result> {
      if (reused && stale && !body_read) {
        r.replay_ = true;  // (the next exchange sends the same head on a fresh connection)
        co_return exchange_result{ec, false, false, true};
      }
      if (status == 502 && ec == condition::upstream && retry_other(health::retry_on::reset)) {
        r.replay_ = true;
        co_return exchange_result{ec, false, false, false, true};
      }
      co_await http1_detail::answer_and_close(client, error_response(ctx, status, ec), idle_timeout);
      co_return exchange_result{ec ? ec : make_error_code(error::backend_failed)};
    };

    // 1. The head, then the body (decoded by the parser, re-framed for the backend).
    if (auto ec = co_await http1_detail::write_for(backend, std::string_view(first), wait()))
      co_return co_await fail_before_response(net::classify(ec, net::side::upstream), 502, ec != error::idle_timeout);
    if (info.expect_continue && has_body)
      if (co_await http1_detail::write_for(client, std::string_view("HTTP/1.1 100 Continue\r\n\r\n"), wait()))
        co_return exchange_result{make_error_code(error::client_failed)};
    for (bool complete = !has_body; !complete;) {
      auto pr = r.parser_.parse(r.in_.view());
      switch (pr.what) {
        case http1::event::body: {
          body_read = true;
          ctx.bytes_from_client += pr.data.size();
          if (auto v = co_await run_phase<phase::message>(p, ctx, std::string_view(pr.data)); !v.is_next()) {
            const auto why = v.is_reject() ? v.reason() : reject_reason{reject_code::internal};
            ctx.rejected = why;
            co_await http1_detail::answer_and_close(client, render(ctx, why), idle_timeout);
            co_return exchange_result{};
          }
          const auto wec = co_await http1_detail::write_body(backend, pr.data, info.chunked, wait());
          r.in_.consume(pr.consumed);
          if (wec) co_return co_await fail_before_response(make_error_code(error::backend_failed));
          break;
        }
        case http1::event::need_more: {
          r.in_.consume(pr.consumed);
          auto [rec, n] = co_await http1_detail::read_for(client, r.in_.prepare(buffer_size), wait());
          if (rec) co_return exchange_result{net::classify(rec, net::side::downstream)};  // the client left mid-body
          r.in_.commit(n);
          break;
        }
        case http1::event::message_complete: {
          r.in_.consume(pr.consumed);
          if (info.chunked) {
            std::string last;  // request trailers: only those the rules allow (none by default)
            http1::append_last_chunk(last, http1::forwarded_trailers(r.connection_, r.parser_.trailers(), forward_rules()));
            if (co_await http1_detail::write_for(backend, std::string_view(last), wait()))
              co_return co_await fail_before_response(make_error_code(error::backend_failed));
          }
          complete = true;
          break;
        }
        case http1::event::error:  // body too large, bad chunk: the backend got half a request
          body_read = true;
          co_return co_await fail_before_response(r.parser_.error_code(), http1::status_for(pr.error));
        default:
          body_read = true;
          co_return co_await fail_before_response({}, 400);
      }
    }
    if (!has_body && !replay) {  // a bodiless request: the parser's message_complete (or upgrade) is still to be taken
      auto pr = r.parser_.parse(r.in_.view());
      if (pr.what == http1::event::message_complete || pr.what == http1::event::upgrade) r.in_.consume(pr.consumed);
      r.parser_.resume();  // after an upgrade request: HTTP again unless the backend switches (a 101 ends parsing)
    }

    // 2. The response head (1xx interim responses are dropped).
    auto& bin = r.bin_;
    auto& bp = r.bparser_;
    bp.reset();
    bp.set_request_method(bodiless_method ? std::string_view("HEAD") : std::string_view("GET"));
    std::size_t head_size = 0;
    for (;;) {
      auto pr = bp.parse(bin.view());
      if (pr.what == http1::event::head) {
        head_size = pr.consumed;
        if (bp.head().status == 101 && !r.upgrade_.empty())  // the switch the client asked for
          co_return co_await switch_protocols(p, ctx, client, backend, r, bp, head_size);
        if (bp.head().status >= 200) break;
        bin.consume(pr.consumed);
        continue;
      }
      if (pr.what == http1::event::message_complete) {  // the end of a 1xx
        bin.consume(pr.consumed);
        continue;
      }
      if (pr.what == http1::event::need_more) {
        bin.consume(pr.consumed);
        auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(buffer_size), wait());
        if (rec || n == 0) {  // a kept connection the backend closed: retried when that is safe
          const bool stale = bin.view().empty() && idempotent && rec && rec != error::idle_timeout;
          bin.consume(bin.view().size());
          co_return co_await fail_before_response(rec ? net::classify(rec, net::side::upstream) : make_error_code(error::backend_reset),
                                                  rec == error::idle_timeout ? 504 : 502, stale);
        }
        bin.commit(n);
        continue;
      }
      bin.consume(bin.view().size());
      co_return co_await fail_before_response(bp.error_code() ? bp.error_code() : make_error_code(error::backend_failed));
    }
    const auto& rh = bp.head();
    if ((rh.status == 502 && retry_other(health::retry_on::status_502)) || (rh.status == 503 && retry_other(health::retry_on::status_503))) {
      bin.consume(bin.view().size());  // dropped: the request goes to another pick (the backend's failure)
      r.replay_ = true;
      co_return exchange_result{make_error_code(error::backend_failed), false, false, false, true};
    }
    const auto binfo = bp.info();
    const bool bodiless = rh.status == 204 || rh.status == 304 || bodiless_method;
    const bool v11 = info.version == http1::http_version::http11;
    // on_response before the head is built: its stages' response_fields apply to it, and a stage
    // that transforms the body (ctx.response_body_filtered) changes its framing.
    if (auto v = co_await run_phase<phase::response>(p, ctx, rh); !v.is_next()) {
      if (v.is_reject()) ctx.rejected = v.reason();
      bin.consume(bin.view().size());
      co_await http1_detail::answer_and_close(client, error_response(ctx, 502), idle_timeout);
      co_return exchange_result{};
    }
    const bool filtered = !bodiless && body_filtered<Pipeline>(ctx);
    bool keep = info.keep_alive && !(drain != nullptr && drain->draining());
    auto& down = r.down_;
    down.status = rh.status;
    down.reason.assign(rh.reason);
    down.version = http1::http_version::http11;
    down.fields.clear();
    for (const auto& f : rh.fields) {
      using http1::detail::iequals;
      const bool framing = iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding");
      if (framing ? !bodiless : http1_detail::hop_by_hop(f.name, rh.fields)) continue;
      down.fields.add(f.name, f.value);
    }
    bool client_chunked = false;
    if (!bodiless) {
      if (binfo.has_content_length && !binfo.chunked && !filtered) http1::set_content_length(down.fields, binfo.content_length);
      else if (v11) client_chunked = true, http1::set_chunked(down.fields);
      else keep = false;  // an HTTP/1.0 client: the close ends the body
    }
    if constexpr (requires { ctx.response_fields; }) ctx.response_fields.apply(down.fields);
    http1::set_keep_alive(down.fields, info.version, keep);
    r.down_bytes_.clear();
    http1::serialize_to(r.down_bytes_, down);
    const std::string& down_head = r.down_bytes_;
    sent(ctx, rh.status);
    bin.consume(head_size);  // the head's views are not used past this point
    // The head goes out with the first piece of the body that is already here (one gathered
    // write), or alone before the gateway waits for the backend (so streams are not held back).
    std::string_view head_out = down_head;
    auto send_head = [&]() -> asio::awaitable<std::error_code> {
      const auto h = std::exchange(head_out, std::string_view());
      ctx.bytes_to_client += h.size();
      co_return h.empty() ? std::error_code{} : co_await http1_detail::write_for(client, h, wait());
    };

    // 3. The response body, streamed: one read, one write.
    for (;;) {
      auto pr = bp.parse(bin.view());
      switch (pr.what) {
        case http1::event::body: {
          std::string_view piece = pr.data;
          if constexpr (Pipeline::filters_response_body)
            if (filtered) {
              auto t = p.response_body(ctx, piece, false);
              if (!t) co_return exchange_result{t.error()};  // the client sees the connection close
              piece = *t;
            }
          std::error_code wec;
          if (head_out.empty()) {
            wec = co_await http1_detail::write_body(client, piece, client_chunked, wait());
          } else if (!piece.empty()) {  // head + body (+ chunk framing) in one write
            const http1::chunk_header ch(piece.size());
            const std::string_view pre = client_chunked ? ch.view() : std::string_view();
            const std::string_view post = client_chunked ? std::string_view(http1::crlf.data(), 2) : std::string_view();
            const std::array<asio::const_buffer, 4> parts{asio::buffer(head_out.data(), head_out.size()), asio::buffer(pre.data(), pre.size()),
                                                          asio::buffer(piece.data(), piece.size()), asio::buffer(post.data(), post.size())};
            ctx.bytes_to_client += head_out.size();
            head_out = {};
            wec = co_await http1_detail::write_for(client, parts, wait());
          }  // (an empty piece with the head pending: the head waits for the next piece, or goes before a read)
          ctx.bytes_to_client += piece.size();
          bin.consume(pr.consumed);
          if (wec) co_return exchange_result{make_error_code(error::client_failed)};
          break;
        }
        case http1::event::need_more: {
          bin.consume(pr.consumed);
          if (co_await send_head()) co_return exchange_result{make_error_code(error::client_failed)};
          auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(buffer_size), wait());
          if (rec == asio::error::eof && bp.finish().what == http1::event::message_complete) {  // until close
            if (filtered)  // (no coroutine call on the plain path)
              if (auto ec = co_await end_filtered_body(p, ctx, client, client_chunked, wait())) co_return exchange_result{ec};
            if (client_chunked && co_await http1_detail::write_for(client, std::string_view("0\r\n\r\n"), wait()))
              co_return exchange_result{make_error_code(error::client_failed)};
            co_return exchange_result{{}, keep && client_chunked, false};
          }
          if (rec) {  // died mid-response: the client sees the connection close
            bin.consume(bin.view().size());
            co_return exchange_result{rec == error::idle_timeout ? make_error_code(error::idle_timeout)
                                                                  : make_error_code(error::backend_reset)};
          }
          bin.commit(n);
          break;
        }
        case http1::event::message_complete: {
          bin.consume(pr.consumed);
          if (filtered) {
            if (co_await send_head()) co_return exchange_result{make_error_code(error::client_failed)};
            if (auto ec = co_await end_filtered_body(p, ctx, client, client_chunked, wait())) co_return exchange_result{ec};
          }
          std::string last;
          if (client_chunked) http1::append_last_chunk(last, bp.trailers());
          if (!head_out.empty() || !last.empty()) {  // a bodiless response, or the end of a chunked one
            const std::array<asio::const_buffer, 2> parts{asio::buffer(head_out.data(), head_out.size()), asio::buffer(last)};
            ctx.bytes_to_client += head_out.size();
            head_out = {};
            if (co_await http1_detail::write_for(client, parts, wait())) co_return exchange_result{make_error_code(error::client_failed)};
          }
          out.keep_client = keep;
          out.keep_backend = bp.keep_alive() && bin.view().empty();
          bin.consume(bin.view().size());
          co_return out;
        }
        default:  // a malformed body: the client gets what came before it (the head), then the close
          bin.consume(bin.view().size());
          (void)co_await send_head();
          co_return exchange_result{bp.error_code() ? bp.error_code() : make_error_code(error::backend_failed)};
      }
    }
  }

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
                                                    asio::ip::tcp::socket& backend, reader& r,
                                                    const codec::http1::response_parser& bp, std::size_t head_size) const;

private:
  /// Whether a stage transforms this flow's response body.
  template <class Pipeline, class Ctx>
  static bool body_filtered(const Ctx& ctx) {
    if constexpr (Pipeline::filters_response_body && requires { ctx.response_body_filtered; }) return ctx.response_body_filtered;
    else return false;
  }
  /// A transformed body's end: the transforms' last bytes (a gzip trailer), as one more piece.
  template <class Pipeline, class Client>
  static asio::awaitable<std::error_code> end_filtered_body(Pipeline& p, typename Pipeline::context_type& ctx,
                                                            Client& client, bool chunked,
                                                            std::chrono::milliseconds wait) {
    if constexpr (Pipeline::filters_response_body) {
      auto t = p.response_body(ctx, {}, true);
      if (!t) co_return t.error();
      ctx.bytes_to_client += t->size();
      if (co_await http1_detail::write_body(client, *t, chunked, wait)) co_return make_error_code(net::error::client_failed);
    }
    co_return std::error_code{};
  }

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

#include <rproxy/flow/http1_upgrade.hpp>
