// rproxy/flow/h2_connection.hpp: one HTTP/2 client connection as flow/h2.hpp serves it: the
// session (codec/h2/server_session.hpp), one reader, one writer, one ticker and a coroutine per
// stream, all on the connection's executor; each stream forwarded to its HTTP/1.1 backend as
// the HTTP/1.1 adapter would. flow/h2.hpp says what it does for a user; this file is how.
// Users call serve_h2 / serve_http (flow/h2.hpp), not this.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>

#include <openssl/rand.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/codec/h2/limits.hpp>
#include <rproxy/codec/h2/request.hpp>
#include <rproxy/codec/h2/server_session.hpp>
#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/codec/ws/handshake.hpp>
#include <rproxy/core/base64.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/health/retry_on.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/flow/wakeup.hpp>
#include <rproxy/net/connector.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/upstream_stream.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::flow {

/// The HTTP/2 adapter: the session's bounds and what HTTP/2 adds to an HTTP/1.1 adapter, whose
/// forwarding rules, error bodies, response limits, buffer size, idle timeout and drain it uses.
/// Keep both alive as long as the connections they serve.
struct h2_adapter {
  const http1_adapter* http1 = nullptr;
  codec::h2::limits limits{};
  std::size_t max_queued = 64 * 1024;    ///< response bytes queued per stream before the backend is read again
  std::size_t max_kept_backends = 16;    ///< idle backend connections kept per client connection
  std::chrono::milliseconds tick = std::chrono::seconds(1);  ///< the session's clock (timeouts, drain)
};

namespace h2_detail {

namespace h2 = codec::h2;
namespace http1 = codec::http1;
/// One stream's shared state: what the reader hands it, and what ends it.
struct stream_state {
  stream_state(const asio::any_io_executor& ex, std::int32_t i) : id(i), wake(ex) {}
  std::int32_t id;
  std::string body;        ///< request body received and not yet forwarded (<= the stream window)
  bool ended = false;      ///< the request's END_STREAM came
  bool aborted = false;    ///< the client reset it, or the connection ends
  bool closed = false;     ///< the session's closed or reset event came
  bool done = false;       ///< its coroutine has finished
  bool finished = false;   ///< its response was ended or the stream reset by us
  net::upstream_stream* backend = nullptr;  ///< cancelled when the stream is aborted
  wakeup wake;
  /// An RFC 8441 tunnel's second waiter (its backend-to-client side waits for queue room).
  std::optional<wakeup> room{};
};

/// One HTTP/2 client connection: its session, its streams, its kept backend connections.
template <class Stream, class Pipeline, class ConnCtx>
class connection {
public:
  using ctx_type = typename Pipeline::context_type;

  connection(Stream& client, Pipeline& p, const h2_adapter& a, const options& o, ConnCtx& cctx,
             std::optional<reject_reason> refused)
      : client_(client), p_(p), a_(a), h1_(*a.http1), o_(o), cctx_(cctx), refused_(refused), session_(a.limits),
        ex_(client.get_executor()), writer_wake_(ex_), tick_wake_(ex_), all_done_(ex_) {}

  /// Serves the connection until the session is done or the client leaves; every stream's
  /// flow has ended (on_close) when this completes.
  asio::awaitable<std::error_code> run(std::string_view early) {
    std::error_code out;
    spawn_task([this]() { return writer(); });
    spawn_task([this]() { return ticker(); });
    if (!early.empty()) dispatch(session_.feed(early, std::chrono::steady_clock::now()));
    std::vector<char> buf(16 * 1024);
    while (!stopping_ && !session_.done()) {
      auto [ec, n] = co_await client_.async_read_some(asio::buffer(buf.data(), buf.size()), detail::tuple_awaitable);
      if (ec) {
        if (ec != asio::error::eof && ec != asio::error::operation_aborted && !ending_) out = net::classify(ec, net::side::downstream);
        break;
      }
      cctx_.bytes_from_client += n;
      dispatch(session_.feed(std::string_view(buf.data(), n), std::chrono::steady_clock::now()));
      writer_wake_.notify();
    }
    if (session_.failed() && !out) out = make_error_code(net::error::client_failed);
    // The end: every stream stops, then the writer and the ticker.
    stopping_ = true;
    for (auto& [id, st] : streams_) abort(*st);
    writer_wake_.notify();
    tick_wake_.notify();
    while (tasks_ > 0) (void)co_await all_done_.wait(std::chrono::seconds(1));
    std::error_code ignored;
    detail::tcp_of(client_).shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    detail::tcp_of(client_).close(ignored);
    for (auto& k : kept_) k.drop();
    co_return out;
  }

private:
  // --- tasks ---------------------------------------------------------------------------------
  template <class Make>
  void spawn_task(Make make) {
    ++tasks_;
    asio::co_spawn(ex_, [this, make]() -> asio::awaitable<void> {
      try {
        co_await make();
      } catch (const std::exception&) {  // a bug in one task must not end the worker
      }
      if (--tasks_ == 0) all_done_.notify();
    }, asio::detached);
  }

