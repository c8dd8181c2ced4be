// rproxy/flow/h3.hpp: HTTP/3 clients on the HTTP/1.1 request pipeline (flow/http1.hpp), as
// flow/h2.hpp does for HTTP/2.
//
//     using app = rproxy::flow::h3_app<ConnPipeline, Pipeline>;             // a QUIC connection's application
//     net::quic::server_endpoint<factory> ep(socket, opts, factory);       // factory.start() -> app::start_type
//
// One QUIC connection runs the connection pipeline (`conn`: on_accept, on_close) once, when
// its 1-RTT keys are ready; each request stream is a flow of the request pipeline, the very
// pipeline the HTTP/1.1 and HTTP/2 adapters run, typed http1_protocol: on_hello sees the
// request as a codec::http1::request_view (codec/h3/request.hpp maps the pseudo-header
// fields), then on_route, on_connect, on_message per body piece, on_response with the
// backend's response head, on_close once per stream. A stage does not know which protocol the
// client speaks.
//
// The shape is flow/h2.hpp's: a coroutine per stream on the connection's executor (one thread,
// no locks), forwarding to an HTTP/1.1 backend with the HTTP/1.1 adapter's rules
// (upstream_head, error bodies, response limits). Request bodies stream up with QUIC flow
// control as the backpressure: credit goes back (server_session::consume) once the bytes are
// written to the backend. Response bodies stream down: the backend is read again once the
// stream holds less than max_queued unacknowledged bytes. GOAWAY on shutdown(): the requests
// in flight finish, then the connection closes with H3_NO_ERROR.
// 0-RTT (the quic: block's early_data; off by default): a request whose stream carried data
// in 0-RTT before the handshake completed may be a replay (RFC 8470 §1), so only the safe
// methods GET, HEAD and OPTIONS are forwarded from it, with `Early-Data: 1` added (§5.1); any
// other method is answered 425 Too Early (§5.2) without reaching a stage past accept or the
// backend, and the client may send it again after the handshake.
// Bans: when the connection pipeline has middleware::ban_kick, a ban that comes to cover the
// client closes the QUIC connection (CONNECTION_CLOSE, H3_REQUEST_REJECTED, the ban's message).
// Backend connections are kept across a connection's streams (HTTP keep-alive, as flow/h2.hpp
// does): a bodiless idempotent request takes a kept one (a stale one is retried once, fresh).
// Not here (yet): retries to another pick on a backend failure after connect, the PROXY
// protocol (there is none on QUIC).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>

#include <ngtcp2/ngtcp2.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <rproxy/codec/h3/limits.hpp>
#include <rproxy/codec/h3/request.hpp>
#include <rproxy/codec/h3/server_session.hpp>
#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/flow/drain.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/flow/http1_io.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/flow/wakeup.hpp>
#include <rproxy/middleware/ban_kick.hpp>
#include <rproxy/net/connector.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/quic/connection.hpp>
#include <rproxy/net/quic/tls.hpp>
#include <rproxy/observe/metrics.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::flow {

/// The HTTP/3 adapter: HTTP/3's bounds, and the HTTP/1.1 adapter whose forwarding rules, error
/// bodies, response limits, buffer size and timeouts it uses.
struct h3_adapter {
  const http1_adapter* http1 = nullptr;
  codec::h3::limits limits{};
  std::size_t max_queued = 256 * 1024;  ///< response bytes held per stream before the backend is read again
  /// Idle backend connections kept per QUIC connection: as many as its streams may use at once
  /// (the quic: block's max_streams default), so keeping them never holds more than it had open.
  std::size_t max_kept_backends = 100;
};

