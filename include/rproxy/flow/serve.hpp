// rproxy/flow/serve.hpp: the one flow driver. Every connection of every app runs through it,
// from accept to close; what a protocol adds is an adapter (flow/l4.hpp, flow/mc.hpp, ...).
//
//     co_await rproxy::flow::serve(pipeline, rproxy::flow::mc_adapter{}, std::move(socket), options);
//
// The life of a flow, each wait bounded in time:
//   1. PROXY header (options.accept; trusted peers only): the real client goes into ctx.client.
//   2. on_accept. A refusal is remembered; an adapter that reads a hello still reads it, for
//      rejected_hello_timeout, so the client is told why in its own protocol.
//   3. The hello, read by the adapter's sans-I/O reader within hello_timeout (malformed or slow:
//      the flow ends; nothing reaches a backend). Adapters without a hello (L4) skip 3 and 4.
//   4. on_hello.
//   5. on_route, then connect within connect_timeout. A retry-safe failure sets
//      ctx.connect_error and on_route runs again (the balancer reports the failed pick and picks
//      another). When max_connect_attempts are spent, on_route runs once more with
//      ctx.out_of_attempts set: it reports the last failed pick and rejects with what the client
//      should be told (a stage that does not reject leaves the driver's `unavailable`).
//   6. on_connect: the backend connection is ready (a stage may still refuse).
//   7. The PROXY header for the backend (ctx.proxy_out, else options.send), the adapter's first
//      bytes (a replayed hello), then the exchange: the byte relay (splice(2) where possible), or
//      the adapter's message loop, which runs on_message / on_response per message.
//   8. on_close for every stage, exactly once, always, with the error that ended the flow.
// A `reject` verdict at any step is rendered by the adapter (a Minecraft disconnect, an HTTP
// status); `replied` means a stage answered (ctx holds the answer): the adapter sends it.
// Every phase is run with one call whatever its hooks are (basic_pipeline::run_phase).
//
// An adapter A (for a pipeline whose context type is Ctx) provides:
//   static constexpr bool reads_hello;            false: no hello (L4): route right after accept
//   std::string render(const Ctx&, const reject_reason&) const;     refusal bytes ("" for none)
//   std::string first_bytes(Ctx&, const reader&) const;             client bytes the backend gets first
//   when reads_hello:
//     using reader = ...;                         one flow's sans-I/O hello reader:
//       std::span<std::byte> prepare(std::size_t); void commit(std::size_t); void feed(std::string_view);
//       hello_step next(Ctx&, bool paused);       paused: the client sent nothing for settle_time()
//       std::optional<std::chrono::milliseconds> settle_time() const;   wait at most this, then next(ctx, true)
//       const hello_type& hello() const;          the message for on_hello (valid once ready)
//     reader make_reader() const;
//     asio::awaitable<std::error_code> answer(Client&, Ctx&, reader&, const options&);
//                                                 after `replied`: send the stage's answer
//     optionally asio::awaitable<void> hello_failed(Client&, Ctx&, reader&, std::error_code);
//                                                 the hello was malformed, too slow or cut: tell the client
//   optionally, to answer the client itself after on_hello (no route, no backend; flow/ws.hpp):
//     asio::awaitable<std::error_code> session(Pipeline&, Ctx&, asio::ip::tcp::socket& client, const options&, reader&);
//     and, in a spawned flow, session(..., reader&, Handoff& h): h.take() hands it the flow
//     (a std::unique_ptr; it calls finish(ec) at the end), so the coroutine ends.
//   optionally, for a message loop instead of the relay:
//     asio::awaitable<exchange_result> exchange(Pipeline&, Ctx&, Client& client,
//         Backend& backend, const std::string& first, const options&, reader&, bool reused);
//     Backend: the adapter's `using backend_stream` (HTTP: net::upstream_stream, plain or TLS),
//     else asio::ip::tcp::socket; with `connect_backend(Ctx&, executor, const options&)`
//     (awaitable<pair<error_code, Backend>>) the adapter makes the connection (TLS: flow/upstream.hpp).
//     It sends `first` to the backend, then runs on_message / on_response per message; its
//     result says whether the client and backend connections may carry another flow.
//
// serve(p, adapter, socket, options) runs one flow per connection (L4, Minecraft);
// spawn(p, adapter, socket, options, eps, done) does the same detached, and once the flow relays
// bytes it keeps no coroutine frame (an idle relayed connection costs little: what the apps use);
// serve(conn, p, adapter, socket, options) runs a flow per hello while the adapter keeps the
// connection (HTTP/1.1 keep-alive), with `conn` running on_accept/on_close for the connection.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/io_context.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/core/block_pool.hpp>
#include <rproxy/core/proxy_mode.hpp>
#include <rproxy/flow/options.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/net/connector.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/detail/reactor_wait.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/idle_sweep.hpp>
#include <rproxy/net/listener.hpp>
#include <rproxy/net/proxy_accept.hpp>
#include <rproxy/net/relay.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

