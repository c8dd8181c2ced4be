// ws_echo_peer: a WebSocket echo server on codec/ws (handshake, parser, writer, deflate) and
// plain Asio, the target of ws_conformance_test.py when no app is given. It echoes each text
// or binary message whole, answers pings, returns the client's close code, and closes with
// the parser's code (1002, 1007, 1009) on a bad frame, then drops the connection.
//
//   ws_echo_peer [PORT [MAX_MESSAGE]]      prints "listening PORT" once it listens on 127.0.0.1
//
// permessage-deflate is offered (RFC 7692, every parameter); frames and messages are bounded by
// MAX_MESSAGE bytes (default 1 MiB); a handshake by 8 KiB of head and 10 s.
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/ws/deflate.hpp>
#include <rproxy/codec/ws/handshake.hpp>
#include <rproxy/codec/ws/parser.hpp>
#include <rproxy/codec/ws/writer.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ws = rproxy::codec::ws;
namespace http1 = rproxy::codec::http1;
using asio::ip::tcp;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

namespace {

std::uint64_t max_message = 1 << 20;

asio::awaitable<void> session(tcp::socket sock) {
  // The handshake, bounded in size and time.
  asio::steady_timer deadline(sock.get_executor());
  deadline.expires_after(std::chrono::seconds(10));
  deadline.async_wait([&sock](std::error_code ec) {
    if (!ec) sock.close();
  });
  http1::limits limits;
  limits.max_start_line = 2048;
  limits.max_header_bytes = 8192;
  std::vector<char> buf(limits.max_start_line + limits.max_header_bytes + 4 + 64 * 1024);
  std::size_t begin = 0, end = 0;
  http1::request_parser hp{limits};
  std::optional<ws::deflate_params> deflate;
  for (;;) {
    auto r = hp.parse(std::string_view(buf.data(), end));
    if (r.what == http1::event::head || r.what == http1::event::upgrade) {
      const ws::handshake_options opt{.subprotocols = {}, .deflate = {.enabled = true}};
      auto up = ws::validate_upgrade(hp.head(), opt);
      if (!up) {
        const std::string resp = ws::make_handshake_error_response(up.error());
        co_await asio::async_write(sock, asio::buffer(resp), use_tuple);
        co_return;
      }
      deflate = up->deflate;
      const std::string resp = ws::make_accept_response(*up);
      auto [ec, n] = co_await asio::async_write(sock, asio::buffer(resp), use_tuple);
      if (ec) co_return;
      begin = r.consumed;
      break;
    }
    if (r.what != http1::event::need_more) {
      const std::string_view resp = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      co_await asio::async_write(sock, asio::buffer(resp), use_tuple);
      co_return;
    }
    if (end == buf.size()) co_return;
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf.data() + end, buf.size() - end), use_tuple);
    if (ec) co_return;
    end += n;
  }
  deadline.cancel();

  const ws::parser_options frames{.side = ws::role::server, .max_frame_size = max_message, .max_message_size = max_message};
  ws::parser p{frames};
  std::optional<ws::deflater> z;
  if (deflate) {
    p.set_deflate(*deflate);
    z.emplace(deflate->send_window(ws::role::server), deflate->send_reset(ws::role::server));
  }
  std::string msg, out;
  for (;;) {
    auto r = p.parse(std::span<char>(buf.data() + begin, end - begin));
    bool done = false;
    switch (r.what) {
      case ws::event::need_more: break;
      case ws::event::data:
        msg.append(r.data);
        if (r.last) {
          if (!ws::append_message(out, r.op, msg, {.fragment_size = 0, .compress = z ? &*z : nullptr})) {
            ws::append_close(out, ws::close_code::internal_error, "compression failed");
            done = true;
          }
          msg.clear();
        }
        break;
      case ws::event::ping: ws::append_frame(out, ws::opcode::pong, r.data); break;
      case ws::event::pong: break;
      case ws::event::close:
        ws::append_close(out, r.code == ws::close_code::no_status ? 0 : r.code, {});
        done = true;
        break;
      case ws::event::error:
        ws::append_close(out, r.code, {});
        done = true;
        break;
    }
    begin += r.consumed;
    if (r.what != ws::event::need_more && !done) continue;  // handle everything buffered first
    if (!out.empty()) {
      auto [ec, n] = co_await asio::async_write(sock, asio::buffer(out), use_tuple);
      if (ec) co_return;
      out.clear();
    }
    if (done) {
      std::error_code ignored;
      sock.shutdown(tcp::socket::shutdown_send, ignored);
      co_return;  // the socket closes when the session ends
    }
    if (begin == end) begin = end = 0;
    if (end == buf.size()) {  // the parser keeps at most a frame header or control frame back
      std::copy(buf.begin() + static_cast<long>(begin), buf.begin() + static_cast<long>(end), buf.begin());
      end -= begin;
      begin = 0;
    }
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf.data() + end, buf.size() - end), use_tuple);
    if (ec) co_return;
    end += n;
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acc) {
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(use_tuple);
    if (ec) continue;
    asio::co_spawn(acc.get_executor(), session(std::move(sock)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto port = static_cast<unsigned short>(argc > 1 ? std::atoi(argv[1]) : 0);
  if (argc > 2) max_message = std::strtoull(argv[2], nullptr, 10);
  asio::io_context io(1);
  tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  std::printf("listening %u\n", static_cast<unsigned>(acc.local_endpoint().port()));
  std::fflush(stdout);
  asio::co_spawn(io, accept_loop(acc), asio::detached);
  io.run();
}
