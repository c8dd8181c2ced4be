// rproxy/flow/h2_upstream.hpp: an HTTP/2 backend (h2c: prior knowledge over TCP; or h2: TLS with
// ALPN "h2") as a worker sees it. Per backend and worker, few connections
// (codec/h2/client_session.hpp) that carry many requests at once: up to the backend's
// SETTINGS_MAX_CONCURRENT_STREAMS (and max_streams) per connection, then another connection
// (up to max_connections), then a bounded queue. In front of it a loopback HTTP/1.1 listener,
// which the flow driver connects to in place of the backend (flow/upstream_redirect.hpp), as
// for HTTP/3 backends (flow/h3_upstream.hpp): every downstream protocol and every stage works
// for HTTP/2 backends unchanged.
//
//     auto up = std::make_shared<h2_upstream>(worker_io, h2_upstream::target{tcp_ep, "backend.example", nullptr, ""});
//     // over TLS: target{tcp_ep, "api.internal", tls_ctx /* shared_ptr<const net::tls_client_context> */, "api.internal"}
//     up->listen();                       // 127.0.0.1:0; up->local() is the redirect target
//     ... up->stop();                     // closes the listener and the HTTP/2 connections
//
// Trailers (gRPC): the request's chunked trailers go to the backend as a trailer HEADERS frame;
// the backend's trailers (grpc-status, grpc-message) come back as chunked trailers, which the
// gateway passes on to its clients (HTTP/2 trailers, or HTTP/1.1 chunked trailers). `te:
// trailers` is sent with every request: this path carries trailers end to end. A response
// without content-length is chunked (so its trailers can follow); one with content-length keeps
// it (trailers after such a body are dropped). gRPC's Trailers-Only answer becomes a head and
// trailers (its equivalent), as an HTTP/1.1 head cannot carry trailers.
// Bounds: a request head of at most 64 KiB (the parser's), request body bytes queued at most
// `max_body_buffer` ahead of the backend's window, response bytes held at most the stream window
// (given back to the backend only as the gateway reads them), `max_queued` requests waiting for
// a stream (503 past it), a response timeout (no progress: 504, or the response is cut).
// On the stand-in's wire, an HTTP/2 failure before the response head is a 502 (504 on the
// timeout); after it, the connection is closed mid-body (the gateway resets its client's stream
// or closes its connection). A backend connection that dies fails only its own streams; the
// next requests open a new one.
// A request the backend did not process (RST_STREAM REFUSED_STREAM, or its stream above the
// last id of a GOAWAY, which nghttp2 reports as REFUSED_STREAM: RFC 9113 §8.7) is sent again
// once, whatever its method, on another open connection with room, else the same one (a
// REFUSED_STREAM leaves it usable), else a new one (after a GOAWAY), when its body can be
// replayed: none, or all of it still held (a copy of at most `max_body_buffer` bytes, kept
// until the response head arrives). So is an idempotent request (RFC 9110 §9.2.2: GET, HEAD,
// OPTIONS, TRACE, PUT, DELETE) whose connection ended before its response head with no word on
// it (closed or reset without a GOAWAY that refused it, a backend restarted): it may have been
// processed, which an idempotent request allows (§9.2.2); it goes on a new connection. Any other
// method gets a 502 saying why it was not sent again. Counted in `retries`.
// A connection that carries no stream for `idle_timeout` is closed with GOAWAY (NO_ERROR).
//
// TLS (a target with a client context, net/tls_client.hpp): each connection is TLS over its TCP
// socket, verified as the context says (by default: the chain, and the SNI name or else the
// backend's IP address), resuming a session kept from an earlier connection to the backend.
// ALPN offers "h2" alone and the backend must select it: HTTP/2 with prior knowledge inside TLS
// is not what RFC 9113 allows, and a backend that speaks HTTP/1.1 there would take the preface
// for a bad request. A handshake or ALPN failure is a connect failure (the waiting requests get
// a 502 naming it). The stream is net::upstream_stream: plain connections stay a bare socket
// (a branch per read or write, no TLS object).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <rproxy/codec/h2/client_session.hpp>
#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/flow/h2_upstream_options.hpp>
#include <rproxy/flow/standin.hpp>
#include <rproxy/flow/wakeup.hpp>
#include <rproxy/health/retry_budget.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/tls_client.hpp>
#include <rproxy/net/upstream_stream.hpp>
#include <rproxy/observe/metrics.hpp>

