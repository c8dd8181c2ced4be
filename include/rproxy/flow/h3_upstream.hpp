// rproxy/flow/h3_upstream.hpp: an HTTP/3 backend as a worker sees it. Per backend and worker,
// a pool of QUIC connections (net/quic/client_connection.hpp + codec/h3/client_session.hpp)
// that carries many requests at once (up to `max_streams` per connection, then another
// connection, up to `max_connections`), opens a new connection when one ends (reconnect), and a
// loopback HTTP/1.1 listener in front of it, which the flow driver connects to in place of the
// backend (flow/upstream_redirect.hpp). So every downstream protocol and every stage works for
// HTTP/3 backends unchanged: the gateway's HTTP/1.1 exchange runs against the stand-in, which
// turns each request into an HTTP/3 request and the response back into HTTP/1.1.
//
//     auto up = std::make_shared<h3_upstream>(worker_io, h3_upstream::target{udp_ep, "backend.example"}, creds);
//     up->listen();                       // 127.0.0.1:0; up->local() is the redirect target
//     ... up->stop();                     // closes the listener and the QUIC connections
//
// Bounds: a request head of at most 64 KiB, request bodies queued at most `max_body_buffer`
// ahead of the server's acknowledgements, responses credited to the server only as the
// gateway reads them (`max_body_buffer` at most), a response timeout; a connection that fails
// its handshake fails the requests waiting for it (502).
// On the stand-in's wire, an HTTP/3 failure before the response head is a 502 (504 on the
// response timeout); after it, the connection is closed mid-body (the gateway sees a reset).
//
// Retries, as for HTTP/2 backends (flow/h2_upstream.hpp): a request without a body goes again
// once when its stream ended before the response head with word that it was not processed
// (H3_REQUEST_REJECTED, a GOAWAY, a connection not ready), whatever its method, or when its QUIC
// connection ended under it (a backend restarted) and it is idempotent (RFC 9110 §9.2.2: GET,
// HEAD, OPTIONS, TRACE, PUT, DELETE). It goes on another connection when the first one is gone.
// A request with a body goes again when all of it is still held: a copy of at most
// `max_body_buffer` bytes, kept until the response head arrives (as for HTTP/2 backends).
//
// Trailers (gRPC), as for HTTP/2 backends (flow/h2_upstream.hpp): every request carries `te:
// trailers`; the backend's trailer section (bounded by codec::h3::client_limits, as a head is)
// comes back as chunked trailers, which the gateway passes on to its clients. A response without
// content-length is chunked so its trailers can follow; one with content-length of at most
// `max_body_buffer` is held whole first, and goes out chunked if trailers came (a larger one
// keeps its content-length, and trailers after it are dropped). gRPC's Trailers-Only answer
// (grpc-status in the only header section) becomes a head and trailers, its equivalent, as an
// HTTP/1.1 head cannot carry trailers. The request's trailers (those the gateway's forwarding
// rules pass, as chunked trailers to the stand-in) go to the backend as a trailing HEADERS frame.
#pragma once

#include <algorithm>
#include <cstdio>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <rproxy/codec/h3/client_session.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/flow/h3_upstream_options.hpp>
#include <rproxy/flow/standin.hpp>
#include <rproxy/health/retry_budget.hpp>
#include <rproxy/flow/wakeup.hpp>
#include <rproxy/net/quic/client_connection.hpp>
#include <rproxy/net/quic/tls.hpp>
#include <rproxy/observe/metrics.hpp>

namespace rproxy::flow {

/// Counters of one backend (shared by its workers; per-worker shards).
struct h3_upstream_metrics {
  observe::counter* connections = nullptr;  ///< QUIC connections opened
  observe::counter* handshake_failures = nullptr;
  observe::counter* requests = nullptr;     ///< requests sent over HTTP/3
  observe::counter* failures = nullptr;     ///< requests that failed (502/504 or a reset mid-body)
  observe::counter* retries = nullptr;      ///< requests sent again (see "Retries" above)
};

/// Held by shared_ptr: each stand-in connection keeps it alive until its coroutine is gone.
class h3_upstream : public std::enable_shared_from_this<h3_upstream> {
public:
  struct target {
    asio::ip::udp::endpoint address;
    std::string server_name;  ///< SNI, :authority when the request has none, and the certificate's name
  };

