// rproxy/flow/ws.hpp: the WebSocket adapter of the flow driver (flow/serve.hpp): a server that
// answers the client itself (no backend).
//
//     flow::ws_hub hub(worker_executors);
//     flow::ws_adapter<> a{.hub = &hub};                     // or ws_adapter<MyDecoder>
//     auto p = rproxy::make_pipeline<flow::ws_protocol<flow::ws_message>>(...stages...);
//     flow::spawn(p, a, std::move(socket), options, eps, done);
//
// What WebSocket adds to the driver:
//   - the hello is the HTTP/1.1 upgrade request (codec/http1 parser, bounded by request_limits
//     and options.hello_timeout), validated by codec/ws/handshake.hpp: a bad one gets its 400,
//     another version 426 with "Sec-WebSocket-Version: 13"; subprotocols and permessage-deflate
//     are negotiated there. on_hello sees it as a codec::http1::request_view (header, cookie,
//     query: what the JWT, Origin and rate-limit stages read). A plain GET / gets `page` (a
//     chat page, say) when one is set; any other request without an upgrade gets 426.
//   - a refusal before the upgrade is an HTTP status (401, 403, 429 + Retry-After ...);
//   - after on_hello (no route, no backend): 101, then each complete message goes through
//     on_message, decoded by the adapter's Decoder (the default hands the pipeline the opcode
//     and bytes; an app's decoder may parse its protocol once, e.g. rooms::ws_decoder). A stage
//     answers through ctx.ws (flow/ws_connection.hpp: a bounded send queue with a slow-consumer
//     policy, gathered writes) and reaches other connections through the hub (flow/ws_hub.hpp).
//     A rejected message closes the connection (1008 for a policy refusal or an over-limit,
//     1011 for `internal`), or, for a rate limit with over_limit = drop, is dropped.
//   - ping is answered with pong; a close is answered with a close echoing its code, then the
//     connection ends; a protocol error (unmasked frame, bad UTF-8, oversized message ...)
//     closes with the codec's code (1002, 1007, 1009). No bytes for idle_timeout: a ping; no
//     answer within another idle_timeout: close 1001.
//   - server frames are not compressed (RFC 7692 allows any message uncompressed): one encoded
//     frame is shared by every recipient; a client's compressed messages are inflated.
//   - after the 101 a connection is a ws_detail::session (flow/ws_session.hpp) driven by
//     callbacks, not a coroutine: idle, it is a readiness wait with no buffer; bytes are read
//     into the worker's buffer and parsed there; the queued frames are written without waiting
//     once the handler is done; the deadlines are entries on the io_context's idle sweep
//     (net/idle_sweep.hpp). In a spawned flow (flow::spawn) the session moves the flow (context,
//     socket) into itself, so a connection is one allocation and no coroutine frame; spawned
//     with std::cref(adapter) it points to the adapter (which then must outlive it) rather than
//     keeping a copy.
//     A synchronous on_message runs inline; an asynchronous one pauses reading until it is done.
//     The socket's executor must be an io_context's (what listeners give).
//   - on a TLS stream (flow::serve with an asio::ssl::stream after its handshake: wss) the
//     session is a coroutine instead (flow/ws_tls_session.hpp) that feeds the same hooks, hub
//     and rooms, so a room does not know which of its members came over TLS.
#pragma once

#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/deferred.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/codec/http1/error.hpp>
#include <rproxy/codec/http1/limits.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/reject.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/codec/ws/handshake.hpp>
#include <rproxy/codec/ws/parser.hpp>
#include <rproxy/flow/options.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/flow/ws_connection.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/flow/ws_settings.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/idle_sweep.hpp>
#include <rproxy/net/relay.hpp>
#include <rproxy/observe/worker_index.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/pipeline/context.hpp>