#include <openssl/ssl.h>

namespace rproxy::flow {

/// Counters and gauges of one backend (shared by its workers).
struct h2_upstream_metrics {
  observe::counter* connections = nullptr;         ///< HTTP/2 connections opened
  observe::counter* connect_failures = nullptr;    ///< connections that failed before their first stream
  observe::counter* requests = nullptr;            ///< requests sent over HTTP/2
  observe::counter* failures = nullptr;            ///< requests that failed (502/503/504 or a cut mid-body)
  observe::gauge* connections_active = nullptr;    ///< HTTP/2 connections open now
  observe::gauge* streams_active = nullptr;        ///< streams open now
  observe::counter* retries = nullptr;             ///< requests sent again after the backend refused them unprocessed
};

/// Held by shared_ptr: each stand-in connection and backend connection keeps it alive.
class h2_upstream : public std::enable_shared_from_this<h2_upstream> {
public:
  struct target {
    asio::ip::tcp::endpoint address;
    std::string authority;  ///< :authority when the request has no Host
    /// TLS to the backend with this context (null: h2c). Shared: kept connections hold it.
    std::shared_ptr<const net::tls_client_context> tls{};
    std::string sni{};  ///< with tls: the name sent and verified (empty: the backend's IP address verified)
  };

  h2_upstream(asio::io_context& io, target t, h2_upstream_options o = {}, h2_upstream_metrics m = {})
      : io_(io), target_(std::move(t)), opts_(o), metrics_(m), listener_(io) {}
  h2_upstream(const h2_upstream&) = delete;
  h2_upstream& operator=(const h2_upstream&) = delete;

  /// Opens the loopback listener (any thread); accepting starts on the worker.
  std::error_code listen() {
    if (auto ec = listener_.open()) return ec;
    asio::post(io_, [self = shared_from_this()] {
      self->listener_.accept([self](asio::ip::tcp::socket s) { asio::co_spawn(self->io_, self->serve(self, std::move(s)), asio::detached); });
    });
    return {};
  }
  const asio::ip::tcp::endpoint& local() const noexcept { return listener_.local(); }

  /// Closes the listener and every HTTP/2 connection (on the worker).
  void stop() {
    asio::post(io_, [self = shared_from_this()] {
      self->stopped_ = true;
      self->listener_.close();
      std::error_code ignored;
      for (auto& c : self->conns_) c->sock.close(ignored);
    });
  }

  /// New connections use `tls` (a reloaded CA file); open ones keep the context they were made
  /// with. Ignored for an h2c target (any thread).
  void update_tls(std::shared_ptr<const net::tls_client_context> tls) {
    asio::post(io_, [self = shared_from_this(), tls = std::move(tls)]() mutable {
      if (self->target_.tls && tls) self->target_.tls = std::move(tls);
    });
  }

  /// Why the last connection attempt failed ("" after a success; for tests; on the worker).
  const std::string& last_error() const noexcept { return last_error_; }

  /// Live HTTP/2 connections (for tests; on the worker).
  std::size_t connections() const noexcept { return conns_.size(); }

private:
  struct request_state;

  /// One backend connection: the session, its stream (plain or TLS), the streams it carries.
  struct conn {
    explicit conn(asio::io_context& io, const codec::h2::client_limits& l) : sock(io.get_executor()), kick(io), idle(io), session(l) {}
    net::upstream_stream sock;
    std::shared_ptr<const net::tls_client_context> tls;  ///< the context its TLS stream was made with
    asio::steady_timer kick;  ///< cancelled: the writer has something to send
    asio::steady_timer idle;  ///< cancelled when the last stream leaves: idle_timeout counts from there
    codec::h2::client_session session;
    std::unordered_map<std::int32_t, request_state*> streams;
    bool ready = false, dead = false, timed_out = false;
  };