  h3_upstream(asio::io_context& io, target t, const net::quic::tls_credentials& creds, h3_upstream_options o = {},
              h3_upstream_metrics m = {})
      : io_(io), target_(std::move(t)), creds_(&creds), opts_(o), metrics_(m), listener_(io) {}
  h3_upstream(const h3_upstream&) = delete;
  h3_upstream& operator=(const h3_upstream&) = delete;

  /// Opens the loopback listener (any thread); accepting starts on the worker.
  std::error_code listen() {
    if (auto ec = listener_.open()) return ec;
    asio::post(io_, [self = shared_from_this()] {
      self->listener_.accept([self](asio::ip::tcp::socket s) { asio::co_spawn(self->io_, self->serve(self, std::move(s)), asio::detached); });
    });
    return {};
  }
  const asio::ip::tcp::endpoint& local() const noexcept { return listener_.local(); }

  /// Closes the listener and every QUIC connection (on the worker).
  void stop() {
    asio::post(io_, [self = shared_from_this()] {
      self->stopped_ = true;
      self->listener_.close();
      for (auto& c : self->conns_) c->close();
    });
  }

  /// Live QUIC connections (for tests; on the worker).
  std::size_t connections() const noexcept { return conns_.size(); }

private:
  struct request_state;

  /// The session's handler: events to the requests waiting for them, by tag.
  struct events {
    h3_upstream* up = nullptr;
    bool ready = false, dead = false;
    template <class S>
    void on_ready(S&) {
      ready = true;
      up->wake_waiters();
    }
    template <class S>
    void on_stream_slots(S&) {
      up->wake_waiters();
    }
    template <class S>
    void on_goaway(S&) {
      dead = true;  // no new requests on it; those open finish
      up->wake_waiters();
    }
    template <class S>
    void on_response_head(S&, std::uint64_t tag, codec::h3::response_head& h) {
      if (auto* r = up->find(tag)) {
        r->head = std::move(h);
        r->has_head = true;
        r->wake.notify();
      }
    }
    template <class S>
    void on_response_data(S&, std::uint64_t tag, const std::uint8_t* d, std::size_t n) {
      if (auto* r = up->find(tag)) {
        r->body.append(reinterpret_cast<const char*>(d), n);
        r->wake.notify();
      }
    }
    template <class S>
    void on_response_trailers(S&, std::uint64_t tag, std::vector<codec::h3::field>& t) {
      if (auto* r = up->find(tag)) r->trailers = std::move(t);  // (on_response_end follows: it wakes)
    }
    template <class S>
    void on_response_end(S&, std::uint64_t tag) {
      if (auto* r = up->find(tag)) {
        r->ended = true;
        r->wake.notify();
      }
    }
    template <class S>
    void on_stream_error(S&, std::uint64_t tag, std::error_code ec) {
      if (auto* r = up->find(tag)) {
        r->error = ec;
        r->conn = nullptr;
        r->wake.notify();
      }
    }
    template <class S>
    void on_closed(S& s, std::error_code ec) {
      dead = true;
      if (!ready) {
        if (up->metrics_.handshake_failures) up->metrics_.handshake_failures->inc();
        up->last_error_ = ec;
      }
      (void)s;
      up->wake_waiters();
    }
  };
  using session = codec::h3::client_session<events, net::quic::connection>;
  using conn_type = net::quic::client_connection<session>;

  struct request_state {
    explicit request_state(asio::io_context& io) : wake(io.get_executor()) {}
    wakeup wake;  ///< the connection's events for this request (flow/wakeup.hpp: none is lost)
    conn_type* conn = nullptr;
    std::int64_t sid = -1;
    codec::h3::response_head head;
    bool has_head = false, ended = false;
    std::string body;
    std::vector<codec::h3::field> trailers;
    std::error_code error;
  };

  static bool is_grpc(const std::vector<codec::h3::field>& fields) {
    bool grpc = false, status = false;
    for (const auto& f : fields) {
      if (f.name == "content-type") grpc = f.value.starts_with("application/grpc");
      if (f.name == "grpc-status") status = true;
    }
    return grpc && status;
  }
  static void append_fields(std::string& out, const std::vector<codec::h3::field>& fields) {
    for (const auto& f : fields) {
      out += f.name;
      out += ": ";
      out += f.value;
      out += "\r\n";
    }
  }