namespace h3_detail {

namespace h3 = codec::h3;
namespace http1 = codec::http1;

struct stream_state {
  stream_state(const asio::any_io_executor& ex, std::int64_t i) : id(i), wake(ex) {}
  std::int64_t id;
  std::string body;
  bool ended = false, aborted = false, closed = false, done = false, finished = false;
  bool early = false;  ///< some of the request came in 0-RTT (before the handshake completed)
  asio::ip::tcp::socket* backend = nullptr;
  wakeup wake;
};

/// How an exchange with the backend ended, besides its error: whether the connection may carry
/// another request, or was a kept one found stale before anything was lost.
struct exchange_result {
  exchange_result(std::error_code e = {}) : ec(e) {}  // (implicit: an error alone is a result)
  std::error_code ec;
  bool keep_backend = false;
  bool retry_fresh = false;
};

/// RFC 9110 §9.2.1: the methods that may be forwarded from early data (replays do no harm).
inline bool safe_method(std::string_view m) noexcept { return m == "GET" || m == "HEAD" || m == "OPTIONS"; }

}  // namespace h3_detail

/// A QUIC connection's HTTP/3 application (net/quic/connection.hpp's stream_app).
template <class ConnPipeline, class Pipeline>
class h3_app {
public:
  using conn_type = net::quic::connection<h3_app>;
  using ctx_type = typename Pipeline::context_type;
  using cctx_type = decltype(std::declval<ConnPipeline&>().make_context());

  /// What a connection starts with (made by the endpoint's factory, per connection).
  struct start_type {
    std::shared_ptr<const void> keep;  ///< what the pointers below live in (a config world)
    ConnPipeline* conn = nullptr;
    Pipeline* reqs = nullptr;
    const h3_adapter* adapter = nullptr;
    const options* opts = nullptr;
    const net::quic::tls_credentials* creds = nullptr;
    std::uint64_t max_streams = 100;
    drain_tracker::guard guard{};
    observe::counter* requests = nullptr;  ///< request streams (metrics; none: not counted)
    observe::counter* early_forwarded = nullptr;  ///< requests from 0-RTT forwarded with Early-Data: 1
    observe::counter* early_too_early = nullptr;  ///< requests from 0-RTT answered 425
    const net::quic::tls_credentials& credentials() const noexcept { return *creds; }
  };

  explicit h3_app(start_type s)
      : s_(std::move(s)), p_(*s_.reqs), a_(*s_.adapter), h1_(*a_.http1), o_(*s_.opts), session_(a_.limits, s_.max_streams),
        cctx_(s_.conn->make_context()) {}
  h3_app(const h3_app&) = delete;
  h3_app& operator=(const h3_app&) = delete;