namespace rproxy::flow {

/// What only the upgrade request's stages use (on_hello). The adapter's reader keeps it and the
/// flow points to it while the hello is read and on_hello runs: a connection held open for
/// hours keeps a pointer for it, not 48 bytes.
struct ws_hello_part {
  std::string_view subprotocol;  ///< the one agreed (empty: none)
  std::string reply;             ///< `replied` in on_hello: the whole HTTP response to send
};

/// One WebSocket connection's flow: what stages read and use.
/// A flow_base (no backend: no route, backend or connect fields); `worker` first, in flow_base's
/// tail padding (160 bytes in all).
struct ws_flow : flow_base {
  std::uint16_t worker = 0;         ///< the worker it runs on (ws_hub's index)
  ws_connection* ws = nullptr;      ///< the connection's sender, from the upgrade to the end of the message loop
  ws_hello_part* hello = nullptr;   ///< during on_hello (ctx.hello->subprotocol, ctx.hello->reply); null after the upgrade
};

/// A complete WebSocket message, as the default decoder gives it to on_message.
struct ws_message {
  codec::ws::opcode op = codec::ws::opcode::text;
  std::string_view data;
};

/// The default decoder: the message as it came.
struct raw_ws_messages {
  using message = ws_message;
  message decode(codec::ws::opcode op, std::string_view data) const { return {op, data}; }
};

template <class Message>
struct ws_protocol {
  using flow = ws_flow;
  using hello = codec::http1::request_view;
  using message = Message;
  using response = std::string_view;  ///< not used: the server answers itself
};

/// Counters of every WebSocket connection of an adapter (plain atomics, read by the app's metrics).
struct ws_stats {
  std::atomic<std::uint64_t> upgrades{0}, handshake_failures{0}, pages{0};
  std::atomic<std::uint64_t> silent{0};  ///< connections that ended before sending a byte (port probes), not handshake failures
  std::atomic<std::uint64_t> messages_in{0}, bytes_in{0}, messages_out{0}, bytes_out{0};
  std::atomic<std::uint64_t> dropped_oldest{0}, dropped_newest{0}, closed_slow{0}, dropped_over_limit{0};
  std::atomic<std::uint64_t> protocol_errors{0}, idle_closes{0};
  std::atomic<std::int64_t> open{0};  ///< connections past the upgrade
  /// What every connection's send queue bumps (ws_connection points to it).
  const ws_send_stats send_stats{&messages_out, &bytes_out, &dropped_oldest, &dropped_newest, &closed_slow};
  ws_send_stats send() const { return send_stats; }
};

namespace ws_detail {
inline void add(std::atomic<std::uint64_t>* c, std::uint64_t n = 1) noexcept {
  if (c) c->fetch_add(n, std::memory_order_relaxed);
}
/// The close code for a message a stage refused.
constexpr std::uint16_t close_code_for(reject_code c) noexcept {
  switch (c) {
    case reject_code::internal: return codec::ws::close_code::internal_error;
    case reject_code::unavailable:
    case reject_code::too_many_connections: return codec::ws::close_code::try_again_later;
    case reject_code::too_large: return codec::ws::close_code::message_too_big;
    default: return codec::ws::close_code::policy_violation;
  }
}
// flow/ws_session.hpp (included at the end of this file): the session on plain TCP.
template <class Adapter, class Owner>
class session;
template <class Flow, class Adapter, bool AdapterOutlives>
struct spawned_owner;
template <class Adapter, class Pipeline, class Ctx, class Handler>
struct awaited_owner;
// flow/ws_tls_session.hpp (included at the end of this file): the session on a TLS stream.
template <class Adapter, class Pipeline, class Ctx, class Stream>
asio::awaitable<std::error_code> run_stream_session(const Adapter&, Pipeline&, Ctx&, Stream&, codec::ws::upgrade_request, std::string);
}  // namespace ws_detail

/// The adapter. Its members are read by every flow; keep it alive as long as they run.
template <class Decoder = raw_ws_messages>
struct ws_adapter {
  static constexpr bool reads_hello = true;
  static constexpr bool has_backend = false;  ///< the server answers itself (a spawned flow keeps no backend socket)
  using message = typename Decoder::message;
  using decoder_type = Decoder;

  Decoder decoder{};
  ws_hub* hub = nullptr;  ///< required
  codec::http1::limits request_limits{.max_start_line = 4096, .max_header_bytes = 8192, .max_header_count = 64};
  codec::ws::parser_options frames{.side = codec::ws::role::server, .max_frame_size = 64 * 1024, .max_message_size = 64 * 1024};
  codec::ws::deflate_options deflate{};
  std::vector<std::string_view> subprotocols{};  ///< most preferred first (the strings must outlive the adapter)
  ws_send_limits send{};
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  ws_over_limit over_limit = ws_over_limit::close;
  std::string_view page{};   ///< served at GET / (text/html); empty: none
  ws_stats* stats = nullptr;
  std::size_t read_buffer = 4096;

