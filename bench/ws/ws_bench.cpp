// Receive time of masked client frames, as a server sees them: codec/ws's parser (the input
// copied into a work buffer, unmasked in place, text validated, each message assembled in a
// string) beside Boost.Beast's websocket::stream::read over beast::test::stream (the input
// appended to the stream, read into a flat_buffer: the same copy, unmasking, validation and
// assembly). Then the two inner loops alone: unmasking 64 KiB (ws::apply_mask vs Beast's
// mask_inplace) and validating 64 KiB of UTF-8 text (utf8::validator vs Beast's utf8_checker
// vs simdjson::validate_utf8). Each runs until 0.3 s have passed; ratios are rproxy's time as
// a multiple of the peer's (above 1: rproxy is slower).
#include <rproxy/codec/ws/parser.hpp>
#include <rproxy/codec/ws/writer.hpp>
#include <rproxy/core/utf8.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/detail/mask.hpp>
#include <boost/beast/websocket/detail/utf8_checker.hpp>
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

namespace ws = rproxy::codec::ws;
namespace beast = boost::beast;

namespace {

using clock_type = std::chrono::steady_clock;

template <class F>
double ns_per_op(F&& f) {
  std::size_t n = 0;
  const auto start = clock_type::now();
  auto now = start;
  do {
    f();
    ++n;
    now = clock_type::now();
  } while (now - start < std::chrono::milliseconds(300));
  return std::chrono::duration<double, std::nano>(now - start).count() / static_cast<double>(n);
}

std::string text_of(std::size_t n) {
  const std::string unit = "hello, w\xc3\xb6rld \xe2\x82\xac ";  // ASCII with 2- and 3-byte characters
  std::string s;
  while (s.size() < n) s += unit;
  s.resize(n);
  while (!rproxy::utf8::is_valid(s)) s.pop_back();  // do not cut a character
  return s;
}

struct workload {
  const char* name;
  ws::opcode op;
  std::size_t size;
  std::size_t count;
};

volatile std::size_t sink;

}  // namespace

int main() {
  const std::string request =
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  std::printf("%-28s %14s %14s %8s\n", "receive (per message)", "rproxy ns", "beast ns", "ratio");
  for (const workload& w : {workload{"64 B text x 20000", ws::opcode::text, 64, 20000},
                            workload{"1 KiB text x 2000", ws::opcode::text, 1024, 2000},
                            workload{"64 KiB binary x 32", ws::opcode::binary, 65536, 32},
                            workload{"1 MiB text x 2", ws::opcode::text, 1 << 20, 2}}) {
    const std::string payload = w.op == ws::opcode::text ? text_of(w.size) : std::string(w.size, '\x5a');
    std::string wire;
    std::uint32_t k = 1;
    for (std::size_t i = 0; i < w.count; ++i) {
      k = k * 1664525u + 1013904223u;
      ws::append_frame(wire, w.op, payload,
                       {.mask = ws::mask_key{static_cast<std::uint8_t>(k >> 24), static_cast<std::uint8_t>(k >> 16),
                                             static_cast<std::uint8_t>(k >> 8), static_cast<std::uint8_t>(k)}});
    }

    std::string work, msg;
    const double ours = ns_per_op([&] {
      work = wire;
      static const ws::parser_options opt{.side = ws::role::server, .max_frame_size = 1 << 24, .max_message_size = 1 << 24};
      ws::parser p{opt};
      std::size_t at = 0, messages = 0;
      while (true) {
        const auto r = p.parse(std::span<char>(work.data() + at, work.size() - at));
        if (r.what == ws::event::data) {
          msg.append(r.data);
          if (r.last) {
            ++messages;
            sink = msg.size();
            msg.clear();
          }
        } else if (r.what != ws::event::need_more || r.consumed == 0) {
          if (r.what == ws::event::error) std::abort();
          at += r.consumed;
          break;
        }
        at += r.consumed;
      }
      if (messages != w.count) std::abort();
    });

    boost::asio::io_context ioc;
    beast::websocket::stream<beast::test::stream> bs{ioc};
    beast::test::stream remote{ioc};
    bs.next_layer().connect(remote);
    bs.next_layer().append(request);
    bs.accept();
    bs.read_message_max(std::size_t{1} << 24);
    beast::flat_buffer buf;
    const double peer = ns_per_op([&] {
      bs.next_layer().append(wire);
      for (std::size_t i = 0; i < w.count; ++i) {
        bs.read(buf);
        sink = buf.size();
        buf.consume(buf.size());
      }
    });
    const auto n = static_cast<double>(w.count);
    std::printf("%-28s %14.1f %14.1f %8.2f\n", w.name, ours / n, peer / n, ours / peer);
  }

  std::printf("\n%-28s %14s %14s %8s\n", "64 KiB", "rproxy ns", "peer ns", "ratio");
  std::string block(65536, '\0');
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>(i * 131);
  const double mask_ours = ns_per_op([&] {
    ws::apply_mask(std::span<char>(block.data(), block.size()), ws::mask_key{1, 2, 3, 4}, 1);
    sink = static_cast<unsigned char>(block[7]);
  });
  const double mask_beast = ns_per_op([&] {
    beast::websocket::detail::prepared_key key;
    beast::websocket::detail::prepare_key(key, 0x04030201u);
    beast::websocket::detail::mask_inplace(boost::asio::mutable_buffer(block.data(), block.size()), key);
    sink = static_cast<unsigned char>(block[7]);
  });
  std::printf("%-28s %14.1f %14.1f %8.2f\n", "unmask vs beast", mask_ours, mask_beast, mask_ours / mask_beast);

  const std::string text = text_of(65536);
  const double utf8_ours = ns_per_op([&] {
    rproxy::utf8::validator v;
    if (!v.feed(text) || !v.complete()) std::abort();
  });
  const double utf8_beast = ns_per_op([&] {
    beast::websocket::detail::utf8_checker c;
    if (!c.write(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()) || !c.finish()) std::abort();
  });
  const double utf8_simd = ns_per_op([&] {
    if (!simdjson::validate_utf8(text.data(), text.size())) std::abort();
  });
  std::printf("%-28s %14.1f %14.1f %8.2f\n", "UTF-8 vs beast", utf8_ours, utf8_beast, utf8_ours / utf8_beast);
  std::printf("%-28s %14.1f %14.1f %8.2f\n", "UTF-8 vs simdjson", utf8_ours, utf8_simd, utf8_ours / utf8_simd);
  const std::string ascii(65536, 'a');
  const double ascii_ours = ns_per_op([&] {
    rproxy::utf8::validator v;
    if (!v.feed(ascii) || !v.complete()) std::abort();
  });
  const double ascii_simd = ns_per_op([&] {
    if (!simdjson::validate_utf8(ascii.data(), ascii.size())) std::abort();
  });
  std::printf("%-28s %14.1f %14.1f %8.2f\n", "ASCII UTF-8 vs simdjson", ascii_ours, ascii_simd, ascii_ours / ascii_simd);
  return 0;
}