  request_state* find(std::uint64_t tag) {
    auto it = requests_.find(tag);
    return it == requests_.end() ? nullptr : it->second;
  }
  void wake_waiters() {
    for (auto* r : waiting_) r->wake.notify();
  }

  /// A connection with room for one more request, opening one when there is none and the pool
  /// may grow; nullptr: wait (a connection is on its way or all are full).
  conn_type* pick(std::error_code& ec) {
    conn_type* best = nullptr;
    std::size_t opening = 0;
    for (auto& c : conns_) {
      auto& ev = c->app().handler();
      if (ev.dead || c->over()) continue;
      if (!ev.ready) {
        ++opening;
        continue;
      }
      const auto open = c->app().open_streams();
      if (open < opts_.max_streams && net::quic::streams_bidi_left(c->quic()) > 0 && (!best || open < best->app().open_streams())) best = c.get();
    }
    if (best) return best;
    std::size_t live = 0;
    for (auto& c : conns_) live += !c->app().handler().dead && !c->over();
    if (opening == 0 && live < opts_.max_connections) {
      auto c = std::make_unique<conn_type>(io_.get_executor(), events{this});
      c->set_released(
          +[](void* up, void* conn) {
            auto& v = static_cast<h3_upstream*>(up)->conns_;
            v.erase(std::remove_if(v.begin(), v.end(), [&](const auto& p) { return p.get() == conn; }), v.end());
          },
          this);
      if (auto e = c->connect(target_.address, *creds_, target_.server_name, opts_.transport)) {
        ec = e;
        return nullptr;
      }
      if (metrics_.connections) metrics_.connections->inc();
      conns_.push_back(std::move(c));
    }
    return nullptr;
  }

  static constexpr auto tuple = asio::experimental::as_tuple(asio::use_awaitable);

  /// Waits until `r` changes or the response timeout passes; false: timed out.
  asio::awaitable<bool> wait(request_state& r) { return r.wake.wait(opts_.response_timeout); }

  /// One loopback connection from the gateway: requests one after another (keep-alive).
  asio::awaitable<void> serve(std::shared_ptr<h3_upstream> keep, asio::ip::tcp::socket s) {
    (void)keep;  // (held by the frame)
    standin::reader in(s);
    for (;;) {
      // 1. The head.
      if (!co_await in.next_head("the HTTP/3 stand-in")) co_return;
      codec::h3::request_head req;
      const auto& h = in.parser().head();
      const codec::http1::message_info info = in.parser().info();
      req.method.assign(h.method);
      req.path.assign(h.target);
      bool te_trailers = false;
      for (const auto& f : h.fields) {
        if (codec::h3::detail::iequals(f.name, "host")) req.authority.assign(f.value);
        else req.headers.push_back({std::string(f.name), std::string(f.value)});
        te_trailers |= codec::h3::detail::iequals(f.name, "te") && codec::h3::detail::iequals(f.value, "trailers");
      }
      if (!te_trailers) req.headers.push_back({"te", "trailers"});  // this path carries trailers back
      if (req.authority.empty()) req.authority = target_.server_name;
      in.consume_head();
      const bool has_body = info.chunked || info.content_length > 0;

      // 2. A connection, then the request.
      request_state r(io_);
      const std::uint64_t tag = next_tag_++;
      requests_.emplace(tag, &r);
      struct unregister {
        h3_upstream* up;
        request_state* r;
        std::uint64_t tag;
        ~unregister() {
          up->requests_.erase(tag);
          up->waiting_.erase(std::remove(up->waiting_.begin(), up->waiting_.end(), r), up->waiting_.end());
          if (r->conn && !r->ended && !r->error) r->conn->app().cancel(r->sid);
          up->wake_waiters();  // a stream slot is free again
        }
      } guard{this, &r, tag};
      if (metrics_.requests) metrics_.requests->inc();
      auto fail = [&](unsigned status, std::string_view why) -> asio::awaitable<void> {
        if (metrics_.failures) metrics_.failures->inc();
        (void)co_await asio::async_write(s, asio::buffer(standin::simple_response(status, why)), tuple);
      };
      const auto give_up = std::chrono::steady_clock::now() + opts_.response_timeout;
      // What a retry replays: the body read so far and its trailers, while it is all held.
      std::string held;
      std::vector<codec::h3::field> held_trailers;
      bool replayable = true, body_done = !has_body;
      if (!has_body) {
        auto pr = in.parse();
        if (pr.what == codec::http1::event::message_complete) in.consume(pr.consumed);
      }
      for (bool retried = false;; retried = true) {  // (a second turn: the request goes again, see Retries)
        for (;;) {
          std::error_code cec;
          if (auto* c = pick(cec)) {
            auto sid = c->app().submit(req, tag, has_body, /*auto_credit=*/false);
            if (sid) {
              r.conn = c;
              r.sid = *sid;
              break;
            }
            if (sid.error() != codec::h3::client_error::not_ready && sid.error() != net::quic::client_error::no_stream) {
              co_await fail(502, sid.error().message());
              co_return;
            }
          }
          if (cec || (conns_.empty() && last_error_)) {
            co_await fail(502, (cec ? cec : last_error_).message());
            co_return;
          }
          if (std::chrono::steady_clock::now() >= give_up) {
            co_await fail(504, "no HTTP/3 connection to the backend in time");
            co_return;
          }
          waiting_.push_back(&r);
          (void)co_await wait(r);
          waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), &r), waiting_.end());
          // a connection that failed its handshake: the next turn of the loop reports it
          bool any_alive = false;
          for (auto& c : conns_) any_alive |= !c->app().handler().dead;
          if (!any_alive && last_error_) {
            co_await fail(502, last_error_.message());
            co_return;
          }
        }
        last_error_ = {};

