// rproxy/flow/ws_tls_session.hpp: a WebSocket connection after the upgrade on a stream that is
// not a plain TCP socket (asio::ssl::stream: wss), run by coroutines. flow/ws.hpp's adapter
// starts it for such a stream; plain TCP keeps its callback session (flow/ws.hpp).
//
// What it does is what the callback session does, with the same hooks: each complete message
// through the pipeline's on_message (decoded by the adapter's decoder), the connection's
// ws_connection attached to the hub (rooms, private messages, close_all), pings answered, a
// silent client pinged after idle_timeout and closed with 1001 after another, protocol errors
// closed with the codec's code, the close handshake bounded by close_timeout and a stalled
// write by write_timeout. So a room does not know which of its members came over TLS.
//
// How it differs: three coroutines of one frame (a reader, a writer, an idle watch) joined with
// `&&`. The reader owns a read buffer (adapter.read_buffer) for the connection's life: a TLS
// read may suspend mid-record, so the worker's shared buffer cannot be borrowed. The writer
// copies up to 64 KiB of queued frames at a time into one buffer (ws_connection::take: an SSL
// stream encrypts from one buffer, so a gathered write would send one frame per record) and
// writes it; the buffer is given back when the queue is empty. An idle TLS connection costs
// OpenSSL's state (tens of KB) more than the buffers, so this path is not tuned for memory the
// way the callback one is.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <rproxy/codec/ws/handshake.hpp>
#include <rproxy/codec/ws/parser.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/flow/ws.hpp>
#include <rproxy/flow/ws_connection.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/flow/ws_session.hpp>
#include <rproxy/net/deadline.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/observe/worker_index.hpp>
#include <rproxy/pipeline/context.hpp>

namespace rproxy::flow::ws_detail {

template <class Adapter, class Pipeline, class Ctx, class Stream>
class stream_session {
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t max_write = 64 * 1024;  ///< bytes of frames per TLS write

public:
  stream_session(const Adapter& a, Pipeline& p, Ctx& ctx, Stream& s, const codec::ws::upgrade_request& up)
      : a_(a), p_(p), ctx_(ctx), s_(s), stats_(a.stats),
        conn_(a.send, a.stats ? &a.stats->send_stats : nullptr), parser_(a.frames),
        wake_(s.get_executor()), idle_(s.get_executor()) {
    if (up.deflate) parser_.set_deflate(*up.deflate);
  }
  stream_session(const stream_session&) = delete;
  stream_session& operator=(const stream_session&) = delete;

  /// Runs the connection to its end; `early`: frames the client sent with the upgrade request.
  asio::awaitable<std::error_code> run(std::string early) {
    using namespace asio::experimental::awaitable_operators;
    conn_.set_notify(&stream_session::notified, this);
    const std::size_t worker = observe::worker_index() % a_.hub->workers();
    a_.hub->attach(worker, conn_);  // (closes it at once if a shutdown has begun)
    ctx_.ws = &conn_;
    ctx_.worker = static_cast<std::uint16_t>(worker);
    if (stats_) stats_->open.fetch_add(1, std::memory_order_relaxed);
    last_read_ = clock::now();
    co_await (reader(std::move(early)) && writer() && idle_watch());
    conn_.set_notify(nullptr, nullptr);
    a_.hub->detach(conn_.id());
    ctx_.ws = nullptr;
    if (stats_) stats_->open.fetch_sub(1, std::memory_order_relaxed);
    co_return end_.ec;
  }

private:
  using tuple_token = asio::experimental::as_tuple_t<asio::use_awaitable_t<>>;

  // --- reading ---------------------------------------------------------------------------
  asio::awaitable<void> reader(std::string early) {
    // Unparsed bytes left by parse() are at most a frame header or a control frame (the
    // parser hands data frames out as they come), so a fixed buffer always has room.
    std::string buf(std::max<std::size_t>(a_.read_buffer, 256) + early.size(), '\0');
    std::memcpy(buf.data(), early.data(), early.size());
    std::size_t e = early.size();
    std::string().swap(early);
    for (;;) {
      std::size_t b = 0;
      const bool more = co_await parse(buf.data(), b, e);
      if (!more) break;
      std::memmove(buf.data(), buf.data() + b, e - b);
      e -= b;
      auto [ec, n] = co_await s_.async_read_some(asio::buffer(buf.data() + e, buf.size() - e), tuple_token{});
      if (ec) {
        end_reader(net::classify(ec, net::side::downstream), true);
        break;
      }
      e += n;
      ctx_.bytes_from_client += n;
      ws_detail::add(stats_ ? &stats_->bytes_in : nullptr, n);
      ping_out_ = false;
      last_read_ = clock::now();
    }
    idle_.cancel();
  }

  /// Parses [b, e) of `buf`, running each complete message through on_message. False: the
  /// reader has ended.
  asio::awaitable<bool> parse(char* buf, std::size_t& b, std::size_t e) {
    namespace ws = codec::ws;
    for (;;) {
      auto r = parser_.parse(std::span<char>(buf + b, e - b));
      switch (r.what) {
        case ws::event::need_more: b += r.consumed; co_return true;
        case ws::event::data:
          if (msg_.empty()) mop_ = r.op;
          if (conn_.closing()) {
            if (r.last) clear_msg();
            break;
          }
          if (r.last && msg_.empty()) {  // a whole message in the buffer: no copy
            b += r.consumed;
            if (!co_await message(r.data)) co_return false;
            continue;
          }
          msg_.append(r.data);
          if (r.last) {
            b += r.consumed;
            if (!co_await message(msg_)) co_return false;
            clear_msg();
            continue;
          }
          break;
        case ws::event::ping: conn_.pong(r.data); break;
        case ws::event::pong: ping_out_ = false; break;
        case ws::event::close:
          conn_.close(r.code == ws::close_code::no_status ? 0 : r.code, {});
          end_reader({}, false);  // the writer ends after our close
          co_return false;
        case ws::event::error:
          ws_detail::add(stats_ ? &stats_->protocol_errors : nullptr);
          conn_.close(r.code, make_error_code(r.error).message());
          end_reader(make_error_code(r.error), false);  // the connection has failed (RFC 6455 §7.1.7)
          co_return false;
      }
      b += r.consumed;
    }
  }