namespace rproxy::flow {

using namespace std::chrono_literals;

/// What an adapter's hello reader says after more bytes (or a pause).
struct hello_step {
  enum class kind { need_more, ready, answer, fail };
  kind what = kind::need_more;
  std::string bytes{};   ///< answer: send these to the client and end the flow
  std::error_code ec{};  ///< fail: why the hello is unusable

  static hello_step need_more() { return {}; }
  static hello_step ready() { return {kind::ready}; }
  static hello_step answer(std::string b) { return {kind::answer, std::move(b)}; }
  static hello_step fail(std::error_code e) { return {kind::fail, {}, e}; }
};

/// What a message loop tells the driver when one flow's exchange is over.
struct exchange_result {
  std::error_code ec;          ///< what ended the flow (none: it completed)
  bool keep_client = false;    ///< another flow may follow on this client connection
  bool keep_backend = false;   ///< the backend connection may carry the next flow
  bool retry_fresh = false;    ///< a reused backend connection was stale and nothing was lost: reconnect and retry
  /// The backend failed (`ec`) before anything reached the client, and the flow's retry policy
  /// lets the request go to another pick: on_route runs again with ctx.connect_error = ec, and
  /// the exchange is called again on the new backend (the adapter keeps what it must replay).
  bool retry_other = false;
};

namespace detail {

constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

/// The TCP socket of a client stream: the socket itself, or a TLS stream's next layer.
template <class Stream>
asio::ip::tcp::socket& tcp_of(Stream& s) noexcept {
  if constexpr (std::is_same_v<Stream, asio::ip::tcp::socket>) return s;
  else return s.next_layer();
}

/// Writes all of `bytes` to the client; errors are the client's (downstream).
template <class Stream>
asio::awaitable<std::error_code> send(Stream& s, std::string_view bytes) {
  if (bytes.empty()) co_return std::error_code{};
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(bytes.data(), bytes.size()), tuple_awaitable);
  (void)n;
  co_return ec ? net::classify(ec, net::side::downstream) : std::error_code{};
}

/// Reads into the adapter's reader until it has a hello, an answer, an error, or the deadline.
template <class Reader, class Ctx, class Stream>
asio::awaitable<hello_step> read_hello(Stream& s, Reader& r, Ctx& ctx,
                                       std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto step = r.next(ctx, false);
    if (step.what != hello_step::kind::need_more) co_return step;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) co_return hello_step::fail(make_error_code(net::error::idle_timeout));
    const auto settle = r.settle_time();
    const bool settling = settle && now + *settle < deadline;  // (a wait of a fixed length: on the idle sweep)
    const auto until = settling ? now + *settle : deadline;
    auto room = r.prepare(2048);
    auto read = [&] { return s.async_read_some(asio::buffer(room.data(), room.size()), asio::experimental::deferred); };
    auto [ec, n] = settling ? co_await net::with_deadline(read(), *settle) : co_await net::with_deadline(read(), deadline);
    if (ec == net::error::idle_timeout) {
      if (settle) {  // the client paused: let the reader settle what it has
        auto settled = r.next(ctx, true);
        if (settled.what != hello_step::kind::need_more) co_return settled;
      }
      if (until == deadline) co_return hello_step::fail(ec);
      continue;
    }
    if (ec) co_return hello_step::fail(net::classify(ec, net::side::downstream));
    r.commit(n);
  }
}

/// A stage's verdict that ends the flow early: the refusal, rendered, or the stage's answer.
/// With `keep`, an adapter that has keep_after_stop(ctx, reader) may keep the client
/// connection for the next flow (HTTP/1.1: a request whose body is absent or already read);
/// *keep says whether it did and the answer went out whole.
template <class Adapter, class Ctx, class Reader, class Client>
asio::awaitable<std::error_code> stop(const Adapter& a, Client& client, Ctx& ctx, Reader& reader,
                                      const verdict& v, const options& o, std::error_code ec = {}, bool* keep = nullptr) {
  bool k = false;
  if constexpr (requires { a.keep_after_stop(ctx, reader); })
    if (keep != nullptr) k = a.keep_after_stop(ctx, reader);
  std::error_code wec;
  if (v.is_reject()) {
    ctx.rejected = v.reason();
    wec = co_await send(client, a.render(ctx, v.reason()));
  } else if constexpr (Adapter::reads_hello) {
    wec = co_await a.answer(client, ctx, reader, o);
  }
  if constexpr (requires { ctx.keep_alive; }) k = k && ctx.keep_alive;  // the answer may have said close
  if (keep != nullptr) *keep = k && !wec;
  co_return v.is_reject() && ec ? ec : wec;  // a refusal reports what led to it; an answer, its write
}

struct no_reader {};

/// The adapter's reader for one flow, made in place (readers need not be movable).
template <class Adapter>
auto make_reader(const Adapter& a) {
  if constexpr (Adapter::reads_hello) return a.make_reader();
  else return no_reader{};
}

/// A connection's start: what steps 1-2 found.
struct accepted {
  std::error_code ec;                     ///< set: end the connection now
  std::optional<reject_reason> refused;   ///< on_accept refused: tell the client after its hello
  std::string early;                      ///< client bytes read with the PROXY header
};