  /// Ends the connection from the writer's side: the reader's read fails.
  void end_connection() {
    if (ending_) return;
    ending_ = true;
    std::error_code ignored;
    detail::tcp_of(client_).shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    detail::tcp_of(client_).cancel(ignored);
  }

  /// Writes what the session has, one write per turn (copied: the session's buffer grows
  /// while the write is under way).
  asio::awaitable<void> writer() {
    std::string wbuf;
    for (;;) {
      wbuf.assign(session_.pending_output());
      session_.consume_output(wbuf.size());
      dispatch(session_.poll());
      if (wbuf.empty()) {
        if (session_.done() || stopping_) {
          if (session_.done()) end_connection();
          if (stopping_) co_return;
        }
        (void)co_await writer_wake_.wait(std::chrono::hours(1));
        continue;
      }
      auto [ec, n] = co_await net::with_deadline(asio::async_write(client_, asio::buffer(wbuf), asio::experimental::deferred),
                                                 h1_.idle_timeout);
      if (ec) {
        end_connection();
        co_return;
      }
      cctx_.bytes_to_client += n;
      dispatch(session_.poll());
      for (auto& [id, st] : streams_) {  // room in the queues: streams read their backends again
        st->wake.notify();
        if (st->room) st->room->notify();
      }
    }
  }

  /// The session's clock: header and idle timeouts, and GOAWAY once the app drains.
  asio::awaitable<void> ticker() {
    while (!stopping_) {
      (void)co_await tick_wake_.wait(a_.tick);
      if (stopping_) break;
      if (h1_.drain != nullptr && h1_.drain->draining()) session_.shutdown();
      dispatch(session_.tick(std::chrono::steady_clock::now()));
      writer_wake_.notify();
      // A connection with no stream at a tick keeps one spare exchange (its parser and some
      // 20 KiB of buffer), not one per stream it once had open at a time (up to
      // max_concurrent_streams: 2 MiB). Not as its last stream ends: a client that sends its
      // requests in bursts (h2load -m10, a page's assets) empties the connection between them,
      // and each burst would then allocate its exchanges again.
      if (streams_.empty() && spare_io_.size() > 1) spare_io_.resize(1);
    }
  }