  /// The upgrade request, bounded; then the bytes that followed it.
  class reader {
  public:
    explicit reader(const ws_adapter& a)
        : a_(&a),
          cap_(a.request_limits.max_start_line + a.request_limits.max_header_bytes + 4),
          size_(std::min(cap_, first_size)),
          in_(new char[size_]),
          parser_(a.request_limits) {}
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;

    std::span<std::byte> prepare(std::size_t n) {
      if (e_ == size_) grow(e_ + 1);
      n = std::min(n, size_ - e_);
      return {reinterpret_cast<std::byte*>(in_.get() + e_), n};
    }
    void commit(std::size_t n) { e_ += n; }
    void feed(std::string_view early) {
      if (e_ + early.size() > size_) grow(e_ + early.size());
      const auto n = std::min(early.size(), size_ - e_);
      if (n) std::memcpy(in_.get() + e_, early.data(), n);
      e_ += n;
    }
    std::optional<std::chrono::milliseconds> settle_time() const { return std::nullopt; }

    template <class Ctx>
    hello_step next(Ctx& ctx, bool) {
      namespace http1 = codec::http1;
      auto r = parser_.parse(std::string_view(in_.get() + b_, e_ - b_));
      switch (r.what) {
        case http1::event::head:
        case http1::event::upgrade: {
          head_end_ = b_ + r.consumed;
          const auto& h = parser_.head();
          if (!h.fields.has_token("upgrade", "websocket")) return plain(h);
          codec::ws::handshake_options opt{.subprotocols = a_->subprotocols, .deflate = a_->deflate};
          auto up = codec::ws::validate_upgrade(h, opt);
          if (!up) {
            handshake_error_ = up.error();
            return hello_step::fail(make_error_code(std::errc::protocol_error));
          }
          upgrade_ = *up;
          view_.emplace(h);
          hello_part_.subprotocol = upgrade_->subprotocol;
          if constexpr (requires { ctx.hello; }) ctx.hello = &hello_part_;
          return hello_step::ready();
        }
        case http1::event::need_more:
          b_ += r.consumed;
          if (e_ == cap_) return hello_step::fail(make_error_code(http1::error::header_too_large));
          return hello_step::need_more();
        case http1::event::error: return hello_step::fail(parser_.error_code());
        default: return hello_step::fail(make_error_code(std::errc::protocol_error));
      }
    }

    /// Bytes the client has sent so far (0: a port probe, or a client that never spoke).
    std::size_t received() const noexcept { return e_; }
    const codec::http1::request_view& hello() const { return *view_; }
    const codec::ws::upgrade_request& upgrade() const { return *upgrade_; }
    std::optional<codec::ws::handshake_error> handshake_error() const { return handshake_error_; }
    /// What on_hello's stages read and set (ctx.hello points here until the upgrade).
    ws_hello_part& hello_part() noexcept { return hello_part_; }
    /// The bytes after the upgrade request (frames the client sent at once).
    std::string_view rest() const { return {in_.get() + head_end_, e_ - head_end_}; }
    /// Frees the head's buffer (its views die with it).
    void release() {
      view_.reset();
      upgrade_.reset();
      hello_part_ = {};
      in_.reset();
      cap_ = size_ = 0;
      b_ = e_ = head_end_ = 0;
    }

  private:
    /// A request without an upgrade: the page at "/", else 426.
    hello_step plain(const codec::http1::request_head_view& h) {
      namespace http1 = codec::http1;
      const codec::http1::request_view v(h);
      if (!a_->page.empty() && (h.method == "GET" || h.method == "HEAD") && v.path() == "/") {
        ws_detail::add(a_->stats ? &a_->stats->pages : nullptr);
        http1::response_head r{200, "OK"};
        r.fields.add("Content-Type", "text/html; charset=utf-8")
            .add("Content-Length", std::to_string(a_->page.size()))
            .add("Cache-Control", "no-store")
            .add("X-Content-Type-Options", "nosniff")
            .add("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self' ws: wss:")
            .add("Connection", "close");
        auto out = http1::serialize(r);
        if (h.method == "GET") out.append(a_->page);
        return hello_step::answer(std::move(out));
      }
      http1::fields extra;
      extra.add("Upgrade", "websocket").add("Sec-WebSocket-Version", "13");
      return hello_step::answer(http1::make_error_response(426, "this server speaks WebSocket", extra));
    }