  // --- stream_app ----------------------------------------------------------------------------
  int on_ready(conn_type& c) {
    c_ = &c;
    ex_ = c.get_executor();
    std::int64_t ctrl = -1, enc = -1, dec = -1;
    if (ngtcp2_conn_open_uni_stream(c.get(), &ctrl, nullptr) != 0 || ngtcp2_conn_open_uni_stream(c.get(), &enc, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(c.get(), &dec, nullptr) != 0)
      return -1;
    if (!session_.bind(ctrl, enc, dec)) return -1;
    const auto remote = c.path().remote(), local = c.path().local();
    cctx_.id = detail::next_flow_id();
    cctx_.started = std::chrono::steady_clock::now();
    cctx_.client = asio::ip::tcp::endpoint(remote.address(), remote.port());
    cctx_.local = asio::ip::tcp::endpoint(local.address(), local.port());
    cctx_.tls = true;
    middleware::ban_kick::offer_closer(cctx_, &closer_);
    spawn_task([this]() -> asio::awaitable<void> {
      if (auto v = co_await run_phase<phase::accept>(*s_.conn, cctx_); !v.is_next()) {
        if (v.is_reject()) cctx_.rejected = refused_ = v.reason();
        else refused_ = reject_reason{reject_code::forbidden, "refused"};
      }
      accepted_ = true;
      for (auto* st : waiting_) start_stream(*st);
      waiting_.clear();
    });
    return 0;
  }
  int on_stream_data(conn_type& c, std::int64_t id, std::span<const std::uint8_t> data, bool fin) {
    // (client request streams only; at most max_streams at once: QUIC's stream limit)
    if (c.receiving_early_data() && (id & 0x3) == 0 && !find(id)) early_.insert(id);
    dispatch(session_.feed(id, data, fin));
    if (session_.failed() != 0) {
      c.close_application(session_.error_code());
      return 0;
    }
    kick();
    return 0;
  }
  int on_acked(conn_type&, std::int64_t id, std::uint64_t n) {
    if (session_.acked(id, n) != 0) return -1;
    if (auto* st = find(id)) st->wake.notify();  // room in the queue
    return 0;
  }
  int on_stream_close(conn_type& c, std::int64_t id, std::uint64_t code, bool has_code) {
    if (session_.stream_closed(id, code, has_code) != 0) return -1;
    if ((id & 0x3) == 0) ngtcp2_conn_extend_max_streams_bidi(c.get(), 1);  // a client request stream: room for another
    dispatch(session_.poll());
    maybe_close_drained();
    return 0;
  }
  int on_stream_reset(conn_type&, std::int64_t id, std::uint64_t) {
    if (session_.stream_reset(id) != 0) return -1;
    dispatch(session_.poll());
    kick();
    return 0;
  }
  int on_extend_stream(conn_type&, std::int64_t id) {
    session_.unblocked(id);
    return 0;
  }
  int on_extend_streams_bidi(conn_type&, std::uint64_t max) {
    session_.set_max_client_streams(max);
    return 0;
  }
  std::ptrdiff_t writev(std::int64_t& id, bool& fin, std::span<ngtcp2_vec> v) { return session_.writev(id, fin, v); }
  int wrote(std::int64_t id, std::size_t n) { return session_.wrote(id, n); }
  void blocked(std::int64_t id) { session_.blocked(id); }
  void shut_wr(std::int64_t id) { session_.shut_wr(id); }
  void on_closed(conn_type& c) {
    c_ = &c;
    stopping_ = true;
    for (auto& k : kept_) k.drop();
    if (linger_) linger_->notify();
    for (auto& [id, st] : streams_) abort(*st);
    maybe_done();
  }

  /// Graceful shutdown: GOAWAY; the connection closes once its requests are done.
  void shutdown() {
    if (!c_ || stopping_) return;
    session_.shutdown();
    draining_ = true;
    kick();
    maybe_close_drained();
  }

  std::size_t streams() const noexcept { return streams_.size(); }

private:
  using stream_state = h3_detail::stream_state;
  // --- tasks ---------------------------------------------------------------------------------
  template <class Make>
  void spawn_task(Make make) {
    ++tasks_;
    asio::co_spawn(ex_, [this, make]() -> asio::awaitable<void> {
      try {
        co_await make();
      } catch (const std::exception&) {  // a bug in one task must not end the worker
      }
      --tasks_;
      maybe_done();
    }, asio::detached);
  }

  /// Once the transport is gone and no task runs: the connection's on_close, then the QUIC
  /// connection may be destroyed.
  void maybe_done() {
    if (!stopping_ || tasks_ > 0 || done_) return;
    done_ = true;
    if (accepted_) s_.conn->close(cctx_, std::error_code{});
    s_.guard.release();
    c_->app_done();
  }

  /// Draining and no request left: the client closes the connection itself once it has read
  /// what it got (Chromium does on GOAWAY); closing first would lose responses it has not yet
  /// handed to its page. It gets `linger` to do so, then we close (H3_NO_ERROR).
  void maybe_close_drained() {
    if (!draining_ || !streams_.empty() || !c_ || stopping_ || lingering_) return;
    lingering_ = true;
    linger_.emplace(ex_);
    spawn_task([this]() -> asio::awaitable<void> {
      (void)co_await linger_->wait(linger);
      if (!stopping_ && c_) c_->close_application(static_cast<std::uint64_t>(codec::h3::code::no_error));
    });
  }
  static constexpr std::chrono::milliseconds linger{1000};

  /// A ban now covers the client (middleware/ban_kick.hpp, from the worker's sweep): the whole
  /// connection ends at once, H3_REQUEST_REJECTED with the ban's message as the reason, rather
  /// than its next request being refused; its streams end with it (on_closed).
  static bool end_banned(void* self, std::string_view message) {
    auto& a = *static_cast<h3_app*>(self);
    if (!a.c_ || a.stopping_ || a.c_->over()) return false;
    a.c_->close_application(static_cast<std::uint64_t>(codec::h3::code::request_rejected), message);
    return true;
  }

  /// Hands QUIC what the session asks of it, and writes.
  void kick() {
    if (!c_ || c_->over()) return;
    for (const auto& a : session_.take_actions()) {
      switch (a.what) {
        case codec::h3::action_kind::extend: c_->extend(a.stream_id, a.n); break;
        case codec::h3::action_kind::shutdown: (void)ngtcp2_conn_shutdown_stream(c_->get(), a.stream_id, a.n); break;
        case codec::h3::action_kind::shutdown_read: (void)ngtcp2_conn_shutdown_stream_read(c_->get(), a.stream_id, a.n); break;
        case codec::h3::action_kind::shutdown_write: (void)ngtcp2_conn_shutdown_stream_write(c_->get(), a.stream_id, a.n); break;
      }
    }
    c_->schedule_write();
  }

  stream_state* find(std::int64_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  void abort(stream_state& st) {
    st.aborted = true;
    std::error_code ignored;
    if (st.backend) st.backend->cancel(ignored);
    st.wake.notify();
  }

  void release_if_over(stream_state& st) {
    if (!st.closed || !st.done) return;
    const auto id = st.id;
    session_.release(id);
    streams_.erase(id);
  }

  void dispatch(std::span<const codec::h3::event> events) {
    std::vector<stream_state*> starting;
    for (const auto& e : events) {
      switch (e.what) {
        case codec::h3::event_kind::request: {
          if (s_.requests) s_.requests->inc();
          auto st = std::make_unique<stream_state>(ex_, e.stream_id);
          st->early = early_.erase(e.stream_id) > 0;
          starting.push_back(st.get());
          streams_[e.stream_id] = std::move(st);
          break;
        }
        case codec::h3::event_kind::data:
          if (auto* st = find(e.stream_id)) {
            if (st->done) session_.consume(st->id, e.data.size());
            else st->body.append(e.data), st->wake.notify();
          }
          break;
        case codec::h3::event_kind::end_stream:
          if (auto* st = find(e.stream_id)) st->ended = true, st->wake.notify();
          break;
        case codec::h3::event_kind::reset:
          if (auto* st = find(e.stream_id)) abort(*st);
          break;
        case codec::h3::event_kind::closed:
          early_.erase(e.stream_id);
          if (auto* st = find(e.stream_id)) {
            st->closed = true;
            if (!st->finished) abort(*st);
            release_if_over(*st);
          } else {
            session_.release(e.stream_id);
          }
          break;
      }
    }
    for (auto* st : starting) {
      if (accepted_) start_stream(*st);
      else waiting_.push_back(st);
    }
  }

  void start_stream(stream_state& st) {
    spawn_task([this, &st]() { return run_stream(st); });
  }

  // --- one stream: one flow ------------------------------------------------------------------
  asio::awaitable<void> run_stream(stream_state& st) {
    auto ctx = p_.make_context();
    ctx.id = cctx_.id;
    ctx.client = cctx_.client;
    ctx.local = cctx_.local;
    ctx.tls = true;
    ctx.started = std::chrono::steady_clock::now();
    auto ec = co_await detail::guarded([&]() -> asio::awaitable<std::error_code> { co_return co_await serve_stream(st, ctx); });
    st.backend = nullptr;
    p_.close(ctx, ec);
    st.done = true;
    if (!st.body.empty()) session_.consume(st.id, st.body.size()), st.body.clear();
    if (!st.finished) session_.reset(st.id, st.aborted ? codec::h3::code::request_cancelled : codec::h3::code::internal_error);
    kick();
    release_if_over(st);
    maybe_close_drained();
  }

  std::chrono::milliseconds wait_for(const ctx_type& ctx) const { return h1_.step_timeout(ctx); }

  static bool head_request(const ctx_type& ctx) {
    if constexpr (requires { ctx.head_request; }) return ctx.head_request;
    else return false;
  }

  /// Sends a whole HTTP/1.1 response (a refusal, an error, a stage's answer), converted.
  void respond_http1(stream_state& st, ctx_type& ctx, std::string_view bytes) {
    namespace http1 = codec::http1;
    http1::response_parser rp({.max_header_bytes = 64 * 1024, .max_body_size = bytes.size()});
    rp.set_request_method(head_request(ctx) ? std::string_view("HEAD") : std::string_view("GET"));
    std::string body;
    unsigned status = 0;
    http1::fields fields;
    for (std::size_t at = 0;;) {
      const auto r = rp.parse(bytes.substr(at));
      at += r.consumed;
      if (r.what == http1::event::head) {
        status = rp.head().status;
        for (const auto& f : rp.head().fields)
          if (!http1_detail::hop_by_hop(f.name, rp.head().fields)) fields.add(f.name, f.value);
      } else if (r.what == http1::event::body) {
        body.append(r.data);
      } else if (r.what == http1::event::need_more) {
        if (rp.finish().what != http1::event::message_complete) status = 0;
        break;
      } else {
        if (r.what != http1::event::message_complete) status = 0;
        break;
      }
    }
    if (status < 200) status = 500;
    http1_adapter::sent(ctx, status);
    st.finished = true;
    if (session_.submit_response(st.id, status, fields, body.empty()) != 0) return;
    if (!body.empty()) {
      (void)session_.send_data(st.id, body);
      (void)session_.end_stream(st.id);
    }
    ctx.bytes_to_client += body.size();
    kick();
  }

  asio::awaitable<std::error_code> stop(stream_state& st, ctx_type& ctx, const verdict& v, std::error_code ec = {}) {
    if (v.is_reject()) {
      ctx.rejected = v.reason();
      respond_http1(st, ctx, h1_.render(ctx, v.reason()));
    } else {
      if constexpr (requires { ctx.reply; }) respond_http1(st, ctx, ctx.reply);
    }
    co_return ec;
  }

  asio::awaitable<std::error_code> serve_stream(stream_state& st, ctx_type& ctx) {
    const codec::h3::request& req = session_.request(st.id);
    if constexpr (requires { ctx.head_request; }) ctx.head_request = req.method() == "HEAD";
    std::optional<reject_reason> refused = refused_;
    if (auto v = co_await run_phase<phase::accept>(p_, ctx); !v.is_next() && !refused)
      if (v.is_reject()) ctx.rejected = refused = v.reason();
    ctx.hello_done = std::chrono::steady_clock::now();
    if (req.method() == "CONNECT") {
      respond_http1(st, ctx, codec::http1::make_error_response(501, "upgrades and CONNECT are not supported"));
      co_return std::error_code{};
    }
    if (st.early && !h3_detail::safe_method(req.method())) {  // RFC 8470 §5.2: maybe a replay; ask again after the handshake
      if (s_.early_too_early) s_.early_too_early->inc();
      respond_http1(st, ctx, codec::http1::make_error_response(425, "sent in early data (0-RTT): send again after the handshake"));
      co_return std::error_code{};
    }
    if (refused) co_return co_await stop(st, ctx, reject(*refused));
    const codec::h3::request_view view(req);
    if (auto v = co_await run_phase<phase::hello>(p_, ctx, static_cast<const codec::http1::request_view&>(view)); !v.is_next())
      co_return co_await stop(st, ctx, v);

    // on_route and connect (a kept connection for a request that is safe to send again).
    const bool reusable = st.ended && st.body.empty() && http1_detail::idempotent(req.method());
    std::optional<asio::ip::tcp::socket> backend;
    bool reused = false;
    std::error_code ec;
    for (unsigned attempt = 0;; ++attempt) {
      ctx.out_of_attempts = ec && attempt >= std::max(1u, o_.max_connect_attempts);
      auto v = co_await run_phase<phase::route>(p_, ctx);
      if (!v.is_next()) co_return co_await stop(st, ctx, v, ec);
      if (ctx.out_of_attempts || !ctx.backend) {
        (void)co_await stop(st, ctx, reject(reject_code::unavailable));
        co_return ec ? ec : make_error_code(net::error::no_endpoints);
      }
      if (st.aborted) co_return make_error_code(net::error::client_failed);
      if (reusable)
        if (auto k = take_kept(*ctx.backend)) {
          backend = std::move(k);
          reused = true;
          ctx.connect_error = {};
          break;
        }
      auto [cec, sock] = co_await net::async_connect(ex_, connect_target(o_, *ctx.backend), o_.connect_timeout, detail::tuple_awaitable);
      ec = cec;
      ctx.connect_error = ec;
      if (!ec) {
        backend.emplace(std::move(sock));
        break;
      }
      if (ec != condition::retry_safe) {
        (void)co_await stop(st, ctx, reject(reject_code::unavailable));
        co_return ec;
      }
    }
    if constexpr (requires { ctx.upstream_reused; }) ctx.upstream_reused = reused;
    if (auto v = co_await run_phase<phase::connect>(p_, ctx); !v.is_next()) co_return co_await stop(st, ctx, v);
    for (;;) {
      st.backend = &*backend;
      auto r = co_await forward(st, ctx, *backend, req, reused);
      st.backend = nullptr;
      if (r.retry_fresh && reused) {  // the kept connection was stale and nothing was lost
        auto [cec, sock] = co_await net::async_connect(ex_, connect_target(o_, *ctx.backend), o_.connect_timeout, detail::tuple_awaitable);
        if (cec) {
          ctx.connect_error = cec;
          (void)co_await stop(st, ctx, reject(reject_code::unavailable));
          co_return cec;
        }
        backend.emplace(std::move(sock));
        reused = false;
        continue;
      }
      if (r.keep_backend && !r.ec) keep(std::move(*backend), *ctx.backend);
      co_return r.ec;  // (a backend not kept closes here)
    }
  }

  /// The exchange with the backend: the head and body up, the response down.
  asio::awaitable<h3_detail::exchange_result> forward(stream_state& st, ctx_type& ctx, asio::ip::tcp::socket& backend,
                                                     const codec::h3::request& req, bool reused) {
    namespace http1 = codec::http1;
    using net::error;
    if (st.aborted) co_return make_error_code(error::client_failed);
    // Chunked when trailers the rules forward may follow a body of known length (forward.hpp).
    const auto info = http1::h2_request_framing(req.content_length(), st.ended, st.body.empty(), !req.trailers().empty(),
                                                h1_.forward_rules());
    const bool has_body = info.chunked || info.content_length > 0;
    std::string first = net::encode_proxy_header(ctx.proxy_out != proxy_send::none ? ctx.proxy_out : o_.send, ctx.client, ctx.local);
    first += h1_.upstream_head(ctx, req.head(), info);
    if (st.early) {  // RFC 8470 §5.1: the backend must know this request may be replayed
      if (!req.head().fields.contains("early-data")) first.insert(first.size() - 2, "Early-Data: 1\r\n");
      if (s_.early_forwarded) s_.early_forwarded->inc();
    }

    // (`stale`: a kept connection the backend had closed; the request goes again on a new one)
    auto fail_before_response = [&](std::error_code ec, unsigned status = 502, bool stale = false) -> h3_detail::exchange_result {
      if (st.aborted) return make_error_code(error::client_failed);
      if (reused && stale) {
        h3_detail::exchange_result again;
        again.retry_fresh = true;
        return again;
      }
      respond_http1(st, ctx, h1_.error_response(ctx, status, ec));
      return ec ? ec : make_error_code(error::backend_failed);
    };

    // 1. The head, then the body as it comes (credit back once written).
    if (auto ec = co_await http1_detail::write_for(backend, std::string_view(first), wait_for(ctx)))
      co_return fail_before_response(net::classify(ec, net::side::upstream), 502, ec != error::idle_timeout);
    std::string piece;
    while (has_body) {
      if (st.aborted) co_return make_error_code(error::client_failed);
      if (!st.body.empty()) {
        piece.swap(st.body);
        st.body.clear();
        ctx.bytes_from_client += piece.size();
        if (auto v = co_await run_phase<phase::message>(p_, ctx, std::string_view(piece)); !v.is_next()) {
          session_.consume(st.id, piece.size());
          (void)co_await stop(st, ctx, v.is_reject() ? v : reject(reject_code::internal));
          co_return std::error_code{};
        }
        const auto wec = co_await http1_detail::write_body(backend, piece, info.chunked, wait_for(ctx));
        session_.consume(st.id, piece.size());
        kick();
        if (wec) co_return fail_before_response(make_error_code(error::backend_failed));
        continue;
      }
      if (st.ended) break;
      if (!co_await st.wake.wait(wait_for(ctx)) && !st.ended && st.body.empty() && !st.aborted)
        co_return make_error_code(error::idle_timeout);
    }
    if (info.chunked) {
      std::string last;
      http1::append_last_chunk(last, http1::forwarded_trailers(http1::fields{}, req.trailers(), h1_.forward_rules()));
      if (co_await http1_detail::write_for(backend, std::string_view(last), wait_for(ctx)))
        co_return fail_before_response(make_error_code(error::backend_failed));
    }

    // 2. The response head (1xx dropped).
    http1_detail::recv_buffer bin(h1_.response_limits.max_start_line + h1_.response_limits.max_header_bytes + 4 + h1_.buffer_size);
    http1::response_parser bp(h1_.response_limits);
    bp.set_request_method(head_request(ctx) ? std::string_view("HEAD") : std::string_view("GET"));
    std::size_t head_size = 0;
    for (;;) {
      auto pr = bp.parse(bin.view());
      if (pr.what == http1::event::head) {
        head_size = pr.consumed;
        if (bp.head().status >= 200) break;
        bin.consume(pr.consumed);
        continue;
      }
      if (pr.what == http1::event::message_complete) {
        bin.consume(pr.consumed);
        continue;
      }
      if (pr.what == http1::event::need_more) {
        bin.consume(pr.consumed);
        auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(h1_.buffer_size), wait_for(ctx));
        if (rec || n == 0) {
          const bool stale = bin.view().empty() && rec && rec != error::idle_timeout;
          co_return fail_before_response(rec ? net::classify(rec, net::side::upstream) : make_error_code(error::backend_reset),
                                         rec == error::idle_timeout ? 504 : 502, stale);
        }
        bin.commit(n);
        continue;
      }
      co_return fail_before_response(bp.error_code() ? bp.error_code() : make_error_code(error::backend_failed));
    }
    const auto& rh = bp.head();
    const auto binfo = bp.info();
    const bool no_body = rh.status == 204 || rh.status == 304 || head_request(ctx);
    if (auto v = co_await run_phase<phase::response>(p_, ctx, rh); !v.is_next()) {
      if (v.is_reject()) ctx.rejected = v.reason();
      respond_http1(st, ctx, h1_.error_response(ctx, 502));
      co_return std::error_code{};
    }
    const bool filtered = !no_body && body_filtered(ctx);
    http1::fields down;
    for (const auto& f : rh.fields) {
      if (http1::detail::iequals(f.name, "content-length")) {
        if (rh.status != 204 && rh.status != 304 && !binfo.chunked && !filtered) down.add(f.name, f.value);
        continue;
      }
      if (http1_detail::hop_by_hop(f.name, rh.fields)) continue;
      down.add(f.name, f.value);
    }
    if constexpr (requires { ctx.response_fields; }) ctx.response_fields.apply(down);
    if (st.aborted) co_return make_error_code(error::client_failed);
    http1_adapter::sent(ctx, rh.status);
    if (session_.submit_response(st.id, rh.status, down, no_body) != 0) co_return make_error_code(error::client_failed);
    kick();
    bin.consume(head_size);

    // 3. The response body, streamed; the stream's unacknowledged bytes are the backpressure.
    for (;;) {
      auto pr = bp.parse(bin.view());
      switch (pr.what) {
        case http1::event::body: {
          std::string_view piece = pr.data;
          if constexpr (Pipeline::filters_response_body)
            if (filtered) {
              auto t = p_.response_body(ctx, piece, false);
              if (!t) co_return t.error();
              piece = *t;
            }
          if (!piece.empty()) (void)session_.send_data(st.id, piece);
          ctx.bytes_to_client += piece.size();
          bin.consume(pr.consumed);
          kick();
          while (session_.queued(st.id) > a_.max_queued && !st.aborted)
            if (!co_await st.wake.wait(wait_for(ctx)) && session_.queued(st.id) > a_.max_queued) co_return make_error_code(error::idle_timeout);
          if (st.aborted) co_return make_error_code(error::client_failed);
          break;
        }
        case http1::event::need_more: {
          bin.consume(pr.consumed);
          auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(h1_.buffer_size), wait_for(ctx));
          if (st.aborted) co_return make_error_code(error::client_failed);
          if (rec == asio::error::eof && bp.finish().what == http1::event::message_complete) {
            if (auto ec = end_filtered_body(st, ctx, filtered)) co_return ec;
            st.finished = true;
            (void)session_.end_stream(st.id);
            kick();
            co_return std::error_code{};
          }
          if (rec) co_return rec == error::idle_timeout ? make_error_code(error::idle_timeout) : make_error_code(error::backend_reset);
          bin.commit(n);
          break;
        }
        case http1::event::message_complete: {
          bin.consume(pr.consumed);
          if (auto ec = end_filtered_body(st, ctx, filtered)) co_return ec;
          st.finished = true;
          if (!no_body) (void)session_.end_stream(st.id, bp.trailers());
          kick();
          h3_detail::exchange_result done;
          done.keep_backend = bp.keep_alive() && bin.view().empty();  // (nothing more came: the next request's answer is its own)
          co_return done;
        }
        default: co_return bp.error_code() ? bp.error_code() : make_error_code(error::backend_failed);
      }
    }
  }