  // --- events --------------------------------------------------------------------------------
  stream_state* find(std::int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  void abort(stream_state& st) {
    st.aborted = true;
    std::error_code ignored;
    if (st.backend) st.backend->cancel(ignored);
    st.wake.notify();
    if (st.room) st.room->notify();
  }

  /// A stream is forgotten once the session closed it and its flow has ended.
  void release_if_over(stream_state& st) {
    if (!st.closed || !st.done) return;
    session_.release(st.id);
    streams_.erase(st.id);  // st is gone
  }

  /// Hands the session's events to the streams. A new stream's flow starts once the whole batch
  /// is handed out, so it sees what came with its head in the same read: the END_STREAM flag of
  /// a bodiless request (what makes it eligible for a kept backend connection) and the first
  /// body bytes. (Started at once, its coroutine would run up to its first wait before them.)
  void dispatch(std::span<const h2::event> events) {
    std::vector<stream_state*> starting;
    starting.swap(starting_);  // (reused; dispatch is not re-entered, but a swap keeps that safe)
    starting.clear();
    for (const auto& e : events) {
      switch (e.what) {
        case h2::event_kind::request: starting.push_back(&add_stream(e.stream_id)); break;
        case h2::event_kind::data:
          if (auto* st = find(e.stream_id)) {
            if (st->done) session_.consume(st->id, e.data.size());  // answered early: the rest is dropped
            else st->body.append(e.data), st->wake.notify();
          }
          break;
        case h2::event_kind::end_stream:
          if (auto* st = find(e.stream_id)) st->ended = true, st->wake.notify();
          break;
        case h2::event_kind::reset:
          if (auto* st = find(e.stream_id)) {
            st->closed = true;
            abort(*st);
            release_if_over(*st);
          } else {
            session_.release(e.stream_id);
          }
          break;
        case h2::event_kind::closed:
          if (auto* st = find(e.stream_id)) {
            st->closed = true;
            release_if_over(*st);
          } else {
            session_.release(e.stream_id);
          }
          break;
        default: break;  // rejected (answered by the session), goaway: the writer flushes, done() follows
      }
    }
    for (auto* st : starting) spawn_task([this, st]() { return run_stream(*st); });
    starting.clear();
    starting_.swap(starting);
  }

  stream_state& add_stream(std::int32_t id) {
    auto st = std::make_unique<stream_state>(ex_, id);
    auto& ref = *st;
    streams_[id] = std::move(st);
    return ref;
  }

  // --- one stream: one flow ------------------------------------------------------------------
  asio::awaitable<void> run_stream(stream_state& st) {
    auto ctx = p_.make_context();
    ctx.id = cctx_.id;
    ctx.client = cctx_.client;
    ctx.local = cctx_.local;
    ctx.tls = cctx_.tls;
    ctx.started = std::chrono::steady_clock::now();
    auto ec = co_await detail::guarded([&]() -> asio::awaitable<std::error_code> { co_return co_await serve_stream(st, ctx); });
    st.backend = nullptr;
    p_.close(ctx, ec);
    st.done = true;
    if (!st.body.empty()) session_.consume(st.id, st.body.size()), st.body.clear();
    if (!st.finished) session_.reset(st.id, st.aborted ? h2::code::cancel : h2::code::internal_error);
    writer_wake_.notify();
    release_if_over(st);
  }

  std::chrono::milliseconds wait_for(const ctx_type& ctx) const { return h1_.step_timeout(ctx); }

  static bool head_request(const ctx_type& ctx) {
    if constexpr (requires { ctx.head_request; }) return ctx.head_request;
    else return false;
  }

  /// Sends a whole HTTP/1.1 response (the HTTP/1.1 adapter's refusal or error, a stage's
  /// answer) on the stream, converted: its status, its end-to-end fields, its body.
  void respond_http1(stream_state& st, ctx_type& ctx, std::string_view bytes) {
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
        if (rp.finish().what != http1::event::message_complete) status = 0;  // cut short
        break;
      } else {
        if (r.what != http1::event::message_complete) status = 0;
        break;
      }
    }
    if (status < 200) status = 500;  // not a response we can convert (a stage's bug)
    http1_adapter::sent(ctx, status);
    st.finished = true;
    if (session_.submit_response(st.id, status, fields, body.empty())) return;
    if (!body.empty()) {
      (void)session_.send_data(st.id, body);
      (void)session_.end_stream(st.id);
    }
    ctx.bytes_to_client += body.size();
    writer_wake_.notify();
  }

  /// A verdict that ends the flow: the refusal rendered, or the stage's answer.
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
    const h2::request& req = session_.request(st.id);
    if constexpr (requires { ctx.head_request; }) ctx.head_request = req.method() == "HEAD";
    std::optional<reject_reason> refused = refused_;
    if (auto v = co_await run_phase<phase::accept>(p_, ctx); !v.is_next() && !refused)
      if (v.is_reject()) ctx.rejected = refused = v.reason();
    ctx.hello_done = std::chrono::steady_clock::now();
    // RFC 8441: an extended CONNECT for a protocol the HTTP/1.1 side passes on (websocket) is
    // that upgrade (tunnel()); other tunnels are not proxied (as on HTTP/1.1): 501.
    const bool extended = req.method() == "CONNECT" && !req.protocol().empty();
    if (req.method() == "CONNECT" && !(extended && a_.limits.enable_connect_protocol && h1_.passes_upgrade(req.protocol()))) {
      respond_http1(st, ctx, http1::make_error_response(501, "upgrades and CONNECT are not supported"));
      co_return std::error_code{};
    }
    if (refused) {
      if (refused_) session_.shutdown();  // the connection was refused: no more requests on it
      co_return co_await stop(st, ctx, reject(*refused));
    }
    const h2::request_view view(req);
    if (auto v = co_await run_phase<phase::hello>(p_, ctx, static_cast<const http1::request_view&>(view)); !v.is_next())
      co_return co_await stop(st, ctx, v);