    /// The buffer a request starts with: an upgrade request fits (browsers send 0.5-1 KB); a
    /// bigger one grows it up to the limits. While the 101 is written thousands of handshakes
    /// may be in flight, and what they touch stays resident in the heap the sessions then fill.
    static constexpr std::size_t first_size = 1024;

    /// Makes room for `want` bytes (at most cap_): a bigger buffer, the bytes copied, and the
    /// parser restarted on them (its views pointed into the old buffer; a request this size is rare).
    void grow(std::size_t want) {
      if (size_ == cap_) return;
      const std::size_t n = std::min(cap_, std::max(want, size_ * 2));
      std::unique_ptr<char[]> bigger(new char[n]);
      std::memcpy(bigger.get(), in_.get(), e_);
      in_ = std::move(bigger);
      size_ = n;
      parser_ = codec::http1::request_parser(a_->request_limits);
      b_ = 0;
    }

    const ws_adapter* a_;
    std::size_t cap_;   ///< the most a request may take (its limits)
    std::size_t size_;  ///< the buffer's size now
    std::unique_ptr<char[]> in_;  ///< not zeroed: only the bytes a request fills are touched
    std::size_t b_ = 0, e_ = 0, head_end_ = 0;
    codec::http1::request_parser parser_;
    std::optional<codec::http1::request_view> view_;
    std::optional<codec::ws::upgrade_request> upgrade_;
    std::optional<codec::ws::handshake_error> handshake_error_;
    ws_hello_part hello_part_;
  };

  reader make_reader() const { return reader(*this); }

  /// A refusal before the upgrade: an HTTP status.
  template <class Ctx>
  std::string render(Ctx&, const reject_reason& why) const {
    return codec::http1::make_reject_response(why, {}, {.keep_alive = false, .retry_after_s = why.retry_after_s});
  }
  template <class Ctx>
  std::string first_bytes(Ctx&, const reader&) const { return {}; }

  /// `replied` in on_hello: the stage's response (ctx.hello->reply).
  template <class Stream, class Ctx>
  asio::awaitable<std::error_code> answer(Stream& s, Ctx&, reader& r, const options&) const {
    co_return co_await detail::send(s, r.hello_part().reply);
  }

  /// A bad or slow upgrade request: its 400 / 426 / 431 / 408. A connection that sent nothing
  /// (a port probe, a silent client) is counted apart: it attempted no handshake.
  template <class Stream, class Ctx>
  asio::awaitable<void> hello_failed(Stream& s, Ctx&, reader& r, std::error_code ec) const {
    namespace http1 = codec::http1;
    ws_detail::add(stats ? (r.received() == 0 ? &stats->silent : &stats->handshake_failures) : nullptr);
    std::string out;
    if (auto he = r.handshake_error()) out = codec::ws::make_handshake_error_response(*he);
    else if (ec == net::error::idle_timeout) out = http1::make_error_response(408);
    else if (ec.category() == http1::category()) out = http1::make_error_response(http1::status_for(static_cast<http1::error>(ec.value())));
    if (!out.empty()) (void)co_await detail::send(s, out);
  }

  /// A plain session runs on its socket's io_context, and its deadlines on that io_context's
  /// idle sweep, which it reaches through the hub: the hub's executor for this worker must be
  /// the same io_context's.
  void check_executor(asio::ip::tcp::socket& s) const {
    auto* ioc = net::detail::io_context_of(s.get_executor());
    if (!ioc) throw std::logic_error("flow::ws_adapter: the socket's executor must be an io_context's");
    if (hub->sweep(observe::worker_index() % hub->workers()) != &asio::use_service<net::idle_sweep>(*ioc))
      throw std::logic_error("flow::ws_adapter: the hub's executor for this worker must be the socket's io_context's");
  }