        // 3. The request body (on a retry, first what is held), bounded by what the server has
        // not acknowledged. The request's trailers (those the gateway's forwarding rules let
        // through) go as the stream's trailing HEADERS frame.
        auto send = [&](std::string_view bytes, bool fin) -> std::error_code {
          if (!r.conn) return {};
          return r.conn->app().send_body(r.sid, bytes, fin, fin ? std::span<const codec::h3::field>(held_trailers) : std::span<const codec::h3::field>());
        };
        if (has_body && (!held.empty() || body_done))
          if (auto ec = send(held, body_done)) {
            co_await fail(502, ec.message());  // (a trailer HTTP/3 cannot carry; the stream is cancelled)
            co_return;
          }
        while (!body_done && !r.error) {
          auto pr = in.parse();
          switch (pr.what) {
            case codec::http1::event::body:
              if (replayable && !r.has_head && held.size() + pr.data.size() <= opts_.max_body_buffer) {
                held.append(pr.data);
              } else {
                replayable = false;  // more than is held, or the answer began: no retry from here
                held.clear();
              }
              (void)send(pr.data, false);
              in.consume(pr.consumed);
              while (r.conn && !r.error && r.conn->app().body_buffered(r.sid) > opts_.max_body_buffer) {
                asio::steady_timer t(io_);  // acknowledgements do not wake us: look again soon
                t.expires_after(std::chrono::milliseconds(2));
                (void)co_await t.async_wait(tuple);
              }
              break;
            case codec::http1::event::need_more:
              in.consume(pr.consumed);
              if (!co_await in.read_more()) co_return;
              break;
            case codec::http1::event::message_complete:
              for (const auto& f : in.parser().trailers()) held_trailers.push_back({std::string(f.name), std::string(f.value)});
              in.consume(pr.consumed);
              body_done = true;
              if (auto ec = send({}, true)) {
                co_await fail(502, ec.message());
                co_return;
              }
              break;
            default:
              co_return;  // a broken body from the gateway: drop the connection (the stream is cancelled)
          }
        }