    // on_route and connect, failing over on retry-safe errors (as flow/serve.hpp's run_flow).
    const bool bodiless = st.ended && st.body.empty();
    const bool reusable = bodiless && http1_detail::idempotent(req.method());
    std::optional<net::upstream_stream> backend;
    bool reused = false;
    std::error_code ec;
    for (unsigned attempt = 0;;) {  // an exchange that may go to another pick (retry_other) comes back here
      for (;; ++attempt) {
        ctx.out_of_attempts = ec && attempt >= std::max(1u, o_.max_connect_attempts);
        auto v = co_await run_phase<phase::route>(p_, ctx);
        if (!v.is_next()) co_return co_await stop(st, ctx, v, ec);
        if (ctx.out_of_attempts || !ctx.backend) {
          (void)co_await stop(st, ctx, reject(reject_code::unavailable));
          co_return ec ? ec : make_error_code(net::error::no_endpoints);
        }
        if (st.aborted) co_return make_error_code(net::error::client_failed);
        if (reusable)
          if (auto k = take_kept(*ctx.backend, detail::transport_of(ctx))) {  // (reusable: retry-safe, so unprobed when recent)
            backend = std::move(k);
            reused = true;
            ctx.connect_error = {};
            break;
          }
        auto [cec, sock] = co_await h1_.connect_backend(ctx, ex_, o_);
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
      ++attempt;
      if constexpr (requires { ctx.upstream_reused; }) ctx.upstream_reused = reused;
      if (auto v = co_await run_phase<phase::connect>(p_, ctx); !v.is_next()) co_return co_await stop(st, ctx, v);

      if (extended) {  // a tunnel never keeps its backend connection, nor retries
        st.backend = &*backend;
        auto r = co_await tunnel(st, ctx, *backend, req);
        st.backend = nullptr;
        co_return r.ec;
      }
      for (;;) {
        st.backend = &*backend;
        auto r = co_await forward(st, ctx, *backend, req, reused);
        st.backend = nullptr;
        if (r.retry_fresh && reused) {  // the kept connection was stale and nothing was lost
          auto [cec, sock] = co_await h1_.connect_backend(ctx, ex_, o_);
          if (cec) {
            ctx.connect_error = cec;
            (void)co_await stop(st, ctx, reject(reject_code::unavailable));
            co_return cec;
          }
          backend.emplace(std::move(sock));
          reused = false;
          continue;
        }
        if (r.retry_other) {  // another pick: on_route reports this one's failure
          ec = r.ec;
          break;
        }
        if (r.keep_backend && !r.ec) keep(std::move(*backend), *ctx.backend, detail::transport_of(ctx));
        co_return r.ec;
      }
      std::error_code ignored;
      backend->close(ignored);
      backend.reset();
      reused = false;
      ctx.connect_error = ec;
    }
  }