  struct request_state {
    explicit request_state(asio::io_context& io) : wake(io.get_executor()) {}
    wakeup wake;  ///< the connection's events for this request (flow/wakeup.hpp: none is lost)
    std::shared_ptr<conn> c;
    std::int32_t id = -1;
    bool has_head = false, ended = false, failed = false;
    bool lost = false;  ///< its connection ended while it waited for the response head
    codec::h2::code reset_code = codec::h2::code::no_error;  ///< why the stream was reset (failed)
    std::string body;
    void poke() { wake.notify(); }
    /// The backend did not process the request (RFC 9113 §8.7): it may go again.
    bool refused() const noexcept { return failed && !has_head && reset_code == codec::h2::code::refused_stream; }
  };

  static constexpr auto tuple = asio::experimental::as_tuple(asio::use_awaitable);

  void wake_waiters() {
    for (auto* r : waiting_) r->poke();
  }

  /// Hands the session's events to the requests they belong to.
  void dispatch(conn& c, std::span<const codec::h2::client_event> events) {
    using k = codec::h2::client_event_kind;
    for (const auto& e : events) {
      if (e.what == k::goaway) {
        wake_waiters();  // no new streams here: another connection
        continue;
      }
      auto it = c.streams.find(e.stream_id);
      if (it == c.streams.end()) continue;
      auto* r = it->second;
      switch (e.what) {
        case k::response: r->has_head = true; break;
        case k::data: r->body.append(e.data); break;
        case k::end_stream: r->ended = true; break;
        case k::reset:
          r->failed = true;
          r->reset_code = e.code;
          break;
        default: break;
      }
      if (e.what == k::end_stream || e.what == k::reset) {
        forget(c, it);
        wake_waiters();  // a stream slot is free
      }
      r->poke();
    }
  }

  /// Stream `it` of `c` is over for the connection; the last one starts its idle time.
  void forget(conn& c, std::unordered_map<std::int32_t, request_state*>::iterator it) {
    c.streams.erase(it);
    if (metrics_.streams_active) metrics_.streams_active->dec();
    if (c.streams.empty()) c.idle.cancel();
  }

  /// Closes `c` with GOAWAY once it has carried no stream for idle_timeout (a stream that comes
  /// and goes restarts the count through forget()).
  asio::awaitable<void> idle_loop(std::shared_ptr<h2_upstream> keep, std::shared_ptr<conn> c) {
    (void)keep;
    while (!c->dead) {
      c->idle.expires_after(opts_.idle_timeout);
      auto [ec] = co_await c->idle.async_wait(tuple);
      if (c->dead || ec || !c->streams.empty()) continue;
      c->session.shutdown();  // no new streams here; the writer sends GOAWAY, then drops it
      c->kick.cancel();
      co_return;
    }
  }

  /// A connection ended: its streams fail, it leaves the pool.
  void drop(conn& c) {
    if (c.dead) return;
    c.dead = true;
    std::error_code ignored;
    c.sock.close(ignored);
    c.kick.cancel();
    c.idle.cancel();
    for (auto& [id, r] : c.streams) r->lost = !r->has_head;  // (before fail() reports them reset)
    c.session.fail();
    dispatch(c, c.session.poll());
    for (auto& [id, r] : c.streams) {  // (fail() reported them; any left over too)
      r->failed = true;
      r->poke();
      if (metrics_.streams_active) metrics_.streams_active->dec();
    }
    c.streams.clear();
    if (c.ready && metrics_.connections_active) metrics_.connections_active->dec();
    conns_.erase(std::remove_if(conns_.begin(), conns_.end(), [&](const auto& p) { return p.get() == &c; }), conns_.end());
    wake_waiters();
  }