  /// After on_hello: the 101, then the message loop until the connection ends, run by a
  /// ws_detail::session (flow/ws_session.hpp: no coroutine frame). Here the flow's coroutine
  /// waits for it.
  template <class Pipeline, class Ctx>
  asio::awaitable<std::error_code> session(Pipeline& p, Ctx& ctx, asio::ip::tcp::socket& s, const options&, reader& r) const {
    check_executor(s);
    if (auto ec = co_await upgrade(s, r)) co_return ec;
    const auto up = r.upgrade();
    std::string early(r.rest());
    ctx.hello = nullptr;
    r.release();  // the head's views end here
    auto token = asio::experimental::as_tuple(asio::use_awaitable);
    auto [ec] = co_await asio::async_initiate<decltype(token), void(std::error_code)>(
        [&](auto handler) {
          using owner = ws_detail::awaited_owner<ws_adapter, Pipeline, Ctx, decltype(handler)>;
          (new ws_detail::session<ws_adapter, owner>(owner(this, p, ctx, s, std::move(handler)), up, early))->start();
        },
        token);
    co_return ec;
  }

  /// The same in a spawned flow (flow::spawn): the session takes the flow over (`h.take()`: it
  /// moves the flow's context and socket into itself, one allocation per connection), and the
  /// flow's coroutine ends: an idle connection holds no coroutine frame. Spawned with
  /// std::cref(adapter), the session points to this adapter; else it keeps a copy.
  template <class Pipeline, class Ctx, class Handoff>
    requires requires(Handoff& h) { h.take(); }
  asio::awaitable<std::error_code> session(Pipeline&, Ctx& ctx, asio::ip::tcp::socket& s, const options&, reader& r, Handoff& h) const {
    check_executor(s);
    if (auto ec = co_await upgrade(s, r)) co_return ec;
    const auto up = r.upgrade();
    ctx.hello = nullptr;  // (the reader, which keeps what it pointed to, stays in the flow's coroutine)
    using flow_type = typename decltype(h.take())::element_type;
    using owner = ws_detail::spawned_owner<flow_type, ws_adapter, Handoff::adapter_outlives>;
    {
      auto f = h.take();  // freed at the end of this block: the session has what it held
      if constexpr (Handoff::adapter_outlives) (new ws_detail::session<ws_adapter, owner>(owner{std::move(*f), {this}}, up, r.rest()))->start();
      else (new ws_detail::session<ws_adapter, owner>(owner{std::move(*f), {*this}}, up, r.rest()))->start();
    }
    r.release();
    co_return std::error_code{};
  }

  /// The same on a TLS stream (asio::ssl::stream, after its handshake: wss): the 101, then a
  /// coroutine session (flow/ws_tls_session.hpp) with the same hooks, hub and deadlines.
  template <class Pipeline, class Ctx, class Stream>
    requires(!std::is_same_v<Stream, asio::ip::tcp::socket>)
  asio::awaitable<std::error_code> session(Pipeline& p, Ctx& ctx, Stream& s, const options&, reader& r) const {
    if (auto ec = co_await upgrade(s, r)) co_return ec;
    const auto up = r.upgrade();
    std::string early(r.rest());
    ctx.hello = nullptr;
    r.release();  // the head's views end here
    co_return co_await ws_detail::run_stream_session(*this, p, ctx, s, up, std::move(early));
  }

private:
  /// Writes the 101 (bounded by write_timeout).
  template <class Stream>
  asio::awaitable<std::error_code> upgrade(Stream& s, reader& r) const {
    const std::string accept = codec::ws::make_accept_response(r.upgrade());
    auto [ec, n] = co_await net::with_deadline(asio::async_write(s, asio::buffer(accept), asio::experimental::deferred), send.write_timeout);
    (void)n;
    if (ec) co_return net::classify(ec, net::side::downstream);
    ws_detail::add(stats ? &stats->upgrades : nullptr);
    co_return std::error_code{};
  }
};


}  // namespace rproxy::flow

// The sessions (plain, then TLS: ws_session.hpp includes ws_tls_session.hpp at its end).
#include <rproxy/flow/ws_session.hpp>