/// Steps 1-2 on the connection's context. (A PROXY header is read on plain TCP clients only: on
/// TLS it would come before the handshake.)
template <class Pipeline, class Adapter, class Client>
asio::awaitable<accepted> accept(Pipeline& p, const Adapter&, typename Pipeline::context_type& ctx,
                                 Client& client, const options& o) {
  accepted out;
  // (Without PROXY protocol on the listener, no call: read_proxy_header's frame, with its
  // 512-byte buffer, would be allocated for every connection only to return at once.)
  if constexpr (std::is_same_v<Client, asio::ip::tcp::socket>) {
    if (o.accept != proxy_accept::none) {
      auto pp = co_await net::read_proxy_header(client, o.accept, o.is_trusted(ctx.client.address()), o.header_timeout);
      if (pp.ec) {
        if (pp.ec == net::proxy_error::bad_signature) ctx.rejected = reject_reason{reject_code::forbidden, "PROXY header from an untrusted peer"};
        out.ec = pp.ec;
        co_return out;
      }
      if (pp.header && pp.header->command == net::proxy_protocol::command::proxy && pp.header->has_addresses()) {
        ctx.client = pp.header->source;
        ctx.local = pp.header->destination;
      }
      out.early = std::move(pp.early);
    }
  }
  if (auto v = co_await run_phase<phase::accept>(p, ctx); !v.is_next()) {
    if (!v.is_reject()) {
      out.ec = make_error_code(std::errc::connection_aborted);  // a stage answered on accept
      ctx.rejected.reset();
      co_return out;
    }
    ctx.rejected = out.refused = v.reason();
  }
  co_return out;
}

/// The stream an adapter's backend connections are: its `backend_stream` (HTTP: plain TCP or
/// TLS, net/upstream_stream.hpp), else a TCP socket (what the byte relay splices).
template <class Adapter>
struct backend_stream_of {
  using type = asio::ip::tcp::socket;
};
template <class Adapter>
  requires requires { typename Adapter::backend_stream; }
struct backend_stream_of<Adapter> {
  using type = typename Adapter::backend_stream;
};
template <class Adapter>
using backend_stream_t = typename backend_stream_of<Adapter>::type;

/// What a kept connection must match besides its endpoint: the flow's TLS settings (a stage's
/// ctx.upstream, flow/upstream.hpp), so a plain connection never carries a TLS flow.
template <class Ctx>
const void* transport_of(const Ctx& ctx) noexcept {
  if constexpr (requires { ctx.upstream->tls; })
    return ctx.upstream != nullptr ? static_cast<const void*>(ctx.upstream->tls) : nullptr;
  else return nullptr;
}

/// A connection to the flow's backend (ctx.backend) within the connect timeout: the adapter's
/// connect_backend (TLS when the flow says so), else a TCP connect.
template <class Adapter, class Ctx>
asio::awaitable<std::pair<std::error_code, backend_stream_t<Adapter>>> connect_backend(const Adapter& a, Ctx& ctx,
                                                                                      const asio::any_io_executor& ex, const options& o) {
  if constexpr (requires { a.connect_backend(ctx, ex, o); }) {
    co_return co_await a.connect_backend(ctx, ex, o);
  } else {
    auto [ec, sock] = co_await net::async_connect(ex, connect_target(o, *ctx.backend), o.connect_timeout, tuple_awaitable);
    co_return std::pair<std::error_code, asio::ip::tcp::socket>{ec, std::move(sock)};
  }
}

/// A backend connection kept between the flows of one client connection (HTTP keep-alive).
template <class Stream = asio::ip::tcp::socket>
struct basic_kept_backend {
  /// A connection kept for less than this goes to a retry-safe request unprobed: a backend does
  /// not time out an idle connection (nor send its 408) that soon, and if it closed it anyway
  /// the request is retried on a fresh connection, with nothing lost. Under load that is every
  /// reuse: one syscall less per request.
  static constexpr std::chrono::milliseconds unprobed_for{250};

  std::optional<Stream> socket;
  asio::ip::tcp::endpoint endpoint{};
  const void* transport = nullptr;  ///< transport_of() the flow that made it
  std::chrono::steady_clock::time_point kept_at{};