  /// The fatal alert a backend sent during the handshake (+1; 0: none), per SSL: it names why a
  /// handshake failed where the error does not (no_application_protocol: no h2 on that side).
  static int alert_slot() {
    static const int i = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return i;
  }
  static void keep_alert(const SSL* ssl, int where, int ret) {
    if ((where & SSL_CB_READ_ALERT) != 0 && (ret >> 8) == SSL3_AL_FATAL)
      SSL_set_ex_data(const_cast<SSL*>(ssl), alert_slot(), reinterpret_cast<void*>(static_cast<std::intptr_t>(ret & 0xff) + 1));
  }

  /// The TLS handshake of a connected `c` (SNI, verification, a kept session offered) and the
  /// ALPN check; "" when the connection speaks h2, else why not.
  asio::awaitable<std::string> start_tls(conn& c) {
    c.tls = target_.tls;
    c.sock.start_tls(c.tls->context());
    SSL* ssl = c.sock.tls().native_handle();
    static constexpr unsigned char h2_alpn[] = {2, 'h', '2'};  // this connection offers h2 alone
    if (SSL_set_alpn_protos(ssl, h2_alpn, sizeof h2_alpn) != 0) co_return "cannot offer ALPN h2";
    if (alert_slot() >= 0) SSL_set_info_callback(ssl, &keep_alert);
    const auto ec = co_await net::async_client_handshake(c.sock.tls(), *c.tls, target_.sni, target_.address, opts_.connect_timeout);
    if (ec == net::error::tls_verify_failed) {
      const auto why = net::verify_reason(c.sock.tls());
      co_return ec.message() + (why.empty() ? std::string() : ": " + std::string(why));
    }
    if (ec) {
      const auto alert = alert_slot() >= 0 ? reinterpret_cast<std::intptr_t>(SSL_get_ex_data(ssl, alert_slot())) : 0;
      if (alert == 0) co_return ec.message();
      co_return ec.message() + " (the backend's alert: " + SSL_alert_desc_string_long(static_cast<int>(alert - 1)) + ")";
    }
    const unsigned char* p = nullptr;
    unsigned n = 0;
    SSL_get0_alpn_selected(c.sock.tls().native_handle(), &p, &n);
    const std::string_view selected(reinterpret_cast<const char*>(p), p != nullptr ? n : 0);
    if (selected != "h2")
      co_return "the backend did not select h2 in TLS ALPN (" + (selected.empty() ? std::string("no protocol") : "it chose " + std::string(selected)) + ")";
    co_return std::string();
  }

  /// Connects (and with TLS, the handshake), then reads: events to the streams. The writer
  /// runs beside it.
  asio::awaitable<void> run(std::shared_ptr<h2_upstream> keep, std::shared_ptr<conn> c) {
    (void)keep;
    asio::steady_timer deadline(io_);
    deadline.expires_after(opts_.connect_timeout);
    deadline.async_wait([c](std::error_code ec) {
      if (!ec && !c->ready) {
        c->timed_out = true;
        std::error_code ignored;
        c->sock.close(ignored);
      }
    });
    auto [cec] = co_await c->sock.next_layer().async_connect(target_.address, tuple);
    std::string why = cec ? cec.message() : std::string();
    if (!cec && !c->dead && !stopped_) {
      std::error_code ignored;
      c->sock.next_layer().set_option(asio::ip::tcp::no_delay(true), ignored);
      if (target_.tls) why = co_await start_tls(*c);
    }
    deadline.cancel();
    if (c->timed_out) why = "no connection within connect_timeout";
    if (why.empty() && (c->dead || stopped_)) why = make_error_code(std::errc::operation_canceled).message();
    if (!why.empty()) {
      last_error_ = (target_.tls ? "TLS to the HTTP/2 backend: " : "the HTTP/2 backend: ") + why;
      if (metrics_.connect_failures) metrics_.connect_failures->inc();
      drop(*c);
      co_return;
    }
    c->ready = true;
    last_error_.clear();
    if (metrics_.connections_active) metrics_.connections_active->inc();
    asio::co_spawn(io_, write_loop(shared_from_this(), c), asio::detached);
    asio::co_spawn(io_, idle_loop(shared_from_this(), c), asio::detached);
    wake_waiters();
    std::vector<char> buf(16 * 1024);
    while (!c->dead) {
      auto [ec, n] = co_await c->sock.async_read_some(asio::buffer(buf), tuple);
      if (ec || c->dead) break;
      dispatch(*c, c->session.feed({buf.data(), n}));
      if (c->session.failed()) break;
      c->kick.cancel();
    }
    drop(*c);
  }