  static bool body_filtered(const ctx_type& ctx) {
    if constexpr (Pipeline::filters_response_body && requires { ctx.response_body_filtered; }) return ctx.response_body_filtered;
    else return false;
  }
  std::error_code end_filtered_body(stream_state& st, ctx_type& ctx, bool filtered) {
    if constexpr (Pipeline::filters_response_body) {
      if (!filtered) return {};
      auto t = p_.response_body(ctx, {}, true);
      if (!t) return t.error();
      if (!t->empty()) (void)session_.send_data(st.id, *t);
      ctx.bytes_to_client += t->size();
    }
    return {};
  }

  // --- kept backend connections -------------------------------------------------------------
  std::optional<asio::ip::tcp::socket> take_kept(const asio::ip::tcp::endpoint& ep) {
    for (auto& k : kept_)
      if (k.socket && k.endpoint == ep)
        if (auto s = k.take(ep, /*retry_safe=*/true)) return s;
    return std::nullopt;
  }
  void keep(asio::ip::tcp::socket s, const asio::ip::tcp::endpoint& ep) {
    if (stopping_ || draining_) return;
    for (auto& k : kept_)
      if (!k.socket) return k.keep(std::move(s), ep);
    if (kept_.size() < a_.max_kept_backends) kept_.emplace_back().keep(std::move(s), ep);
  }

  start_type s_;
  Pipeline& p_;
  const h3_adapter& a_;
  const http1_adapter& h1_;
  const options& o_;
  codec::h3::server_session session_;
  cctx_type cctx_;
  middleware::flow_closer closer_{&h3_app::end_banned, this};  ///< (the connection pipeline's ban_kick)
  conn_type* c_ = nullptr;
  asio::any_io_executor ex_;
  std::optional<reject_reason> refused_;
  std::unordered_map<std::int64_t, std::unique_ptr<stream_state>> streams_;
  std::vector<stream_state*> waiting_;
  std::unordered_set<std::int64_t> early_;  ///< request streams that got 0-RTT data, until their request starts
  std::vector<detail::basic_kept_backend<>> kept_;  ///< idle backend connections, for the next streams
  std::size_t tasks_ = 0;
  std::optional<wakeup> linger_;
  bool accepted_ = false, stopping_ = false, draining_ = false, done_ = false, lingering_ = false;
};

}  // namespace rproxy::flow