  /// The kept connection to `ep`, if it is still open (no EOF or stray bytes waiting): one
  /// peek, which says both (EAGAIN: idle and open); skipped for a `retry_safe` request (bodiless
  /// and idempotent: a stale connection is retried fresh) when the connection was kept less than
  /// unprobed_for ago.
  std::optional<Stream> take(const asio::ip::tcp::endpoint& ep, bool retry_safe = false, const void* via = nullptr) {
    if (!socket || endpoint != ep || transport != via) return drop(), std::nullopt;
    if (!retry_safe || std::chrono::steady_clock::now() - kept_at >= unprobed_for) {
      char probe;  // (over TLS, a byte waiting is a close_notify or a record nobody asked for: not reused either)
      const bool open = ::recv(tcp_of(*socket).native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno == EAGAIN;
      if (!open) return drop(), std::nullopt;
    }
    auto s = std::move(socket);
    socket.reset();
    return s;
  }
  void keep(Stream s, const asio::ip::tcp::endpoint& ep, const void* via = nullptr) {
    socket.emplace(std::move(s));
    endpoint = ep;
    transport = via;
    kept_at = std::chrono::steady_clock::now();
  }
  void drop() {
    std::error_code ignored;
    if (socket) socket->close(ignored);
    socket.reset();
  }
};
using kept_backend = basic_kept_backend<>;
template <class Adapter>
using kept_backend_for = basic_kept_backend<backend_stream_t<Adapter>>;


/// No hand-off: the byte relay is awaited in the flow's coroutine (serve()).
struct no_handoff {};

/// Steps 3-7 for one flow; the caller runs on_close. `keep_client` says whether another flow
/// may follow on the same client connection. With a `handoff`, the byte relay is not awaited:
/// (*handoff)(backend, relay_options) starts it, owning the rest of the flow (spawn()), and
/// run_flow completes at once with no error.
template <class Pipeline, class Adapter, class Reader, class Client, class Handoff = no_handoff>
asio::awaitable<std::error_code> run_flow(Pipeline& p, const Adapter& a, typename Pipeline::context_type& ctx,
                                          Client& client, const options& o, Reader& reader,
                                          const std::optional<reject_reason>& refused, std::string_view early,
                                          kept_backend_for<Adapter>& kept, bool& keep_client, Handoff* handoff = nullptr) {
  keep_client = false;
  // 3, 4. The hello, on_hello.
  if constexpr (Adapter::reads_hello) {
    const auto deadline = std::chrono::steady_clock::now() + (refused ? o.rejected_hello_timeout : o.hello_timeout);
    auto step = co_await read_hello(client, reader, ctx, deadline);
    switch (step.what) {
      case hello_step::kind::ready: break;
      case hello_step::kind::answer:
        if (!refused) co_return co_await send(client, step.bytes);
        [[fallthrough]];
      default:
        if (refused) {
          (void)co_await send(client, a.render(ctx, *refused));
          co_return std::error_code{};
        }
        if constexpr (requires { a.hello_failed(client, ctx, reader, step.ec); })
          co_await a.hello_failed(client, ctx, reader, step.ec);  // e.g. HTTP's 408 or 400
        co_return step.ec;
    }
    ctx.hello_done = std::chrono::steady_clock::now();
    if (refused) co_return co_await send(client, a.render(ctx, *refused));
    if (auto v = co_await run_phase<phase::hello>(p, ctx, reader.hello()); !v.is_next())
      co_return co_await stop(a, client, ctx, reader, v, o, {}, &keep_client);
    // An adapter that answers the client itself (WebSocket): no route, no backend. In a
    // spawned flow it may take the flow over (`handoff->take()`), as the relay does.
    if constexpr (requires { a.session(p, ctx, client, o, reader, *handoff); }) {
      if (handoff) co_return co_await a.session(p, ctx, client, o, reader, *handoff);
    }
    if constexpr (requires { a.session(p, ctx, client, o, reader); })
      co_return co_await a.session(p, ctx, client, o, reader);
  } else if (refused) {
    co_return std::error_code{};
  }

  // A flow with no backend fields (flow_base: a WebSocket session's) ended in the adapter's
  // session above; steps 5-7 exist only for flows that go to a backend (flow_info).
  if constexpr (!std::is_base_of_v<flow_info, typename Pipeline::context_type::flow_type>) {
    co_return std::error_code{};
  } else {
    // 5. on_route and connect (or reuse), failing over on retry-safe errors; 6, 7 after it. An
    // exchange that fails in a way the flow may retry (retry_other) comes back here: the attempts
    // count against the same max_connect_attempts.
    std::optional<backend_stream_t<Adapter>> backend;
    bool reused = false;
    std::error_code ec;
    std::string request;  // the adapter's first bytes, made once (a retry sends them again)
    constexpr bool has_exchange = requires { a.exchange(p, ctx, client, *backend, request, o, reader, false); };
    bool made = false;
    bool retry_safe = false;  // the adapter retries it fresh if a kept connection turns out stale (asked while the head is whole)
    if constexpr (Adapter::reads_hello && requires { a.retry_safe(reader); }) retry_safe = a.retry_safe(reader);
    for (unsigned attempt = 0;;) {
      for (;; ++attempt) {
        ctx.out_of_attempts = ec && attempt >= std::max(1u, o.max_connect_attempts);
        auto v = co_await run_phase<phase::route>(p, ctx);
        if (!v.is_next()) co_return co_await stop(a, client, ctx, reader, v, o, ec, &keep_client);
        if (ctx.out_of_attempts || !ctx.backend) {
          (void)co_await stop(a, client, ctx, reader, reject(reject_code::unavailable), o, {}, &keep_client);
          co_return ec ? ec : make_error_code(net::error::no_endpoints);
        }
        if (auto k = kept.take(*ctx.backend, retry_safe, transport_of(ctx))) {
          backend = std::move(k);
          reused = true;
          ctx.connect_error = {};
          break;
        }
        auto [cec, sock] = co_await connect_backend(a, ctx, client.get_executor(), o);
        ec = cec;
        ctx.connect_error = ec;  // the next on_route reports it against this pick
        if (!ec) {
          backend.emplace(std::move(sock));  // (async_connect set TCP_NODELAY)
          break;
        }
        if (ec != condition::retry_safe) {
          (void)co_await stop(a, client, ctx, reader, reject(reject_code::unavailable), o);
          co_return ec;
        }
      }
      ++attempt;
      if constexpr (requires { ctx.upstream_reused; }) ctx.upstream_reused = reused;

      // 6. on_connect.
      if (auto v = co_await run_phase<phase::connect>(p, ctx); !v.is_next())
        co_return co_await stop(a, client, ctx, reader, v, o);

      // 7. The backend's first bytes, then the exchange.
      std::string first = net::encode_proxy_header(ctx.proxy_out != proxy_send::none ? ctx.proxy_out : o.send, ctx.client, ctx.local);
      if (reused) first.clear();  // the kept connection had its header
      const std::size_t proxy_bytes = first.size();
      if constexpr (Adapter::reads_hello) {
        if (!std::exchange(made, true)) request = a.first_bytes(ctx, reader);
        if (!first.empty() || !has_exchange) first += request;  // (else the exchange sends `request` itself: no copy)
      } else {
        first += early;
      }
      if constexpr (has_exchange) {
        for (;;) {
          auto r = co_await a.exchange(p, ctx, client, *backend, first.empty() ? request : first, o, reader, reused);
          if (r.retry_fresh && reused) {  // the kept connection died under us: once more, fresh
            auto [cec, sock] = co_await connect_backend(a, ctx, client.get_executor(), o);
            if (cec) {
              (void)co_await stop(a, client, ctx, reader, reject(reject_code::unavailable), o);
              co_return cec;
            }
            backend.emplace(std::move(sock));
            reused = false;
            first = net::encode_proxy_header(ctx.proxy_out != proxy_send::none ? ctx.proxy_out : o.send, ctx.client, ctx.local);
            if (!first.empty()) first += request;
            continue;
          }
          if (r.retry_other) {  // another pick: on_route reports this one's failure
            std::error_code ignored;
            backend->close(ignored);
            backend.reset();
            reused = false;
            ec = r.ec;
            ctx.connect_error = ec;
            break;
          }
          keep_client = r.keep_client && !r.ec;
          if (r.keep_backend && !r.ec) kept.keep(std::move(*backend), *ctx.backend, transport_of(ctx));
          co_return r.ec;
        }
        continue;
      } else {
        ctx.bytes_from_client += first.size() - proxy_bytes;
        auto ro = o.relay;
        ro.initial_to_backend = std::move(first);
        ro.close_at_end = true;  // both sockets would be closed right after anyway
        if constexpr (!std::is_same_v<Handoff, no_handoff>) {
          if constexpr (Handoff::relays) {
            if (handoff) {
              (*handoff)(std::move(*backend), std::move(ro));
              co_return std::error_code{};
            }
          }
        }
        auto [rec, stats] = co_await net::async_relay(client, *backend, std::move(ro), tuple_awaitable);
        ctx.bytes_from_client += stats.bytes_client_to_backend;
        ctx.bytes_to_client += stats.bytes_backend_to_client;
        std::error_code nd;
        backend->close(nd);
        tcp_of(client).close(nd);  // (a TCP client: the relay closed it already)
        co_return rec;
      }
    }
  }
}

/// Runs `body` and turns an exception into an error: a bug in one flow must not end the worker.
template <class Body>
asio::awaitable<std::error_code> guarded(Body body) {
  try {
    co_return co_await body();
  } catch (const std::exception&) {
    co_return make_error_code(net::error::flow_aborted);
  }
}

/// The flow's addresses: from accept when the listener gave them, else asked of the socket.
/// A connection's id, unique in the process (the logs' flow_id; the flows of one connection
/// share it).
inline std::uint64_t next_flow_id() noexcept {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

inline void fill(flow_base& f, const asio::ip::tcp::socket& s, const net::accepted_endpoints* eps) {
  f.id = next_flow_id();
  f.started = std::chrono::steady_clock::now();
  f.client_fd = const_cast<asio::ip::tcp::socket&>(s).native_handle();  // (only read: asio's accessor is not const)
  if (eps) {
    f.client = eps->remote;
    f.local = eps->local;
    return;
  }
  std::error_code ec;
  f.client = s.remote_endpoint(ec);
  f.local = s.local_endpoint(ec);
}

template <class Stream>
void end(Stream& client) {
  auto& s = tcp_of(client);
  std::error_code ignored;
  s.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  s.close(ignored);
}

/// An adapter that answers the client itself after the hello and never reaches a backend
/// (flow/ws.hpp declares `static constexpr bool has_backend = false`).
template <class Adapter>
constexpr bool has_backend_v = [] {
  if constexpr (requires { Adapter::has_backend; }) return Adapter::has_backend;
  else return true;
}();

/// The backend slot of a spawned flow whose adapter has no backend: nothing (no socket kept).
struct no_backend_slot {
  bool is_open() const noexcept { return false; }
  void close(std::error_code&) noexcept {}
};

/// spawn(p, std::cref(adapter), ...): the flow refers to the caller's adapter, which must outlive
/// it (a session that takes the flow over keeps a pointer, not a copy); else the flow's copy.
template <class A>
struct adapter_arg {
  using type = A;
  static constexpr bool outlives = false;
  static const A& get(const A& a) noexcept { return a; }
};
template <class A>
struct adapter_arg<std::reference_wrapper<A>> {
  using type = std::remove_const_t<A>;
  static constexpr bool outlives = true;
  static const type& get(const std::reference_wrapper<A>& a) noexcept { return a.get(); }
};

/// A spawned flow's sockets while relayed: on their io_context's own executor type (40 bytes;
/// asio::ip::tcp::socket with an any_io_executor is 88). The flow's coroutine works on an
/// asio::ip::tcp::socket of its own (in its frame, gone once the relay has the flow), moved into
/// the flow's slot with net::detail::move_socket (no system call).
using relayed_socket = asio::basic_stream_socket<asio::ip::tcp, asio::io_context::executor_type>;

template <class Flow>
struct relay_completion;

/// The room a spawned flow keeps in its own block for its relay (net/relay.hpp allocates the
/// relay with its completion handler's associated allocator, which points here): an idle
/// relayed connection holds one block, the flow with its relay in it.
template <class Flow, bool Backend>
struct relay_room {
  using relay_type = net::detail::relay_op<relayed_socket, relayed_socket, relay_completion<Flow>>;
  relay_room() noexcept {}  // (the bytes are the relay's to make: not zeroed)
  alignas(relay_type) std::byte bytes[sizeof(relay_type)];
  bool used = false;
};
template <class Flow>
struct relay_room<Flow, false> {};

/// The relay's allocator in a spawned flow: the flow's room, once (anything else: the heap).
template <class T, class Flow>
struct relay_room_allocator {
  using value_type = T;
  Flow* flow = nullptr;
  explicit relay_room_allocator(Flow* f) noexcept : flow(f) {}
  template <class U>
  relay_room_allocator(const relay_room_allocator<U, Flow>& o) noexcept : flow(o.flow) {}
  T* allocate(std::size_t n) {
    auto& room = flow->relay;
    if (!room.used && n * sizeof(T) <= sizeof(room.bytes) && alignof(T) <= alignof(decltype(room))) {
      room.used = true;
      return reinterpret_cast<T*>(room.bytes);
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t) noexcept {
    if (static_cast<void*>(p) == static_cast<void*>(flow->relay.bytes)) flow->relay.used = false;
    else ::operator delete(p);
  }
  template <class U>
  friend bool operator==(const relay_room_allocator& a, const relay_room_allocator<U, Flow>& b) noexcept {
    return a.flow == b.flow;
  }
};

/// A flow started by spawn(): what lives as long as the connection does. While the bytes are
/// relayed this object, with the relay in its room, is all the connection holds (no coroutine
/// frame, no asio state per socket): one block from a slab, so an idle relayed connection
/// costs little memory (tcp_proxy: 720 bytes). `Backend`: false for an adapter
/// that has none (no backend slot: 40 bytes less per connection; the client socket is then the
/// coroutine's, in the flow from the start, as a session that takes the flow over uses it).
template <class Pipeline, class Done, bool Backend = true>
struct spawned_flow {
  static constexpr bool has_backend = Backend;
  /// The socket the flow's coroutine works on: the flow's own (no backend), else one in the
  /// coroutine's frame until the relay takes the flow (or the flow ends without it).
  using coroutine_client = std::conditional_t<Backend, asio::ip::tcp::socket, no_backend_slot>;
  Pipeline& p;
  typename Pipeline::context_type ctx;
  /// Relayed flows: empty until the relay takes the flow (or the flow ends: see run_spawned).
  std::conditional_t<Backend, relayed_socket, asio::ip::tcp::socket> client;
  /// Open while the relay has the flow (it closes both sockets when it ends: close_at_end).
  [[no_unique_address]] std::conditional_t<Backend, relayed_socket, no_backend_slot> backend;
  Done done;
  /// Where the relay lives once it has the flow (nothing for an adapter with no backend).
  [[no_unique_address]] relay_room<spawned_flow, Backend> relay;

  /// Flows are held by the thousand for long: their blocks come from slabs (core/block_pool.hpp).
  static void* operator new(std::size_t n) { return block_pool<spawned_flow>::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { block_pool<spawned_flow>::deallocate(p, n); }

  /// Step 8: closes what is open, runs on_close, then tells `done`.
  void finish(const std::error_code& ec) {
    std::error_code ignored;
    if constexpr (Backend) {  // (closed by the relay, or empty: run_spawned ended the client)
      backend.close(ignored);
      client.close(ignored);
    } else {
      end(client);
    }
    // Called from the relay's completion, outside any coroutine: a stage's exception here
    // would end the worker's io_context::run(). A bug in one flow must not (as in guarded()).
    try {
      p.close(ctx, ec);
    } catch (const std::exception&) {
    }
    done(ec);
  }
};

/// The relay's completion handler in a spawned flow: it owns the flow.
template <class Flow>
struct relay_completion {
  std::unique_ptr<Flow> f;
  using allocator_type = relay_room_allocator<void, Flow>;
  allocator_type get_allocator() const noexcept { return allocator_type(f.get()); }
  void operator()(const std::error_code& ec, const net::relay_stats& st) {
    auto flow = std::move(f);
    flow->ctx.bytes_from_client += st.bytes_client_to_backend;
    flow->ctx.bytes_to_client += st.bytes_backend_to_client;
    flow->finish(ec);
  }
};

/// run_flow's hand-off in a spawned flow: the relay takes the flow over from the coroutine
/// (or an adapter's session: take()).
template <class Flow, bool AdapterOutlives = false>
struct relay_handoff {
  /// Whether the adapter the flow was spawned with outlives it (spawn(p, std::cref(a), ...)).
  static constexpr bool adapter_outlives = AdapterOutlives;
  /// Whether the relay can take the flow over (else it is awaited in the coroutine).
  static constexpr bool relays = Flow::has_backend;
  std::unique_ptr<Flow>& f;
  typename Flow::coroutine_client& client;  // (relayed flows: the coroutine's client socket)
  /// The flow, for a session that runs it to its end (it calls f->finish(ec)).
  std::unique_ptr<Flow> take() noexcept { return std::move(f); }
  void operator()(asio::ip::tcp::socket backend, net::relay_options ro) {
    Flow& flow = *f;
    net::detail::move_socket(flow.client, client);  // (same io_context: no system call)
    net::detail::move_socket(flow.backend, backend);
    net::async_relay(flow.client, flow.backend, std::move(ro), relay_completion<Flow>{std::move(f)});
  }
};

/// Steps 1-7 of a spawned flow; step 8 here unless the relay took the flow over.
template <class Flow, class AdapterArg>
asio::awaitable<void> run_spawned(std::unique_ptr<Flow> f, typename Flow::coroutine_client own_client, AdapterArg arg,
                                  const options& o) {
  using adapter_type = typename adapter_arg<AdapterArg>::type;
  const adapter_type& a = adapter_arg<AdapterArg>::get(arg);
  using Adapter = adapter_type;
  auto& p = f->p;
  auto& ctx = f->ctx;
  asio::ip::tcp::socket& client = [&]() -> asio::ip::tcp::socket& {
    if constexpr (Flow::has_backend) return own_client;
    else return f->client;
  }();
  auto reader = make_reader(a);
  relay_handoff<Flow, adapter_arg<AdapterArg>::outlives> handoff{f, own_client};
  auto ec = co_await guarded([&]() -> asio::awaitable<std::error_code> {
    auto acc = co_await accept(p, a, ctx, client, o);
    if (acc.ec) co_return acc.ec;
    if constexpr (Adapter::reads_hello) reader.feed(acc.early);
    kept_backend_for<Adapter> kept;
    bool keep_client = false;
    co_return co_await run_flow(p, a, ctx, client, o, reader, acc.refused, acc.early, kept, keep_client, &handoff);
  });
  if (f) {  // else the relay owns the flow now (and ctx, client with it)
    if constexpr (Flow::has_backend) end(client);  // (finish() ends the flow's own otherwise)
    f->finish(ec);
  }
}

}  // namespace detail

/// Serves one accepted client socket through `p` with the protocol adapter `a`: one flow per
/// connection (L4, Minecraft, WebSocket). on_close always runs, once. Completes with the error
/// that ended the flow (none: clean end). `o` must outlive the flow. `eps`: the addresses the
/// listener got with the socket (saves two system calls per connection). `Client`: a TCP
/// socket, or a TLS stream over one (asio::ssl::stream) after its handshake.
template <class Pipeline, class Adapter, class Client>
asio::awaitable<std::error_code> serve(Pipeline& p, const Adapter& a, Client client, const options& o,
                                       std::optional<net::accepted_endpoints> eps = std::nullopt) {
  auto ctx = p.make_context();
  detail::fill(ctx, detail::tcp_of(client), eps ? &*eps : nullptr);
  if constexpr (requires { ctx.tls; }) ctx.tls = !std::is_same_v<Client, asio::ip::tcp::socket>;
  auto reader = detail::make_reader(a);
  auto ec = co_await detail::guarded([&]() -> asio::awaitable<std::error_code> {
    auto acc = co_await detail::accept(p, a, ctx, client, o);
    if (acc.ec) co_return acc.ec;
    if constexpr (Adapter::reads_hello) reader.feed(acc.early);
    detail::kept_backend_for<Adapter> kept;
    bool keep_client = false;
    co_return co_await detail::run_flow(p, a, ctx, client, o, reader, acc.refused, acc.early, kept, keep_client);
  });
  detail::end(client);
  p.close(ctx, ec);
  co_return ec;
}

/// The same as serve(), detached: starts the flow on the socket's executor and returns. `a`: the
/// adapter (copied), or std::cref(adapter) when it outlives the flow (the ws adapter's session
/// then points to it rather than copying what it reads). An adapter with a backend needs the
/// socket on an io_context's executor (std::invalid_argument otherwise). `done`
/// (callable as done(std::error_code)) is called once when the flow has ended, after on_close,
/// and destroyed with it: it may own what the flow needs (`p`, `o`) for that long. Once the
/// flow relays bytes it holds no coroutine frame: the relay's completion finishes it. If the
/// io_context is destroyed first, the flow is destroyed with it, `done` uncalled.
template <class Pipeline, class Adapter, class Done>
void spawn(Pipeline& p, Adapter a, asio::ip::tcp::socket client, const options& o,
           std::optional<net::accepted_endpoints> eps, Done done) {
  constexpr bool backend = detail::has_backend_v<typename detail::adapter_arg<Adapter>::type>;
  using flow_t = detail::spawned_flow<Pipeline, Done, backend>;
  auto ex = client.get_executor();
  std::unique_ptr<flow_t> f;
  if constexpr (backend) {
    auto* ioc = net::detail::io_context_of(ex);
    if (ioc == nullptr) throw std::invalid_argument("rproxy::flow::spawn: the client socket must be on an io_context's executor");
    f.reset(new flow_t{p, p.make_context(), detail::relayed_socket(ioc->get_executor()), detail::relayed_socket(ioc->get_executor()),
                       std::move(done), {}});
    detail::fill(f->ctx, client, eps ? &*eps : nullptr);
    asio::co_spawn(ex, detail::run_spawned(std::move(f), std::move(client), std::move(a), o), asio::detached);
  } else {
    f.reset(new flow_t{p, p.make_context(), std::move(client), {}, std::move(done), {}});
    detail::fill(f->ctx, f->client, eps ? &*eps : nullptr);
    asio::co_spawn(ex, detail::run_spawned(std::move(f), detail::no_backend_slot{}, std::move(a), o), asio::detached);
  }
}

namespace detail {
/// The flows of one client connection after its start (`acc`): a flow per request of `p`
/// while the adapter keeps the connection. The body of the multi-flow serve() below.
template <class ConnCtx, class Pipeline, class Adapter, class Client, class Reader>
asio::awaitable<std::error_code> serve_flows(ConnCtx& cctx, Pipeline& p, const Adapter& a, Client& client,
                                             const options& o, Reader& reader, const accepted& acc) {
  if constexpr (Adapter::reads_hello) reader.feed(acc.early);
  kept_backend_for<Adapter> kept;
  for (std::uint64_t n = 0;; ++n) {
    auto ctx = p.make_context();
    ctx.id = cctx.id;
    ctx.client = cctx.client;
    ctx.local = cctx.local;
    ctx.tls = cctx.tls;
    ctx.client_fd = cctx.client_fd;
    ctx.started = std::chrono::steady_clock::now();
    bool keep_client = false;
    std::error_code fec;
    std::optional<reject_reason> refused = acc.refused;
    if (auto v = co_await run_phase<phase::accept>(p, ctx); !v.is_next() && !refused) {
      if (v.is_reject()) ctx.rejected = refused = v.reason();
    }
    fec = co_await guarded([&]() -> asio::awaitable<std::error_code> {
      co_return co_await run_flow(p, a, ctx, client, o, reader, refused, n == 0 ? std::string_view(acc.early) : std::string_view(),
                                  kept, keep_client);
    });
    p.close(ctx, fec);
    cctx.bytes_from_client += ctx.bytes_from_client;
    cctx.bytes_to_client += ctx.bytes_to_client;
    if (!keep_client || refused) co_return fec;
  }
}
}  // namespace detail

/// Serves one client connection that carries many flows (HTTP/1.1 keep-alive: a flow per
/// request): `conn` runs on_accept and on_close once for the connection (IP filters,
/// connection caps), `p` runs every phase for each flow, while the adapter keeps the connection.
/// A backend connection is kept for the next flow when the adapter's exchange says it may be.
/// `Client`: a TCP socket, or a TLS stream over one (asio::ssl::stream) after its handshake.
template <class ConnPipeline, class Pipeline, class Adapter, class Client>
asio::awaitable<std::error_code> serve(ConnPipeline& conn, Pipeline& p, const Adapter& a, Client client,
                                       const options& o, std::optional<net::accepted_endpoints> eps = std::nullopt) {
  auto cctx = conn.make_context();
  detail::fill(cctx, detail::tcp_of(client), eps ? &*eps : nullptr);
  cctx.tls = !std::is_same_v<Client, asio::ip::tcp::socket>;
  auto reader = detail::make_reader(a);
  auto ec = co_await detail::guarded([&]() -> asio::awaitable<std::error_code> {
    auto acc = co_await detail::accept(conn, a, cctx, client, o);
    if (acc.ec) co_return acc.ec;
    co_return co_await detail::serve_flows(cctx, p, a, client, o, reader, acc);
  });
  detail::end(client);
  conn.close(cctx, ec);
  co_return ec;
}

}  // namespace rproxy::flow