  /// The exchange with the backend: the head and body up, the response down.
  asio::awaitable<exchange_result> forward(stream_state& st, ctx_type& ctx, net::upstream_stream& backend,
                                           const h2::request& req, bool reused) {
    using net::error;
    if (st.aborted) co_return exchange_result{make_error_code(error::client_failed)};
    // Chunked when trailers the rules forward may follow a body of known length (forward.hpp).
    const auto info = http1::h2_request_framing(req.content_length(), st.ended, st.body.empty(), !req.trailers().empty(),
                                                h1_.forward_rules());
    const bool has_body = info.chunked || info.content_length > 0;
    auto io = take_io();  // (given back when the exchange ends)
    std::string& first = io->first;
    first.clear();
    if (!reused) first = net::encode_proxy_header(ctx.proxy_out != proxy_send::none ? ctx.proxy_out : o_.send, ctx.client, ctx.local);
    h1_.build_upstream_head(io->up, ctx, req.head(), info);
    first.reserve(first.size() + http1::serialized_size(io->up));
    http1::serialize_to(first, io->up);
    bool body_sent = false;
    // A failure the stream's retry policy lets go to another pick (ctx.retry_on): only for an
    // idempotent request without a body, so sending it again loses and repeats nothing.
    auto retry_other = [&](std::uint8_t bit) {
      if constexpr (requires { ctx.retry_on; }) return !has_body && http1_detail::idempotent(req.method()) && (ctx.retry_on & bit) != 0;
      else return false;
    };

    auto fail_before_response = [&](std::error_code ec, unsigned status = 502, bool stale = false) -> exchange_result {
      if (st.aborted) return exchange_result{make_error_code(error::client_failed)};
      if (reused && stale && !body_sent) return exchange_result{ec, false, false, true};
      if (status == 502 && ec == condition::upstream && retry_other(health::retry_on::reset)) return exchange_result{ec, false, false, false, true};
      respond_http1(st, ctx, h1_.error_response(ctx, status, ec));
      return exchange_result{ec ? ec : make_error_code(error::backend_failed)};
    };

    // 1. The head, then the body as it comes (window back once written).
    if (auto ec = co_await http1_detail::write_for(backend, std::string_view(first), wait_for(ctx)))
      co_return fail_before_response(net::classify(ec, net::side::upstream), 502, ec != error::idle_timeout);
    std::string piece;
    while (has_body) {
      if (st.aborted) co_return exchange_result{make_error_code(error::client_failed)};
      if (!st.body.empty()) {
        piece.swap(st.body);
        st.body.clear();
        body_sent = true;
        ctx.bytes_from_client += piece.size();
        if (auto v = co_await run_phase<phase::message>(p_, ctx, std::string_view(piece)); !v.is_next()) {
          session_.consume(st.id, piece.size());
          (void)co_await stop(st, ctx, v.is_reject() ? v : reject(reject_code::internal));
          co_return exchange_result{};
        }
        const auto wec = co_await http1_detail::write_body(backend, piece, info.chunked, wait_for(ctx));
        session_.consume(st.id, piece.size());
        writer_wake_.notify();
        if (wec) co_return fail_before_response(make_error_code(error::backend_failed));
        continue;
      }
      if (st.ended) break;
      if (!co_await st.wake.wait(wait_for(ctx)) && !st.ended && st.body.empty() && !st.aborted)
        co_return exchange_result{make_error_code(error::idle_timeout)};  // the client stopped sending: reset
    }
    if (info.chunked) {
      std::string last;
      http1::append_last_chunk(last, http1::forwarded_trailers(http1::fields{}, req.trailers(), h1_.forward_rules()));
      if (co_await http1_detail::write_for(backend, std::string_view(last), wait_for(ctx)))
        co_return fail_before_response(make_error_code(error::backend_failed));
    }

    // 2. The response head (1xx dropped), read with the body that came with it.
    auto& bin = io->bin;
    auto& bp = io->bp;
    bp.reset();
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
        auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(), wait_for(ctx));
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
    if ((rh.status == 502 && retry_other(health::retry_on::status_502)) || (rh.status == 503 && retry_other(health::retry_on::status_503))) {
      co_return exchange_result{make_error_code(error::backend_failed), false, false, false, true};  // dropped: another pick
    }
    const auto binfo = bp.info();
    const bool no_body = rh.status == 204 || rh.status == 304 || head_request(ctx);
    // on_response first: its stages' response fields apply, and a stage that transforms the
    // body (ctx.response_body_filtered: compression) makes its length unknown.
    if (auto v = co_await run_phase<phase::response>(p_, ctx, rh); !v.is_next()) {
      if (v.is_reject()) ctx.rejected = v.reason();
      respond_http1(st, ctx, h1_.error_response(ctx, 502));
      co_return exchange_result{};
    }
    const bool filtered = !no_body && body_filtered(ctx);
    auto& down = io->down;
    down.clear();
    for (const auto& f : rh.fields) {
      if (http1::detail::iequals(f.name, "content-length")) {
        if (rh.status != 204 && rh.status != 304 && !binfo.chunked && !filtered) down.add(f.name, f.value);
        continue;
      }
      if (http1_detail::hop_by_hop(f.name, rh.fields)) continue;
      down.add(f.name, f.value);
    }
    if constexpr (requires { ctx.response_fields; }) ctx.response_fields.apply(down);
    if (st.aborted) co_return exchange_result{make_error_code(error::client_failed)};
    http1_adapter::sent(ctx, rh.status);
    if (session_.submit_response(st.id, rh.status, down, no_body)) co_return exchange_result{make_error_code(error::client_failed)};
    writer_wake_.notify();
    bin.consume(head_size);  // the head's views are not used past this point