  asio::awaitable<void> write_loop(std::shared_ptr<h2_upstream> keep, std::shared_ptr<conn> c) {
    (void)keep;
    std::string out;
    while (!c->dead) {
      dispatch(*c, c->session.poll());
      const auto pending = c->session.pending_output();
      if (pending.empty()) {
        if (c->session.done()) break;
        c->kick.expires_at(asio::steady_timer::time_point::max());
        (void)co_await c->kick.async_wait(tuple);
        continue;
      }
      out.assign(pending);  // copied: the session's buffer grows while the write is under way
      c->session.consume_output(out.size());
      auto [ec, n] = co_await asio::async_write(c->sock, asio::buffer(out), tuple);
      if (ec) break;
      for (auto& [id, r] : c->streams) r->poke();  // body bytes went out: room for more
    }
    drop(*c);
  }

  /// A connection with a free stream; opens one when none has room and the pool may grow;
  /// nullptr: wait (a connection is on its way, or all are full). `avoid`, a connection that
  /// refused the request, is taken only when no other open one has room: a REFUSED_STREAM
  /// leaves it usable and its SETTINGS known (a new connection would start where it did).
  std::shared_ptr<conn> pick(const conn* avoid = nullptr) {
    auto has_room = [&](const conn& c) { return c.ready && c.session.can_submit() && c.session.open_streams() < opts_.max_streams; };
    std::shared_ptr<conn> best;
    bool opening = false;
    for (auto& c : conns_) {
      if (c->dead || c.get() == avoid) continue;
      if (!c->ready) {
        opening = true;
        continue;
      }
      if (!has_room(*c)) continue;
      if (!best || c->session.open_streams() < best->session.open_streams()) best = c;
    }
    if (best) return best;
    for (auto& c : conns_)
      if (c.get() == avoid && !c->dead && has_room(*c)) return c;
    if (opening) return nullptr;
    std::size_t live = 0;
    for (auto& c : conns_) live += !c->dead && !c->session.going_away();
    if (live < opts_.max_connections) {
      auto c = std::make_shared<conn>(io_, opts_.limits);
      conns_.push_back(c);
      if (metrics_.connections) metrics_.connections->inc();
      asio::co_spawn(io_, run(shared_from_this(), c), asio::detached);
    }
    return nullptr;
  }

  /// Waits until `r` changes or the response timeout passes; false: timed out.
  asio::awaitable<bool> wait(request_state& r) { return r.wake.wait(opts_.response_timeout); }

  static bool is_grpc(const std::vector<codec::h2::response_field>& fields) {
    bool grpc = false, status = false;
    for (const auto& f : fields) {
      if (f.name == "content-type") grpc = f.value.starts_with("application/grpc");
      if (f.name == "grpc-status") status = true;
    }
    return grpc && status;
  }

  static void append_fields(std::string& out, const auto& fields) {
    for (const auto& f : fields) {
      out += f.name;
      out += ": ";
      out += f.value;
      out += "\r\n";
    }
  }

