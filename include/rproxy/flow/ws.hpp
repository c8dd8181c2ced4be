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
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
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
}  // namespace ws_detail

/// The adapter. Its members are read by every flow; keep it alive as long as they run.
template <class Decoder = raw_ws_messages>
struct ws_adapter {
  static constexpr bool reads_hello = true;
  using message = typename Decoder::message;

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
        : a_(&a), in_(a.request_limits.max_start_line + a.request_limits.max_header_bytes + 4), parser_(a.request_limits) {}
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;

    std::span<std::byte> prepare(std::size_t n) {
      n = std::min(n, in_.size() - e_);
      return {reinterpret_cast<std::byte*>(in_.data() + e_), n};
    }
    void commit(std::size_t n) { e_ += n; }
    void feed(std::string_view early) {
      const auto n = std::min(early.size(), in_.size() - e_);
      std::memcpy(in_.data() + e_, early.data(), n);
      e_ += n;
    }
    std::optional<std::chrono::milliseconds> settle_time() const { return std::nullopt; }

    template <class Ctx>
    hello_step next(Ctx& ctx, bool) {
      namespace http1 = codec::http1;
      auto r = parser_.parse(std::string_view(in_.data() + b_, e_ - b_));
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
          if (e_ == in_.size()) return hello_step::fail(make_error_code(http1::error::header_too_large));
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
    std::string_view rest() const { return {in_.data() + head_end_, e_ - head_end_}; }
    /// Frees the head's buffer (its views die with it).
    void release() {
      view_.reset();
      upgrade_.reset();
      std::vector<char>().swap(in_);
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
    std::vector<char> in_;
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
  template <class Ctx>
  asio::awaitable<std::error_code> answer(asio::ip::tcp::socket& s, Ctx& ctx, reader&, const options&) const {
    co_return co_await detail::send(s, ctx.reply);
  }

  /// A bad or slow upgrade request: its 400 / 426 / 431 / 408. A connection that sent nothing
  /// (a port probe, a silent client) is counted apart: it attempted no handshake.
  template <class Ctx>
  asio::awaitable<void> hello_failed(asio::ip::tcp::socket& s, Ctx&, reader& r, std::error_code ec) const {
    namespace http1 = codec::http1;
    ws_detail::add(stats ? (r.received() == 0 ? &stats->silent : &stats->handshake_failures) : nullptr);
    std::string out;
    if (auto he = r.handshake_error()) out = codec::ws::make_handshake_error_response(*he);
    else if (ec == net::error::idle_timeout) out = http1::make_error_response(408);
    else if (ec.category() == http1::category()) out = http1::make_error_response(http1::status_for(static_cast<http1::error>(ec.value())));
    if (!out.empty()) (void)co_await detail::send(s, out);
  }

  /// After on_hello: the upgrade, then the message loop until the connection ends.
  template <class Pipeline, class Ctx>
  asio::awaitable<std::error_code> session(Pipeline& p, Ctx& ctx, asio::ip::tcp::socket& s, const options&, reader& r) const {
    using namespace asio::experimental::awaitable_operators;
    const auto up = r.upgrade();
    codec::ws::parser frames_in(frames);
    if (up.deflate) frames_in.set_deflate(*up.deflate);
    const std::string accept = codec::ws::make_accept_response(up);
    std::string early(r.rest());
    r.release();  // the head's views end here
    // Attached before the 101 goes out, so a shutdown that starts meanwhile reaches it too.
    ws_connection conn(s, send, stats ? stats->send() : ws_send_stats{});
    const std::size_t w = observe::worker_index() % hub->workers();
    hub->attach(w, conn);
    {
      auto [ec, n] = co_await net::with_deadline(asio::async_write(s, asio::buffer(accept), asio::experimental::deferred), send.write_timeout);
      (void)n;
      if (ec) {
        hub->detach(conn.id());
        co_return net::classify(ec, net::side::downstream);
      }
    }
    ws_detail::add(stats ? &stats->upgrades : nullptr);
    if (stats) stats->open.fetch_add(1, std::memory_order_relaxed);
    ctx.ws = &conn;
    ctx.worker = w;
    auto [rec, wec] = co_await (read_loop(p, ctx, s, conn, frames_in, std::move(early)) && conn.run_writer());
    hub->detach(conn.id());
    ctx.ws = nullptr;
    if (stats) stats->open.fetch_sub(1, std::memory_order_relaxed);
    co_return rec ? rec : wec;
  }

private:
  template <class Pipeline, class Ctx>
  asio::awaitable<std::error_code> read_loop(Pipeline& p, Ctx& ctx, asio::ip::tcp::socket& s, ws_connection& c,
                                             codec::ws::parser& ps, std::string early) const {
    namespace ws = codec::ws;
    // The read buffer exists only while bytes are buffered: an idle connection holds none.
    std::vector<char> buf;
    std::size_t b = 0, e = early.size();
    if (!early.empty()) {
      buf.resize(std::max(read_buffer, early.size() + 256));
      std::memcpy(buf.data(), early.data(), early.size());
    }
    std::string msg;
    ws::opcode mop = ws::opcode::text;
    bool ping_out = false;
    for (;;) {
      // Everything buffered.
      for (bool more = true; more;) {
        auto r = ps.parse(std::span<char>(buf.data() + b, e - b));
        switch (r.what) {
          case ws::event::need_more: more = false; break;
          case ws::event::data:
            if (msg.empty()) mop = r.op;
            if (!c.closing()) msg.append(r.data);
            if (r.last) {
              if (!c.closing()) {
                ws_detail::add(stats ? &stats->messages_in : nullptr);
                const auto m = decoder.decode(mop, msg);
                auto v = co_await run_phase<phase::message>(p, ctx, m);
                if (v.is_reject()) {
                  ctx.rejected = v.reason();
                  if (over_limit == ws_over_limit::drop && v.reason().code == reject_code::rate_limited)
                    ws_detail::add(stats ? &stats->dropped_over_limit : nullptr);
                  else
                    c.close(ws_detail::close_code_for(v.reason().code), v.reason().message);
                }
              }
              if (msg.capacity() > 256) std::string().swap(msg);
              else msg.clear();
            }
            break;
          case ws::event::ping: c.pong(r.data); break;
          case ws::event::pong: ping_out = false; break;
          case ws::event::close:
            c.close(r.code == ws::close_code::no_status ? 0 : r.code, {});
            c.peer_closed();
            co_return std::error_code{};
          case ws::event::error:
            ws_detail::add(stats ? &stats->protocol_errors : nullptr);
            c.close(r.code, make_error_code(r.error).message());
            c.peer_closed();  // no more reading: the connection has failed (RFC 6455 §7.1.7)
            co_return make_error_code(r.error);
        }
        b += r.consumed;
      }
      // Read more.
      std::error_code ec;
      std::size_t n = 0;
      if (b == e) {  // nothing buffered: wait without a buffer, then read
        b = e = 0;
        std::vector<char>().swap(buf);
        std::tie(ec) = co_await net::with_deadline(s.async_wait(asio::ip::tcp::socket::wait_read, asio::experimental::deferred), idle_timeout);
        if (!ec) buf.resize(read_buffer);
      } else if (e == buf.size()) {
        std::memmove(buf.data(), buf.data() + b, e - b);
        e -= b;
        b = 0;
      }
      if (!ec) std::tie(ec, n) = co_await net::with_deadline(s.async_read_some(asio::buffer(buf.data() + e, buf.size() - e), asio::experimental::deferred),
                                                             idle_timeout);
      if (ec == net::error::idle_timeout) {
        if (!ping_out && !c.closing()) {
          c.ping();
          ping_out = true;
        } else if (!c.closing()) {
          ws_detail::add(stats ? &stats->idle_closes : nullptr);
          c.close(ws::close_code::going_away, "idle timeout");
        }
        continue;
      }
      if (ec) {
        c.stop();
        co_return net::classify(ec, net::side::downstream);
      }
      ping_out = false;
      e += n;
      ctx.bytes_from_client += n;
      ws_detail::add(stats ? &stats->bytes_in : nullptr, n);
    }
  }
};

}  // namespace rproxy::flow