        // 4. The response head.
        while (!r.has_head && !r.error)
          if (!co_await wait(r)) {
            co_await fail(504, "the HTTP/3 backend did not answer in time");
            co_return;
          }
        if (r.has_head) break;
        const bool unprocessed = r.error == codec::h3::client_error::request_rejected || r.error == codec::h3::client_error::not_ready;
        const bool lost = r.error == codec::h3::client_error::connection_lost;
        if (!retried && replayable && (unprocessed || (lost && health::idempotent(req.method)))) {
          if (metrics_.retries) metrics_.retries->inc();
          r.conn = nullptr;  // (the stream is over: nothing to cancel)
          r.sid = -1;
          r.error = {};
          continue;
        }
        // (A named string: g++ 12 destroys a temporary of a conditional in a co_await twice.)
        std::string why = r.error.message();
        if (lost || unprocessed)
          why += retried       ? " (already sent again once)"
                 : !replayable ? " (not sent again: its body was larger than max_body_buffer)"
                               : " (not sent again: the method is not idempotent)";
        co_await fail(502, why);
        co_return;
      }
      held.clear();  // (an answer came: no retry from here)
      held.shrink_to_fit();
      std::string out = "HTTP/1.1 " + std::to_string(r.head.status) + " \r\n";
      const bool head_only = req.method == "HEAD" || r.head.status == 204 || r.head.status == 304;
      // A body with content-length may still be followed by a trailer section, which HTTP/1.1
      // carries only after a chunked body. So a body that fits what a request may hold
      // (max_body_buffer) is read whole before the head goes, crediting the server as it comes:
      // with trailers it goes out chunked (without its content-length), else as it came. A
      // larger one streams with its content-length, and trailers after it are dropped.
      std::size_t credited_ahead = 0;
      if (!head_only && r.head.content_length && *r.head.content_length <= opts_.max_body_buffer)
        while (!r.ended && !r.error) {
          if (r.conn && r.body.size() > credited_ahead) {
            r.conn->app().consume(r.sid, r.body.size() - credited_ahead);
            credited_ahead = r.body.size();
          }
          if (!co_await wait(r)) break;  // (write_body's own wait reports the timeout)
        }
      // gRPC's Trailers-Only answer: its status fields go out as trailers (gRPC clients look
      // for the status there; over HTTP/1.1 a field of the head cannot come back as one).
      const bool trailers_only = !head_only && r.ended && r.body.empty() && r.trailers.empty() && is_grpc(r.head.headers);
      const bool chunked = !head_only && (!r.head.content_length || !r.trailers.empty() || trailers_only);
      for (auto& f : r.head.headers) {
        if (f.name == "transfer-encoding" || f.name == "connection" || (chunked && f.name == "content-length")) continue;
        if (trailers_only && f.name != "content-type") {
          r.trailers.push_back(std::move(f));
          continue;
        }
        out += f.name;
        out += ": ";
        out += f.value;
        out += "\r\n";
      }
      if (chunked) out += "transfer-encoding: chunked\r\n";
      out += "\r\n";

      // 5. The body, credited to the server as it is written to the gateway.
      struct source {
        h3_upstream& up;
        request_state& r;
        std::string& body() { return r.body; }
        bool ended() const { return r.ended; }
        bool failed() const { return static_cast<bool>(r.error); }
        std::size_t& credited_ahead;  // (bytes credited while the body was held whole)
        void credit(std::size_t n) {
          const auto ahead = std::min(n, credited_ahead);
          credited_ahead -= ahead;
          if (r.conn && n > ahead) r.conn->app().consume(r.sid, n - ahead);
        }
        void trailers(std::string& o) { append_fields(o, r.trailers); }
        asio::awaitable<bool> wait() { return up.wait(r); }
      } src{*this, r, credited_ahead};
      const auto end = co_await standin::write_body(s, std::move(out), chunked, src);
      if (end == standin::body_end::cut && metrics_.failures) metrics_.failures->inc();
      if (end != standin::body_end::complete) co_return;
      if (!info.keep_alive) co_return;
    }
  }

  asio::io_context& io_;
  target target_;
  const net::quic::tls_credentials* creds_;
  h3_upstream_options opts_;
  h3_upstream_metrics metrics_;
  standin::listener listener_;
  std::vector<std::unique_ptr<conn_type>> conns_;
  std::unordered_map<std::uint64_t, request_state*> requests_;
  std::vector<request_state*> waiting_;
  std::uint64_t next_tag_ = 1;
  std::error_code last_error_;
  bool stopped_ = false;
};

}  // namespace rproxy::flow