  /// One loopback connection from the gateway: requests one after another (keep-alive).
  asio::awaitable<void> serve(std::shared_ptr<h2_upstream> keep, asio::ip::tcp::socket s) {
    (void)keep;
    namespace http1 = codec::http1;
    standin::reader in(s);
    std::string method, path, authority;
    std::vector<codec::h2::response_field> fields;
    for (;;) {
      // 1. The head.
      if (!co_await in.next_head("the HTTP/2 stand-in")) co_return;
      const auto& h = in.parser().head();
      const http1::message_info info = in.parser().info();
      method.assign(h.method);
      path.assign(h.target);
      authority.clear();
      fields.clear();
      for (const auto& f : h.fields) {
        if (http1::detail::iequals(f.name, "host")) authority.assign(f.value);
        else fields.push_back({std::string(f.name), std::string(f.value)});
      }
      fields.push_back({"te", "trailers"});  // this path carries trailers both ways
      if (authority.empty()) authority = target_.authority;
      in.consume_head();
      const bool has_body = info.chunked || info.content_length > 0;

      // The request's state, let go of however the exchange ends.
      request_state r(io_);
      struct unregister {
        h2_upstream* up;
        request_state* r;
        ~unregister() {
          up->waiting_.erase(std::remove(up->waiting_.begin(), up->waiting_.end(), r), up->waiting_.end());
          if (r->c && !r->c->dead) {
            if (auto it = r->c->streams.find(r->id); it != r->c->streams.end()) up->forget(*r->c, it);
            r->c->session.release(r->id);  // reset when still open: the gateway went away
            r->c->kick.cancel();
          }
          up->wake_waiters();
        }
      } guard{this, &r};
      if (metrics_.requests) metrics_.requests->inc();
      auto fail = [&](unsigned status, std::string_view why) -> asio::awaitable<void> {
        if (metrics_.failures) metrics_.failures->inc();
        (void)co_await asio::async_write(s, asio::buffer(standin::simple_response(status, why)), tuple);
      };
      const auto give_up = std::chrono::steady_clock::now() + opts_.response_timeout;
      // What a retry replays: the body read so far and its trailers, while it is all held.
      std::string held;
      std::vector<codec::h2::response_field> held_trailers;
      bool replayable = true, body_done = !has_body, retried = false;
      std::shared_ptr<conn> avoid;  // (held: a new connection cannot take its address)
      if (!has_body) {
        auto pr = in.parse();
        if (pr.what == http1::event::message_complete) in.consume(pr.consumed);
      }
      for (;;) {  // one attempt, or two when the backend refused the first unprocessed
        // 2. A stream, then the request (and, on a retry, the body held).
        for (;;) {
          if (auto c = pick(avoid.get())) {
            auto id = c->session.submit({method, target_.tls ? "https" : "http", authority, path}, fields, !has_body);
            if (id) {
              r.c = c;
              r.id = *id;
              c->streams.emplace(*id, &r);
              if (metrics_.streams_active) metrics_.streams_active->inc();
              c->kick.cancel();
              break;
            }
            co_await fail(502, "the HTTP/2 backend refused the request's fields");
            co_return;
          }
          if (waiting_.size() >= opts_.max_queued) {
            co_await fail(503, "too many requests waiting for the HTTP/2 backend");
            co_return;
          }
          if (std::chrono::steady_clock::now() >= give_up) {
            co_await fail(504, "no HTTP/2 stream to the backend in time");
            co_return;
          }
          waiting_.push_back(&r);
          (void)co_await wait(r);
          waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), &r), waiting_.end());
          if (conns_.empty() && !last_error_.empty()) {  // the connection this request waited for failed
            co_await fail(502, last_error_);
            co_return;
          }
        }
        if (!held.empty()) (void)r.c->session.send_data(r.id, held);
        if (has_body && body_done) (void)r.c->session.end_stream(r.id, held_trailers);

        // 3. The request body, bounded by what the backend's window has not taken.
        while (!body_done && !r.failed) {
          auto pr = in.parse();
          switch (pr.what) {
            case http1::event::body:
              if (replayable && !r.has_head && held.size() + pr.data.size() <= opts_.max_body_buffer) {
                held.append(pr.data);
              } else {
                replayable = false;  // more than is held, or the answer began: no retry from here
                held.clear();
              }
              (void)r.c->session.send_data(r.id, pr.data);
              in.consume(pr.consumed);
              r.c->kick.cancel();
              while (!r.failed && !r.c->dead && r.c->session.queued(r.id) > opts_.max_body_buffer)
                if (!co_await wait(r)) break;
              break;
            case http1::event::need_more:
              in.consume(pr.consumed);
              if (!co_await in.read_more()) co_return;
              break;
            case http1::event::message_complete:
              for (const auto& f : in.parser().trailers()) held_trailers.push_back({std::string(f.name), std::string(f.value)});
              (void)r.c->session.end_stream(r.id, held_trailers);
              in.consume(pr.consumed);
              r.c->kick.cancel();
              body_done = true;
              break;
            default:
              co_return;  // a broken body from the gateway: drop the connection (the stream is reset)
          }
        }