    // 3. The response body, streamed; the stream's queue is the backpressure.
    for (;;) {
      auto pr = bp.parse(bin.view());
      switch (pr.what) {
        case http1::event::body: {
          std::string_view piece = pr.data;
          if constexpr (Pipeline::filters_response_body)
            if (filtered) {
              auto t = p_.response_body(ctx, piece, false);
              if (!t) co_return exchange_result{t.error()};  // the stream is reset
              piece = *t;
            }
          if (!piece.empty()) (void)session_.send_data(st.id, piece);
          ctx.bytes_to_client += piece.size();
          bin.consume(pr.consumed);
          writer_wake_.notify();
          while (session_.queued(st.id) > a_.max_queued && !st.aborted)
            if (!co_await st.wake.wait(wait_for(ctx)) && session_.queued(st.id) > a_.max_queued)
              co_return exchange_result{make_error_code(error::idle_timeout)};  // the client reads nothing: reset
          if (st.aborted) co_return exchange_result{make_error_code(error::client_failed)};
          break;
        }
        case http1::event::need_more: {
          bin.consume(pr.consumed);
          auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(h1_.buffer_size), wait_for(ctx));
          if (st.aborted) co_return exchange_result{make_error_code(error::client_failed)};
          if (rec == asio::error::eof && bp.finish().what == http1::event::message_complete) {  // until close
            if (auto ec = end_filtered_body(st, ctx, filtered)) co_return exchange_result{ec};
            st.finished = true;
            (void)session_.end_stream(st.id);
            writer_wake_.notify();
            co_return exchange_result{};
          }
          if (rec) {  // died mid-response: this stream is reset (INTERNAL_ERROR), the others go on
            co_return exchange_result{rec == error::idle_timeout ? make_error_code(error::idle_timeout)
                                                                  : make_error_code(error::backend_reset)};
          }
          bin.commit(n);
          break;
        }
        case http1::event::message_complete: {
          bin.consume(pr.consumed);
          if (auto ec = end_filtered_body(st, ctx, filtered)) co_return exchange_result{ec};
          st.finished = true;
          if (!no_body) (void)session_.end_stream(st.id, bp.trailers());
          writer_wake_.notify();
          exchange_result out;
          out.keep_backend = bp.keep_alive() && bin.view().empty();
          co_return out;
        }
        default:
          co_return exchange_result{bp.error_code() ? bp.error_code() : make_error_code(error::backend_failed)};
      }
    }
  }

  /// RFC 8441: an extended CONNECT (`:protocol websocket`) forwarded as the HTTP/1.1 upgrade it
  /// stands for (GET, Connection: upgrade, Upgrade, a fresh Sec-WebSocket-Key; the client's
  /// end-to-end fields), the backend's 101 checked (its Upgrade, Sec-WebSocket-Accept for our
  /// key) and answered 200 on the stream, then bytes both ways: DATA from the client to the
  /// backend (window back once written), the backend's bytes as DATA (its queue as the
  /// backpressure), until both sides end (END_STREAM / EOF) or the idle timeout passes with no
  /// byte either way. Another answer than 101 is passed on whole (at most 64 KiB: else 502).
  asio::awaitable<exchange_result> tunnel(stream_state& st, ctx_type& ctx, net::upstream_stream& backend, const h2::request& req) {
    using net::error;
    namespace ws = codec::ws;
    std::array<unsigned char, 16> nonce{};
    if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1) co_return exchange_result{make_error_code(error::flow_aborted)};
    const std::string key = base64::encode(std::string_view(reinterpret_cast<const char*>(nonce.data()), nonce.size()));
    if constexpr (requires { ctx.request_fields; }) {
      ctx.request_fields.set("Sec-WebSocket-Key", key);  // (a key the client sent is dropped: RFC 8441 has none)
      if (!req.head().fields.contains("sec-websocket-version")) ctx.request_fields.set("Sec-WebSocket-Version", "13");
    }
    http1::request_head_view head = req.head();
    head.method = "GET";
    std::string first = net::encode_proxy_header(ctx.proxy_out != proxy_send::none ? ctx.proxy_out : o_.send, ctx.client, ctx.local);
    first += h1_.upstream_head(ctx, head, http1::message_info{}, req.protocol());
    auto fail = [&](std::error_code ec, unsigned status = 502) {
      if (st.aborted) return exchange_result{make_error_code(error::client_failed)};
      respond_http1(st, ctx, h1_.error_response(ctx, status, ec));
      return exchange_result{ec ? ec : make_error_code(error::backend_failed)};
    };
    if (auto ec = co_await http1_detail::write_for(backend, std::string_view(first), wait_for(ctx)))
      co_return fail(net::classify(ec, net::side::upstream));

    // The response head (1xx other than 101 dropped); another final answer is passed on whole.
    constexpr std::size_t max_refusal = 64 * 1024;
    http1_detail::recv_buffer bin(h1_.response_limits.max_start_line + h1_.response_limits.max_header_bytes + 4 + max_refusal);
    http1::response_parser bp(h1_.response_limits);
    bp.set_request_method("GET");
    std::size_t head_size = 0;
    for (;;) {
      auto pr = bp.parse(bin.view());
      if (pr.what == http1::event::head && (bp.head().status == 101 || bp.head().status >= 200)) {
        head_size = pr.consumed;
        break;
      }
      if (pr.what == http1::event::head || pr.what == http1::event::message_complete) {
        bin.consume(pr.consumed);
        continue;
      }
      if (pr.what != http1::event::need_more) co_return fail(bp.error_code() ? bp.error_code() : make_error_code(error::backend_failed));
      bin.consume(pr.consumed);
      auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(h1_.buffer_size), wait_for(ctx));
      if (rec || n == 0)
        co_return fail(rec ? net::classify(rec, net::side::upstream) : make_error_code(error::backend_reset), rec == error::idle_timeout ? 504 : 502);
      bin.commit(n);
    }
    const auto& rh = bp.head();
    if (rh.status != 101) {  // refused (401, 404, 426, ...): the answer as it is, with its body (bounded)
      if (auto v = co_await run_phase<phase::response>(p_, ctx, rh); !v.is_next()) {
        if (v.is_reject()) ctx.rejected = v.reason();
        co_return fail({});
      }
      // (bin is not consumed from here on, so nothing moves: its view starts with the head)
      for (std::size_t at = head_size;;) {
        auto pr = bp.parse(bin.view().substr(at));
        at += pr.consumed;
        if (pr.what == http1::event::message_complete) break;
        if (pr.what == http1::event::body) continue;
        if (pr.what != http1::event::need_more || bin.full()) co_return fail(make_error_code(error::backend_failed));
        auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(h1_.buffer_size), wait_for(ctx));
        if (rec == asio::error::eof && bp.finish().what == http1::event::message_complete) break;
        if (rec || n == 0) co_return fail(make_error_code(error::backend_reset));
        bin.commit(n);
      }
      respond_http1(st, ctx, bin.view());
      co_return exchange_result{};
    }
    // A 101 to the protocol asked for, with the accept key of our key.
    const auto up = rh.fields.find("upgrade");
    const auto accept = rh.fields.find("sec-websocket-accept");
    const bool is_ws = http1::detail::iequals(req.protocol(), "websocket");
    if (!up || !http1::detail::iequals(http1_detail::upgrade_name(*up), req.protocol()) || !rh.fields.has_token("connection", "upgrade") ||
        (is_ws && (!accept || *accept != ws::accept_key(key))))
      co_return fail(make_error_code(error::backend_failed));
    if (auto v = co_await run_phase<phase::response>(p_, ctx, rh); !v.is_next()) {
      if (v.is_reject()) ctx.rejected = v.reason();
      co_return fail({});
    }
    http1::fields down;
    for (const auto& f : rh.fields) {
      if (http1_detail::hop_by_hop(f.name, rh.fields) || http1::detail::iequals(f.name, "sec-websocket-accept") ||
          http1::detail::iequals(f.name, "content-length"))
        continue;
      down.add(f.name, f.value);
    }
    if constexpr (requires { ctx.response_fields; }) ctx.response_fields.apply(down);
    if (st.aborted) co_return exchange_result{make_error_code(error::client_failed)};
    http1_adapter::sent(ctx, 200);
    if constexpr (requires { ctx.upgraded; }) ctx.upgraded = true;
    if (session_.submit_response(st.id, 200, down, false)) co_return exchange_result{make_error_code(error::client_failed)};
    writer_wake_.notify();
    bin.consume(head_size);

    // Bytes both ways until both ends are done; no byte either way for the idle timeout: reset.
    st.room.emplace(ex_);
    auto idle = h1_.idle_timeout;
    if constexpr (requires { ctx.idle_timeout; })
      if (ctx.idle_timeout.count() > 0) idle = ctx.idle_timeout;
    auto last = std::chrono::steady_clock::now();
    std::error_code failed;
    bool up_done = false, down_done = false;
    auto stop_both = [&](std::error_code ec) {
      if (!failed) failed = ec;
      std::error_code ignored;
      backend.cancel(ignored);
      st.wake.notify();
      st.room->notify();
    };
    auto timed_out = [&] { return std::chrono::steady_clock::now() - last >= idle; };
    // Client to backend: the stream's DATA, window back once written; END_STREAM: FIN.
    auto upward = [&]() -> asio::awaitable<void> {
      std::string piece;
      while (!failed && !st.aborted) {
        if (!st.body.empty()) {
          piece.swap(st.body);
          st.body.clear();
          ctx.bytes_from_client += piece.size();
          last = std::chrono::steady_clock::now();
          const auto wec = co_await http1_detail::write_for(backend, std::string_view(piece), idle);
          session_.consume(st.id, piece.size());
          writer_wake_.notify();
          if (wec) co_return stop_both(make_error_code(error::backend_reset));
          continue;
        }
        if (st.ended) {
          std::error_code ignored;
          backend.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
          break;
        }
        if (!co_await st.wake.wait(idle) && st.body.empty() && !st.ended && timed_out()) co_return stop_both(make_error_code(error::idle_timeout));
      }
      up_done = true;
      st.room->notify();
    };
    // Backend to client: its bytes as DATA (the backend's early bytes first); EOF: END_STREAM.
    auto downward = [&]() -> asio::awaitable<void> {
      for (;;) {
        if (!bin.view().empty()) {
          const auto piece = bin.view();
          (void)session_.send_data(st.id, piece);
          ctx.bytes_to_client += piece.size();
          bin.consume(piece.size());
          last = std::chrono::steady_clock::now();
          writer_wake_.notify();
        }
        while (session_.queued(st.id) > a_.max_queued && !st.aborted && !failed)
          if (!co_await st.room->wait(idle) && session_.queued(st.id) > a_.max_queued && timed_out())
            co_return stop_both(make_error_code(error::idle_timeout));
        if (st.aborted || failed) co_return;
        auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(h1_.buffer_size), idle);
        if (rec == error::idle_timeout) {
          if (!timed_out()) continue;  // the client side moved meanwhile
          co_return stop_both(rec);
        }
        if (rec == asio::error::eof) break;
        if (rec || n == 0) co_return stop_both(st.aborted ? make_error_code(error::client_failed) : make_error_code(error::backend_reset));
        bin.commit(n);
      }
      st.finished = true;
      (void)session_.end_stream(st.id);
      writer_wake_.notify();
      down_done = true;
      st.wake.notify();
    };
    {
      using namespace asio::experimental::awaitable_operators;
      co_await (upward() && downward());
    }
    st.room.reset();
    if (st.aborted && !failed) failed = make_error_code(error::client_failed);
    if (!(up_done && down_done) && !failed) failed = make_error_code(error::backend_failed);
    co_return exchange_result{failed};
  }

  /// Whether a stage transforms this stream's response body (flow/http1.hpp's rule).
  static bool body_filtered(const ctx_type& ctx) {
    if constexpr (Pipeline::filters_response_body && requires { ctx.response_body_filtered; }) return ctx.response_body_filtered;
    else return false;
  }
  /// A transformed body's end: the transforms' last bytes (a gzip trailer).
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

  // --- what a stream's exchange reuses ---------------------------------------------------------
  /// A stream's parser, heads and buffers, kept by the connection for its next streams once
  /// they have grown (no allocation per stream for them). The response buffer starts at the
  /// body buffer plus a usual head (a head and a 16 KiB body in one read) and grows to the
  /// largest head only for a head that needs it.
  struct stream_io {
    explicit stream_io(const http1_adapter& h1)
        : bp(h1.response_limits),
          bin(h1.response_limits.max_start_line + h1.response_limits.max_header_bytes + 4 + h1.buffer_size, h1.buffer_size + 4 * 1024) {}
    http1::response_parser bp;
    http1::fields down;
    http1::request_head up;
    std::string first;  ///< the backend's first bytes (PROXY header, request head)
    http1_detail::recv_buffer bin;
  };
  struct io_return {
    connection* c;
    void operator()(stream_io* io) const noexcept {
      if (c->spare_io_.size() < c->a_.limits.max_concurrent_streams) c->spare_io_.emplace_back(io);
      else delete io;
    }
  };
  std::unique_ptr<stream_io, io_return> take_io() {
    if (spare_io_.empty()) return {new stream_io(h1_), io_return{this}};
    auto* io = spare_io_.back().release();
    spare_io_.pop_back();
    std::unique_ptr<stream_io, io_return> out(io, io_return{this});
    out->bin.clear();
    return out;
  }

  // --- kept backend connections --------------------------------------------------------------
  std::optional<net::upstream_stream> take_kept(const asio::ip::tcp::endpoint& ep, const void* via) {
    for (auto& k : kept_)
      if (k.socket && k.endpoint == ep && k.transport == via)
        if (auto s = k.take(ep, /*retry_safe=*/true, via)) return s;
    return std::nullopt;
  }
  void keep(net::upstream_stream s, const asio::ip::tcp::endpoint& ep, const void* via) {
    if (stopping_) return;
    for (auto& k : kept_)
      if (!k.socket) return k.keep(std::move(s), ep, via);
    if (kept_.size() < a_.max_kept_backends) kept_.emplace_back().keep(std::move(s), ep, via);
  }

  Stream& client_;
  Pipeline& p_;
  const h2_adapter& a_;
  const http1_adapter& h1_;
  const options& o_;
  ConnCtx& cctx_;
  std::optional<reject_reason> refused_;
  h2::server_session session_;
  asio::any_io_executor ex_;
  std::unordered_map<std::int32_t, std::unique_ptr<stream_state>> streams_;
  std::vector<stream_state*> starting_;  ///< dispatch()'s list of streams to start (kept for its capacity)
  std::vector<detail::basic_kept_backend<net::upstream_stream>> kept_;
  std::vector<std::unique_ptr<stream_io>> spare_io_;
  wakeup writer_wake_, tick_wake_, all_done_;
  std::size_t tasks_ = 0;
  bool stopping_ = false, ending_ = false;
};

}  // namespace h2_detail

}  // namespace rproxy::flow