  /// One message through on_message (the reader waits for an asynchronous one). False: the
  /// flow ended (a stage threw).
  asio::awaitable<bool> message(std::string_view data) {
    ws_detail::add(stats_ ? &stats_->messages_in : nullptr);
    try {
      if constexpr (Pipeline::is_async(phase::message))
        ws_detail::on_verdict(co_await p_.message(ctx_, a_.decoder.decode(mop_, data)), ctx_, conn_, a_.over_limit, stats_);
      else
        ws_detail::on_verdict(p_.message(ctx_, a_.decoder.decode(mop_, data)), ctx_, conn_, a_.over_limit, stats_);
    } catch (const std::exception&) {
      conn_.abort(detail::tcp_of(s_));
      end_reader(make_error_code(net::error::flow_aborted), true);
      co_return false;
    }
    co_return true;
  }

  void clear_msg() {
    if (msg_.capacity() > 256) std::string().swap(msg_);
    else msg_.clear();
  }

  void end_reader(std::error_code ec, bool stop) {
    if (end_.end_reader(conn_, ec, stop)) clear_msg();
  }

  // --- writing -----------------------------------------------------------------------------
  static void notified(void* p) { static_cast<stream_session*>(p)->wake_.cancel(); }

  asio::awaitable<void> writer() {
    std::string out;
    for (bool going = true; going;) {
      std::uint64_t frames = 0;
      out.clear();
      switch (conn_.take(out, max_write, frames)) {
        case ws_connection::write_state::done: going = false; break;
        case ws_connection::write_state::idle: {
          if (out.capacity() > 4096) std::string().swap(out);  // an idle connection keeps no write buffer
          wake_.expires_at(clock::time_point::max());
          (void)co_await wake_.async_wait(tuple_token{});
          break;
        }
        case ws_connection::write_state::closing: {
          wake_.expires_after(conn_.limits().close_timeout);
          auto [tec] = co_await wake_.async_wait(tuple_token{});
          if (!tec && !conn_.peer_has_closed() && !conn_.stopped()) {  // no close frame from the peer in time
            conn_.abort(detail::tcp_of(s_));
            going = false;
          }
          break;
        }
        case ws_connection::write_state::blocked: {
          auto [ec, n] = co_await net::with_deadline(asio::async_write(s_, asio::buffer(out), asio::experimental::deferred),
                                                     conn_.limits().write_timeout);
          if (ec) {
            end_.writer_error(net::classify(ec, net::side::downstream));
            conn_.abort(detail::tcp_of(s_));  // the socket closes: the reader ends too
            going = false;
            break;
          }
          conn_.wrote(frames, n);
          ctx_.bytes_to_client += n;
          break;
        }
      }
    }
    end_.writer_done = true;
    idle_.cancel();
    if (!end_.reader_done) {  // the close handshake is done or failed: the reader's wait ends
      std::error_code ignored;
      detail::tcp_of(s_).cancel(ignored);
    }
  }

  // --- idleness ----------------------------------------------------------------------------
  /// No bytes for idle_timeout: a ping; none for another: close 1001 (the writer then bounds
  /// the close handshake).
  asio::awaitable<void> idle_watch() {
    while (!end_.reader_done && !end_.writer_done) {
      const auto due = last_read_ + a_.idle_timeout;
      idle_.expires_at(due);
      (void)co_await idle_.async_wait(tuple_token{});
      if (end_.reader_done || end_.writer_done) break;
      const auto now = clock::now();
      if (now < last_read_ + a_.idle_timeout) continue;  // bytes came meanwhile
      if (!conn_.closing()) {
        if (!ping_out_) {
          conn_.ping();
          ping_out_ = true;
        } else {
          ws_detail::add(stats_ ? &stats_->idle_closes : nullptr);
          conn_.close(codec::ws::close_code::going_away, "idle timeout");
        }
      }
      last_read_ = now;  // the next look in another idle_timeout
    }
  }

  const Adapter& a_;
  Pipeline& p_;
  Ctx& ctx_;
  Stream& s_;
  ws_stats* stats_;
  ws_connection conn_;
  codec::ws::parser parser_;
  asio::steady_timer wake_;  ///< the writer's wait for frames (notify cancels it)
  asio::steady_timer idle_;
  clock::time_point last_read_{};
  codec::ws::opcode mop_ = codec::ws::opcode::text;
  bool ping_out_ = false;
  ending end_;
  std::string msg_;  ///< a message that came in pieces
};

template <class Adapter, class Pipeline, class Ctx, class Stream>
asio::awaitable<std::error_code> run_stream_session(const Adapter& a, Pipeline& p, Ctx& ctx, Stream& s,
                                                    codec::ws::upgrade_request up, std::string early) {
  stream_session<Adapter, Pipeline, Ctx, Stream> session(a, p, ctx, s, up);
  co_return co_await session.run(std::move(early));
}

}  // namespace rproxy::flow::ws_detail
