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
//   - after the 101 a connection is a ws_detail::session driven by callbacks, not a coroutine:
//     idle, it is a readiness wait with no buffer; bytes are read into the worker's buffer and
//     parsed there; the queued frames are written without waiting once the handler is done; the
//     deadlines are entries on the io_context's idle sweep (net/idle_sweep.hpp). In a spawned
//     flow (flow::spawn) the session takes the flow over, so no coroutine frame stays either.
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
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/idle_sweep.hpp>
#include <rproxy/net/relay.hpp>
#include <rproxy/observe/worker_index.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/pipeline/context.hpp>

namespace rproxy::flow {

/// One WebSocket connection's flow: what stages read and use.
struct ws_flow : flow_info {
  ws_connection* ws = nullptr;   ///< the connection's sender, from the upgrade to the end of the message loop
  std::size_t worker = 0;        ///< the worker it runs on (ws_hub's index)
  std::string_view subprotocol;  ///< the one agreed (empty: none), valid during on_hello
  std::string reply;             ///< `replied` in on_hello: the whole HTTP response to send
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

/// What a rate-limit refusal of a message does.
enum class ws_over_limit : std::uint8_t { close, drop };

/// Counters of every WebSocket connection of an adapter (plain atomics, read by the app's metrics).
struct ws_stats {
  std::atomic<std::uint64_t> upgrades{0}, handshake_failures{0}, pages{0};
  std::atomic<std::uint64_t> silent{0};  ///< connections that ended before sending a byte (port probes), not handshake failures
  std::atomic<std::uint64_t> messages_in{0}, bytes_in{0}, messages_out{0}, bytes_out{0};
  std::atomic<std::uint64_t> dropped_oldest{0}, dropped_newest{0}, closed_slow{0}, dropped_over_limit{0};
  std::atomic<std::uint64_t> protocol_errors{0}, idle_closes{0};
  std::atomic<std::int64_t> open{0};  ///< connections past the upgrade
  ws_send_stats send() {
    return {&messages_out, &bytes_out, &dropped_oldest, &dropped_newest, &closed_slow};
  }
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
template <class Adapter, class Owner>
class session;
template <class Flow>
struct spawned_owner;
template <class Pipeline, class Ctx, class Handler>
struct awaited_owner;
// flow/ws_tls_session.hpp (included at the end of this file): the session on a TLS stream.
template <class Adapter, class Pipeline, class Ctx, class Stream>
asio::awaitable<std::error_code> run_stream_session(const Adapter&, Pipeline&, Ctx&, Stream&, codec::ws::upgrade_request, std::string);
}  // namespace ws_detail

/// The adapter. Its members are read by every flow; keep it alive as long as they run.
template <class Decoder = raw_ws_messages>
struct ws_adapter {
  static constexpr bool reads_hello = true;
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
        : a_(&a), cap_(a.request_limits.max_start_line + a.request_limits.max_header_bytes + 4), in_(new char[cap_]), parser_(a.request_limits) {}
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;