        // 4. The response head.
        while (!r.has_head && !r.failed)
          if (!co_await wait(r)) {
            co_await fail(504, "the HTTP/2 backend did not answer in time");
            co_return;
          }
        if (r.has_head) break;
        const bool lost = r.lost && !r.refused();
        if ((r.refused() || (lost && health::idempotent(method))) && !retried && replayable) {
          // Not processed (RFC 9113 §8.7), or idempotent: once more, where pick() finds room.
          retried = true;
          if (!r.c->dead) r.c->session.release(r.id);  // (closed already: nothing is sent)
          avoid = std::move(r.c);
          r.id = -1;
          r.failed = r.ended = r.lost = false;
          r.reset_code = codec::h2::code::no_error;
          r.body.clear();
          if (metrics_.retries) metrics_.retries->inc();
          continue;
        }
        co_await fail(502, r.refused() ? "the HTTP/2 backend refused the stream (REFUSED_STREAM) and it could not be sent again"
                           : !lost     ? "the HTTP/2 backend reset the stream"
                           : retried   ? "the HTTP/2 backend's connection ended before an answer (already sent again once)"
                           : !health::idempotent(method)
                               ? "the HTTP/2 backend's connection ended before an answer (not sent again: the method is not idempotent)"
                               : "the HTTP/2 backend's connection ended before an answer and the request could not be sent again");
        co_return;
      }
      held.clear();
      held.shrink_to_fit();
      const auto& resp = r.c->session.response(r.id);
      std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " \r\n";
      const bool head_only = method == "HEAD" || resp.status == 204 || resp.status == 304;
      const bool chunked = !head_only && !resp.content_length;
      // gRPC's Trailers-Only answer (one HEADERS frame with END_STREAM, grpc-status in it) is
      // sent on as its equivalent, a head and trailers: over HTTP/1.1 a field in the head
      // cannot come back as a trailer, and gRPC clients look for the status in trailers.
      const bool trailers_only = chunked && r.ended && r.body.empty() && resp.trailers.empty() && is_grpc(resp.headers);
      std::vector<codec::h2::response_field> moved;
      for (const auto& f : resp.headers) {
        if (f.name == "transfer-encoding" || f.name == "connection") continue;
        if (trailers_only && f.name != "content-type") moved.push_back(f);
        else append_fields(out, std::span(&f, 1));
      }
      if (chunked) out += "transfer-encoding: chunked\r\n";
      out += "\r\n";

      // 5. The body, given back to the backend's window as it is written to the gateway.
      struct source {
        h2_upstream& up;
        request_state& r;
        const std::vector<codec::h2::response_field>* trailers_only;
        std::string& body() { return r.body; }
        bool ended() const { return r.ended; }
        bool failed() const { return r.failed; }
        void credit(std::size_t n) {
          if (r.c->dead) return;
          r.c->session.consume(r.id, n);
          r.c->kick.cancel();
        }
        void trailers(std::string& o) { append_fields(o, trailers_only ? *trailers_only : r.c->session.response(r.id).trailers); }
        asio::awaitable<bool> wait() { return up.wait(r); }
      } src{*this, r, trailers_only ? &moved : nullptr};
      const auto end = co_await standin::write_body(s, std::move(out), chunked, src);
      if (end == standin::body_end::cut && metrics_.failures) metrics_.failures->inc();
      if (end != standin::body_end::complete) co_return;
      if (!info.keep_alive) co_return;
    }
  }

  asio::io_context& io_;
  target target_;
  h2_upstream_options opts_;
  h2_upstream_metrics metrics_;
  standin::listener listener_;
  std::vector<std::shared_ptr<conn>> conns_;
  std::vector<request_state*> waiting_;
  std::string last_error_;  ///< why the last connection attempt failed ("" after a success)
  bool stopped_ = false;
};

}  // namespace rproxy::flow