    std::span<std::byte> prepare(std::size_t n) {
      n = std::min(n, cap_ - e_);
      return {reinterpret_cast<std::byte*>(in_.get() + e_), n};
    }
    void commit(std::size_t n) { e_ += n; }
    void feed(std::string_view early) {
      const auto n = std::min(early.size(), cap_ - e_);
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
          if constexpr (requires { ctx.subprotocol; }) ctx.subprotocol = upgrade_->subprotocol;
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
    /// The bytes after the upgrade request (frames the client sent at once).
    std::string_view rest() const { return {in_.get() + head_end_, e_ - head_end_}; }
    /// Frees the head's buffer (its views die with it).
    void release() {
      view_.reset();
      upgrade_.reset();
      in_.reset();
      cap_ = 0;
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

    const ws_adapter* a_;
    std::size_t cap_;
    std::unique_ptr<char[]> in_;  ///< not zeroed: only the pages a request fills become resident
    std::size_t b_ = 0, e_ = 0, head_end_ = 0;
    codec::http1::request_parser parser_;
    std::optional<codec::http1::request_view> view_;
    std::optional<codec::ws::upgrade_request> upgrade_;
    std::optional<codec::ws::handshake_error> handshake_error_;
  };

  reader make_reader() const { return reader(*this); }

  /// A refusal before the upgrade: an HTTP status.
  template <class Ctx>
  std::string render(Ctx&, const reject_reason& why) const {
    return codec::http1::make_reject_response(why, {}, {.keep_alive = false, .retry_after_s = why.retry_after_s});
  }
  template <class Ctx>
  std::string first_bytes(Ctx&, const reader&) const { return {}; }

  /// `replied` in on_hello: the stage's response (ctx.reply).
  template <class Stream, class Ctx>
  asio::awaitable<std::error_code> answer(Stream& s, Ctx& ctx, reader&, const options&) const {
    co_return co_await detail::send(s, ctx.reply);
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

  /// After on_hello: the 101, then the message loop until the connection ends, run by a
  /// ws_detail::session (no coroutine frame). Here the flow's coroutine waits for it.
  template <class Pipeline, class Ctx>
  asio::awaitable<std::error_code> session(Pipeline& p, Ctx& ctx, asio::ip::tcp::socket& s, const options&, reader& r) const {
    if (!net::detail::io_context_of(s.get_executor())) throw std::logic_error("flow::ws_adapter: the socket's executor must be an io_context's");
    if (auto ec = co_await upgrade(s, r)) co_return ec;
    const auto up = r.upgrade();
    std::string early(r.rest());
    r.release();  // the head's views end here
    auto token = asio::experimental::as_tuple(asio::use_awaitable);
    auto [ec] = co_await asio::async_initiate<decltype(token), void(std::error_code)>(
        [&](auto handler) {
          using owner = ws_detail::awaited_owner<Pipeline, Ctx, decltype(handler)>;
          (new ws_detail::session<ws_adapter, owner>(owner{p, ctx, s, std::move(handler)}, *this, up, early))->start();
        },
        token);
    co_return ec;
  }

  /// The same in a spawned flow (flow::spawn): the session takes the flow over (`h.take()`),
  /// and the flow's coroutine ends: an idle connection holds no coroutine frame.
  template <class Pipeline, class Ctx, class Handoff>
    requires requires(Handoff& h) { h.take(); }
  asio::awaitable<std::error_code> session(Pipeline&, Ctx&, asio::ip::tcp::socket& s, const options&, reader& r, Handoff& h) const {
    if (!net::detail::io_context_of(s.get_executor())) throw std::logic_error("flow::ws_adapter: the socket's executor must be an io_context's");
    if (auto ec = co_await upgrade(s, r)) co_return ec;
    const auto up = r.upgrade();
    const std::string_view early = r.rest();
    using owner = ws_detail::spawned_owner<typename decltype(h.take())::element_type>;
    (new ws_detail::session<ws_adapter, owner>(owner{h.take()}, *this, up, early))->start();
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

namespace ws_detail {

/// A session's owner in a spawned flow: the flow itself (context, socket, on_close and done).
template <class Flow>
struct spawned_owner {
  std::unique_ptr<Flow> f;
  auto& pipeline() noexcept { return f->p; }
  auto& ctx() noexcept { return f->ctx; }
  asio::ip::tcp::socket& socket() noexcept { return f->client; }
  void finish(const std::error_code& ec) { f->finish(ec); }  // on_close, then done
};

/// A session's owner in a flow's coroutine (flow::serve): it resumes the coroutine.
template <class Pipeline, class Ctx, class Handler>
struct awaited_owner {
  Pipeline& p;
  Ctx& c;
  asio::ip::tcp::socket& s;
  Handler h;
  Pipeline& pipeline() noexcept { return p; }
  Ctx& ctx() noexcept { return c; }
  asio::ip::tcp::socket& socket() noexcept { return s; }
  void finish(const std::error_code& ec) { std::move(h)(ec); }
};

/// This thread's read buffer: a session borrows it while it reads and parses, so an idle
/// connection holds none (bytes of an unfinished frame header are kept by the session).
inline std::span<char> read_scratch(std::size_t n) {
  thread_local std::unique_ptr<char[]> buf;
  thread_local std::size_t size = 0;
  if (size < n) {
    buf.reset(new char[n]);
    size = n;
  }
  return {buf.get(), n};
}

/// One WebSocket connection after the upgrade, driven by callbacks: a read-readiness wait
/// (no buffer) while idle, the thread's read buffer while bytes move, the writer flushed in a
/// posted handler after each batch of messages, and every deadline (idle ping, idle close,
/// stalled write, the peer's close) on the io_context's idle sweep (one timer per worker).
/// Pending handlers hold a reference each; the last one gone deletes the session, after
/// finishing the flow (hub detach, on_close) when both sides have ended.
template <class Adapter, class Owner>
class session final : private net::idle_sweep::entry {
  using clock = std::chrono::steady_clock;

public:
  session(Owner o, const Adapter& a, const codec::ws::upgrade_request& up, std::string_view early)
      : owner_(std::move(o)), decoder_(a.decoder), hub_(a.hub), stats_(a.stats), idle_timeout_(a.idle_timeout),
        read_size_(a.read_buffer), over_limit_(a.over_limit),
        conn_(owner_.socket(), a.send, a.stats ? a.stats->send() : ws_send_stats{}), parser_(a.frames), held_(early) {
    if (up.deflate) parser_.set_deflate(*up.deflate);
  }
  session(const session&) = delete;
  session& operator=(const session&) = delete;
  ~session() {
    if (sweep_) sweep_->remove(*this);
  }

  void start() {
    auto& s = owner_.socket();
    sweep_ = &asio::use_service<net::idle_sweep>(*net::detail::io_context_of(s.get_executor()));  // (checked by the adapter)
    std::error_code ignored;
    s.non_blocking(true, ignored);  // reads and writes are tried at once; would_block means wait
    conn_.set_notify(&session::notified, this);
    worker_ = observe::worker_index() % hub_->workers();
    hub_->attach(worker_, conn_);  // (closes it at once if a shutdown has begun)
    auto& ctx = owner_.ctx();
    ctx.ws = &conn_;
    ctx.worker = worker_;
    if (stats_) stats_->open.fetch_add(1, std::memory_order_relaxed);
    arm(lane::idle);
    // A first read at once: frames sent with the upgrade (held_), or while the 101 was written.
    asio::post(s.get_executor(), read_handler{keep(this)});
  }

private:
  enum class lane : std::uint8_t { none, idle, write, close };
  enum class step : std::uint8_t { more, paused, ended };

  /// A pending handler's reference to the session.
  struct keep {
    session* s;
    explicit keep(session* p) noexcept : s(p) { ++s->refs_; }
    keep(keep&& o) noexcept : s(std::exchange(o.s, nullptr)) {}
    keep& operator=(keep&&) = delete;
    ~keep() {
      if (s && --s->refs_ == 0) s->last_ref();
    }
  };
  struct read_handler {
    keep k;
    void operator()(std::error_code ec = {}) { k.s->readable(ec); }
  };
  struct flush_handler {
    keep k;
    void operator()(std::error_code ec = {}) { k.s->write(ec); }
  };

  // --- reading ---------------------------------------------------------------------------
  void wait_read() {
    owner_.socket().async_wait(asio::ip::tcp::socket::wait_read, net::detail::exactly_allocated<read_handler>{read_handler{keep(this)}});
  }

  void readable(std::error_code ec) {
    if (reader_done_) return;
    if (ec) return end_reader(net::classify(ec, net::side::downstream), true);
    auto& s = owner_.socket();
    const std::size_t room = std::max<std::size_t>(read_size_, 256);
    auto buf = read_scratch(held_.size() + room);
    std::size_t e = held_.size();
    std::memcpy(buf.data(), held_.data(), e);
    clear_held();
    for (int rounds = 0;; ++rounds) {
      std::error_code rec;
      const std::size_t want = buf.size() - e;
      std::size_t n = s.read_some(asio::buffer(buf.data() + e, want), rec);
      if (rec == asio::error::would_block || rec == asio::error::try_again) {
        rec.clear();
        n = 0;
      }
      if (n > 0) {
        e += n;
        owner_.ctx().bytes_from_client += n;
        ws_detail::add(stats_ ? &stats_->bytes_in : nullptr, n);
        ping_out_ = false;
        if (lane_ == lane::idle) sweep_->touch(*this, clock::now());
      }
      std::size_t b = 0;
      const auto st = parse(buf.data(), b, e);
      if (st == step::ended) return;
      if (st == step::paused) return hold(buf.data() + b, e - b);  // an asynchronous on_message: it resumes
      std::memmove(buf.data(), buf.data() + b, e - b);
      e -= b;
      if (rec) return end_reader(net::classify(rec, net::side::downstream), true);
      if (n < want) break;  // drained (one thread per io_context: later bytes bring a new edge)
      if (rounds == 16) {   // a fast sender: let the worker's other connections run
        hold(buf.data(), e);
        return asio::post(s.get_executor(), read_handler{keep(this)});
      }
    }
    hold(buf.data(), e);
    wait_read();
  }

  /// Parses [b, e) of `buf`, running each complete message through on_message.
  step parse(char* buf, std::size_t& b, std::size_t e) {
    namespace ws = codec::ws;
    for (;;) {
      auto r = parser_.parse(std::span<char>(buf + b, e - b));
      switch (r.what) {
        case ws::event::need_more: b += r.consumed; return step::more;
        case ws::event::data:
          if (msg_.empty()) mop_ = r.op;
          if (conn_.closing()) {
            if (r.last) clear_msg();
            break;
          }
          if (r.last && msg_.empty()) {  // a whole message in the buffer: no copy
            b += r.consumed;
            if (!message(r.data)) return step::ended;
            if (paused_) return step::paused;
            continue;
          }
          msg_.append(r.data);
          if (r.last) {
            b += r.consumed;
            if (!message(msg_)) return step::ended;
            if (paused_) return step::paused;
            clear_msg();
            continue;
          }
          break;
        case ws::event::ping: conn_.pong(r.data); break;
        case ws::event::pong: ping_out_ = false; break;
        case ws::event::close:
          conn_.close(r.code == ws::close_code::no_status ? 0 : r.code, {});
          end_reader({}, false);  // the writer ends after our close
          return step::ended;
        case ws::event::error:
          ws_detail::add(stats_ ? &stats_->protocol_errors : nullptr);
          conn_.close(r.code, make_error_code(r.error).message());
          end_reader(make_error_code(r.error), false);  // no more reading: the connection has failed (RFC 6455 §7.1.7)
          return step::ended;
      }
      b += r.consumed;
      if (paused_) return step::paused;
    }
  }

  /// One message through on_message. False: the flow ended (a stage threw).
  bool message(std::string_view data) {
    ws_detail::add(stats_ ? &stats_->messages_in : nullptr);
    using pipeline_type = std::remove_reference_t<decltype(owner_.pipeline())>;
    if constexpr (pipeline_type::is_async(phase::message)) {
      if (data.data() != msg_.data()) msg_.assign(data);
      paused_ = true;
      asio::co_spawn(owner_.socket().get_executor(), run_async(this), [k = keep(this)](std::exception_ptr e, verdict v) {
        k.s->resumed(e, v);
      });
      return true;
    } else {
      try {
        on_verdict(owner_.pipeline().message(owner_.ctx(), decoder_.decode(mop_, data)));
      } catch (const std::exception&) {
        conn_.abort();
        end_reader(make_error_code(net::error::flow_aborted), true);
        return false;
      }
      return true;
    }
  }
  static asio::awaitable<verdict> run_async(session* s) {
    const auto m = s->decoder_.decode(s->mop_, s->msg_);
    co_return co_await s->owner_.pipeline().message(s->owner_.ctx(), m);
  }
  void resumed(std::exception_ptr e, verdict v) {
    paused_ = false;
    clear_msg();
    if (e) {
      conn_.abort();
      return end_reader(make_error_code(net::error::flow_aborted), true);
    }
    on_verdict(v);
    readable({});  // what was read behind the message (held_), then the socket
  }

  void on_verdict(const verdict& v) {
    if (!v.is_reject()) return;
    owner_.ctx().rejected = v.reason();
    if (over_limit_ == ws_over_limit::drop && v.reason().code == reject_code::rate_limited)
      ws_detail::add(stats_ ? &stats_->dropped_over_limit : nullptr);
    else
      conn_.close(ws_detail::close_code_for(v.reason().code), v.reason().message);
  }

  void hold(const char* p, std::size_t n) {
    if (n) held_.assign(p, n);
  }
  void clear_held() {
    if (held_.capacity() > 15) std::string().swap(held_);
    else held_.clear();
  }
  void clear_msg() {
    if (msg_.capacity() > 256) std::string().swap(msg_);
    else msg_.clear();
  }

  /// The reader is done: with `stop`, the writer stops too (an error, EOF); else it ends once
  /// our close frame is out (the close handshake).
  void end_reader(std::error_code ec, bool stop) {
    if (reader_done_) return;
    reader_done_ = true;
    rec_ = ec;
    clear_msg();
    clear_held();
    if (stop) conn_.stop();
    else conn_.peer_closed();
  }

  // --- writing -----------------------------------------------------------------------------
  static void notified(void* p) {
    auto* s = static_cast<session*>(p);
    if (s->write_waiting_) return;  // the writable wait flushes when it completes
    asio::post(s->owner_.socket().get_executor(), flush_handler{keep(s)});
  }

  void write(std::error_code wait_ec) {
    write_waiting_ = false;
    if (writer_done_) return;
    if (wait_ec && wait_ec != asio::error::operation_aborted) {
      conn_.abort();
      return end_writer(net::classify(wait_ec, net::side::downstream));
    }
    std::error_code ec;
    switch (conn_.flush(ec)) {
      case ws_connection::write_state::done: return end_writer(ec ? net::classify(ec, net::side::downstream) : std::error_code{});
      case ws_connection::write_state::idle: arm(lane::idle); return;
      case ws_connection::write_state::closing: arm(lane::close); return;
      case ws_connection::write_state::blocked:
        arm(lane::write);
        write_waiting_ = true;
        owner_.socket().async_wait(asio::ip::tcp::socket::wait_write, net::detail::exactly_allocated<flush_handler>{flush_handler{keep(this)}});
        return;
    }
  }

  void end_writer(std::error_code ec) {
    writer_done_ = true;
    if (!wec_) wec_ = ec;
    arm(lane::none);
    if (!reader_done_) {  // the writer ended first (a stall, a write error, the close handshake timed out)
      std::error_code ignored;
      owner_.socket().cancel(ignored);  // the read wait completes
    }
  }

  // --- deadlines ---------------------------------------------------------------------------
  /// Puts the session on one lane of the sweep (idle: reads; write: a stalled write; close:
  /// waiting for the peer's close frame), or on none.
  void arm(lane l) {
    if (lane_ == l && l != lane::write) return;
    sweep_->remove(*this);
    lane_ = l;
    const auto now = clock::now();
    switch (l) {
      case lane::none: break;
      case lane::idle: sweep_->add(*this, idle_timeout_, now, &session::idle_expired); break;
      case lane::write: sweep_->add(*this, conn_.limits().write_timeout, now, &session::write_expired); break;
      case lane::close: sweep_->add(*this, conn_.limits().close_timeout, now, &session::close_expired); break;
    }
  }
  static session& of(net::idle_sweep::entry& e) noexcept { return static_cast<session&>(e); }
  /// No bytes for idle_timeout: a ping; none for another: close 1001.
  static void idle_expired(net::idle_sweep::entry& e) {
    auto& s = of(e);
    s.lane_ = lane::none;
    if (!s.conn_.closing()) {
      if (!s.ping_out_) {
        s.conn_.ping();
        s.ping_out_ = true;
      } else {
        ws_detail::add(s.stats_ ? &s.stats_->idle_closes : nullptr);
        s.conn_.close(codec::ws::close_code::going_away, "idle timeout");
      }
    }
    if (s.lane_ == lane::none) s.arm(lane::idle);
  }
  /// A write without progress for write_timeout, or no close frame from the peer within
  /// close_timeout: the connection ends (the socket closed: the pending waits complete).
  static void write_expired(net::idle_sweep::entry& e) {
    of(e).wec_ = make_error_code(net::error::idle_timeout);
    of(e).expired();
  }
  static void close_expired(net::idle_sweep::entry& e) { of(e).expired(); }
  void expired() {
    lane_ = lane::none;
    conn_.abort();
    if (!write_waiting_ && !writer_done_) end_writer({});
  }

  // --- the end -----------------------------------------------------------------------------
  void last_ref() {
    if (reader_done_ && writer_done_) {
      // Finished: leave the hub, then on_close (the owner), then the session goes.
      hub_->detach(conn_.id());
      owner_.ctx().ws = nullptr;
      if (stats_) stats_->open.fetch_sub(1, std::memory_order_relaxed);
      const auto ec = rec_ ? rec_ : wec_;
      Owner o = std::move(owner_);
      delete this;
      o.finish(ec);
    } else {
      delete this;  // the io_context is being destroyed with the flow: no on_close (as flow::spawn)
    }
  }

  Owner owner_;
  typename Adapter::decoder_type decoder_;  // (the adapter's members are copied: a flow's copy of it ends with the upgrade)
  ws_hub* hub_;
  ws_stats* stats_;
  std::chrono::milliseconds idle_timeout_;
  std::uint32_t read_size_;
  ws_over_limit over_limit_;
  lane lane_ = lane::none;
  codec::ws::opcode mop_ = codec::ws::opcode::text;
  bool ping_out_ = false, paused_ = false, reader_done_ = false, writer_done_ = false, write_waiting_ = false;
  std::uint32_t refs_ = 0;
  std::size_t worker_ = 0;
  net::idle_sweep* sweep_ = nullptr;
  ws_connection conn_;
  codec::ws::parser parser_;
  std::string msg_;   ///< a message that came in pieces
  std::string held_;  ///< read bytes not parsed yet (an unfinished header or control frame)
  std::error_code rec_, wec_;
};

}  // namespace ws_detail

}  // namespace rproxy::flow

#include <rproxy/flow/ws_tls_session.hpp>
