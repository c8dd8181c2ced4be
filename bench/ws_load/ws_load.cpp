// ws_load: a WebSocket load client for servers that speak the rooms protocol of
// docs/ws-server.md (apps/ws-server, and bench/ws_load/peer.js, the Node `ws` peer). One thread,
// one io_context, plain Asio sockets; frames are written and parsed with codec/ws (client role:
// masked frames out, unmasked frames in). Each connection writes what it has queued with one
// syscall (gathered); reads go into a per-connection buffer and the parser works in place.
//
//   ws_load echo   --port P [--conns 100] [--size 20] [--secs 5] [--warmup 1]
//       Each connection creates a room of its own, then keeps one room message of SIZE bytes of
//       text in flight: the server's reply (ok) and the room's `message` event (the sender is a
//       member, docs/ws-server.md "message") both back ends a round trip.
//       Prints: echo conns=N msgs_per_s=... p50_us=... p99_us=... errors=...
//   ws_load fanout --port P [--members 100] [--window 8] [--size 20] [--secs 5] [--warmup 1] [--port2 P2]
//       One room of MEMBERS connections (the sender among them, so every message has MEMBERS
//       deliveries); the sender keeps WINDOW messages in flight: message k is sent once message
//       k - WINDOW has reached every member. With --port2, odd-numbered members connect there
//       (another instance of a cluster: bench/cluster/rooms_fanout). Prints: fanout members=M
//       deliveries_per_s=... p50_us=... p99_us=... (a message's latency: from its send to its
//       delivery to the last member)
//   ws_load idle   --port P --pid PID [--conns 10000]
//       Opens CONNS WebSockets (at most 256 handshakes at a time) and holds them; reads VmRSS of
//       PID from /proc before (after one warm-up connection) and after.
//       Prints: idle conns=N rss_before_kb=... rss_after_kb=... bytes_per_conn=...
//       With --wait-stdin 1 it then keeps the connections open until a line (or EOF) on stdin.
//   ws_load hold   --port P --pid PID [--conns 10000] [--rooms 100] [--messages 10] [--size 20]
//       Opens CONNS WebSockets and holds them, each a member of one of ROOMS rooms (connection i
//       in room i % ROOMS; the first of each room creates it); every member reads from its join
//       on. Reads VmRSS of PID once all are in; then the first member of each room posts
//       MESSAGES messages and every member must get all of them, in msg_id order (each room's
//       own sequence), while all the connections stay open. Then VmRSS again.
//       Prints: hold conns=N rooms=R messages=M deliveries=D rss_before_kb=... rss_held_kb=...
//       rss_after_kb=... bytes_per_conn=... open_ms=... join_ms=... flow_ms=...
//       With --wait-stdin 1 it then keeps the connections open until a line (or EOF) on stdin.
//
// Common: --tls 1 (wss: TLS to the server, its certificate not checked: a benchmark against a
// local server), --host (127.0.0.1), --target (the request target; "{i}" becomes the connection's
// number and "{run}" a random tag of this run, default "/?user=r{run}u{i}": a user per
// connection, new users each run, as rooms and their owners outlive a run a while), --header "Name: value" (repeatable, e.g. a JWT). Bounded:
// every phase has a deadline (--timeout seconds, 60), after which the client says what it was
// waiting for and exits 1. Masking keys come from a xorshift generator seeded from
// std::random_device: enough for a benchmark against a local server, not for a real client
// (RFC 6455 §10.3 asks a client for a strong random source).
#include <rproxy/codec/ws/frame.hpp>
#include <rproxy/codec/ws/handshake.hpp>
#include <rproxy/codec/ws/parser.hpp>
#include <rproxy/codec/ws/writer.hpp>
#include <rproxy/core/base64.hpp>

#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace ws = rproxy::codec::ws;
using asio::ip::tcp;
using clock_type = std::chrono::steady_clock;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

namespace {

struct options {
  std::string mode;
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  unsigned short port2 = 0;  ///< fanout: odd-numbered members connect here when set
  std::string target = "/?user=r{run}u{i}";
  std::vector<std::string> headers;
  int conns = -1;  // echo: 100, idle: 10000
  int members = 100;
  int window = 8;
  int rooms = 100;
  int messages = 10;
  std::size_t size = 20;
  double secs = 5;
  double warmup = 1;
  double timeout = 60;
  long pid = 0;
  bool wait_stdin = false;
  bool tls = false;
};

/// The TLS client context of --tls: TLS 1.2 or later, no certificate check (local benchmark).
asio::ssl::context& tls_context() {
  static asio::ssl::context ctx = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_options(asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    c.set_verify_mode(asio::ssl::verify_none);
    return c;
  }();
  return ctx;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "ws_load: %s\n", what.c_str());
  std::exit(1);
}

std::uint64_t rng_state = [] {
  std::random_device rd;
  return (std::uint64_t{rd()} << 32 | rd()) | 1;
}();
std::uint64_t next_random() {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}
ws::mask_key next_key() {
  const std::uint64_t r = next_random();
  return {static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(r >> 8), static_cast<std::uint8_t>(r >> 16),
          static_cast<std::uint8_t>(r >> 24)};
}

/// A tag that makes this run's room and user names its own (rooms outlive their members a while).
std::string run_tag() { return std::to_string(next_random() % 1000000000); }
const std::string run_id = run_tag();

/// The string value of a top-level member `"name":"..."` of a server frame (its strings never
/// contain an unescaped quote), or empty.
std::string_view json_string(std::string_view msg, std::string_view name) {
  std::string key = "\"";
  key.append(name).append("\":\"");
  const auto at = msg.find(key);
  if (at == std::string_view::npos) return {};
  const auto from = at + key.size();
  const auto end = msg.find('"', from);
  return end == std::string_view::npos ? std::string_view{} : msg.substr(from, end - from);
}
/// The integer value of a member `"name":123`, or -1.
long long json_int(std::string_view msg, std::string_view name) {
  std::string key = "\"";
  key.append(name).append("\":");
  const auto at = msg.find(key);
  if (at == std::string_view::npos) return -1;
  long long v = 0;
  std::size_t i = at + key.size();
  if (i >= msg.size() || msg[i] < '0' || msg[i] > '9') return -1;
  for (; i < msg.size() && msg[i] >= '0' && msg[i] <= '9'; ++i) v = v * 10 + (msg[i] - '0');
  return v;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

/// One client WebSocket: socket, receive buffer, parser, the message being assembled, and an
/// output queue written with one syscall per flush.
/// The frame parser's options (every connection's parser points to them).
const ws::parser_options client_frames{.side = ws::role::client, .max_frame_size = 1 << 20, .max_message_size = 1 << 20};

struct connection {
  connection(asio::io_context& io, bool tls) : sock(io) {
    if (tls) this->tls.emplace(tcp::socket(io), tls_context());
  }
  tcp::socket sock;                                       ///< plain ws
  std::optional<asio::ssl::stream<tcp::socket>> tls;     ///< wss (then `sock` is unused)
  tcp::socket& lowest() { return tls ? tls->next_layer() : sock; }
  ws::parser parser{client_frames};
  std::vector<char> buf = std::vector<char>(16 * 1024);
  std::size_t begin = 0, end = 0;
  std::string msg;
  std::string queued, writing;
  bool write_busy = false;
  int index = 0;

  /// Queues a masked text frame; flush() sends it (with anything else queued).
  void queue_text(std::string_view payload) {
    ws::append_frame(queued, ws::opcode::text, payload, {.mask = next_key()});
  }
  void flush() {
    if (write_busy || queued.empty()) return;
    write_busy = true;
    writing.swap(queued);
    auto done = [this](std::error_code ec, std::size_t) {
      write_busy = false;
      writing.clear();
      if (ec) die("write: " + ec.message());
      flush();
    };
    if (tls) asio::async_write(*tls, asio::buffer(writing), done);
    else asio::async_write(sock, asio::buffer(writing), done);
  }
};

asio::awaitable<std::error_code> handshake(connection& c, const tcp::endpoint& ep, const options& o) {
  auto [ec] = co_await c.lowest().async_connect(ep, use_tuple);
  if (ec) co_return ec;
  c.lowest().set_option(tcp::no_delay(true));
  if (c.tls) {
    auto [hec] = co_await c.tls->async_handshake(asio::ssl::stream_base::client, use_tuple);
    if (hec) co_return hec;
  }
  std::array<char, 16> raw{};
  for (auto& b : raw) b = static_cast<char>(next_random());
  const std::string key = rproxy::base64::encode(std::string_view(raw.data(), raw.size()));
  std::string req = "GET " + replace_all(replace_all(o.target, "{i}", std::to_string(c.index)), "{run}", run_id) + " HTTP/1.1\r\nHost: " + o.host +
                    ":" + std::to_string(o.port) +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    "Sec-WebSocket-Key: " + key + "\r\n";
  for (const auto& h : o.headers) req += h + "\r\n";
  req += "\r\n";
  auto [wec, wn] = c.tls ? co_await asio::async_write(*c.tls, asio::buffer(req), use_tuple)
                         : co_await asio::async_write(c.sock, asio::buffer(req), use_tuple);
  if (wec) co_return wec;
  // The response head: up to 4 KiB; bytes after it are the first frames.
  for (;;) {
    const std::string_view have(c.buf.data(), c.end);
    const auto head_end = have.find("\r\n\r\n");
    if (head_end != std::string_view::npos) {
      const std::string_view head = have.substr(0, head_end + 2);
      if (!head.starts_with("HTTP/1.1 101")) {
        std::fprintf(stderr, "ws_load: handshake refused: %.*s\n", static_cast<int>(head.find('\r')), head.data());
        co_return std::make_error_code(std::errc::connection_refused);
      }
      std::string lower(head);
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
      const auto at = lower.find("\r\nsec-websocket-accept:");
      if (at == std::string::npos || head.find(ws::accept_key(key), at) == std::string_view::npos) {
        std::fprintf(stderr, "ws_load: wrong or missing Sec-WebSocket-Accept\n");
        co_return std::make_error_code(std::errc::protocol_error);
      }
      c.begin = head_end + 4;
      co_return std::error_code{};
    }
    if (c.end == 4096) co_return std::make_error_code(std::errc::message_size);
    const auto room = asio::buffer(c.buf.data() + c.end, 4096 - c.end);
    auto [rec, n] = c.tls ? co_await c.tls->async_read_some(room, use_tuple) : co_await c.sock.async_read_some(room, use_tuple);
    if (rec) co_return rec;
    c.end += n;
  }
}

/// The next whole text or binary message into c.msg; pings are answered, a close or a
/// protocol error ends the connection (an error code).
asio::awaitable<std::error_code> next_message(connection& c) {
  c.msg.clear();
  for (;;) {
    auto r = c.parser.parse(std::span<char>(c.buf.data() + c.begin, c.end - c.begin));
    switch (r.what) {
      case ws::event::need_more: {
        c.begin += r.consumed;
        if (c.begin == c.end) c.begin = c.end = 0;
        if (c.end == c.buf.size()) {  // make room: move the unconsumed bytes to the front, or grow
          if (c.begin > 0) {
            std::copy(c.buf.begin() + static_cast<long>(c.begin), c.buf.begin() + static_cast<long>(c.end), c.buf.begin());
            c.end -= c.begin;
            c.begin = 0;
          } else {
            c.buf.resize(c.buf.size() * 2);
          }
        }
        const auto room = asio::buffer(c.buf.data() + c.end, c.buf.size() - c.end);
        auto [ec, n] = c.tls ? co_await c.tls->async_read_some(room, use_tuple) : co_await c.sock.async_read_some(room, use_tuple);
        if (ec) co_return ec;
        c.end += n;
        continue;
      }
      case ws::event::data:
        c.msg.append(r.data);
        c.begin += r.consumed;
        if (r.last) co_return std::error_code{};
        continue;
      case ws::event::ping:
        ws::append_frame(c.queued, ws::opcode::pong, r.data, {.mask = next_key()});
        c.begin += r.consumed;
        c.flush();
        continue;
      case ws::event::pong: c.begin += r.consumed; continue;
      case ws::event::close:
        std::fprintf(stderr, "ws_load: connection %d: the server closed with %u %.*s\n", c.index, r.code,
                     static_cast<int>(r.data.size()), r.data.data());
        co_return std::make_error_code(std::errc::connection_reset);
      case ws::event::error:
        std::fprintf(stderr, "ws_load: connection %d: bad frame from the server: %s (close code %u)\n", c.index,
                     make_error_code(r.error).message().c_str(), r.code);
        co_return std::make_error_code(std::errc::protocol_error);
    }
  }
}

/// Reads until a reply (ok or error) to `op` arrives; events before it are skipped.
asio::awaitable<std::error_code> await_reply(connection& c, std::string_view op) {
  for (;;) {
    if (auto ec = co_await next_message(c)) co_return ec;
    const auto type = json_string(c.msg, "type");
    if (type == "error") {
      std::fprintf(stderr, "ws_load: connection %d: %s\n", c.index, c.msg.c_str());
      co_return std::make_error_code(std::errc::operation_not_permitted);
    }
    if (type == "ok" && json_string(c.msg, "op") == op) co_return std::error_code{};
  }
}

std::string text_of(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('a' + i % 26));
  return s;
}

/// Runs `io` until `done()` or the deadline; exits naming `what` on timeout.
template <class Done>
void run_until(asio::io_context& io, Done done, double seconds, const char* what) {
  if (io.stopped()) io.restart();  // it stops whenever it runs out of work
  const auto deadline = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  while (!done()) {
    if (clock_type::now() > deadline) die(std::string("timed out waiting for ") + what);
    io.run_one_for(std::chrono::milliseconds(100));
  }
}

struct latency_stats {
  std::vector<std::uint32_t> us;
  std::uint32_t pct(double p) {
    if (us.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(us.size() - 1));
    std::nth_element(us.begin(), us.begin() + static_cast<long>(k), us.end());
    return us[k];
  }
};

tcp::endpoint endpoint_of(const options& o) { return {asio::ip::make_address(o.host), o.port}; }

/// Opens `n` connections, at most 256 handshakes at a time.
std::vector<std::unique_ptr<connection>> open_all(asio::io_context& io, const options& o, int n, int first_index) {
  std::vector<std::unique_ptr<connection>> conns;
  for (int i = 0; i < n; ++i) {
    conns.push_back(std::make_unique<connection>(io, o.tls));
    conns.back()->index = first_index + i;
  }
  int next = 0, done = 0, failed = 0;
  const auto ep = endpoint_of(o);
  const tcp::endpoint ep2{asio::ip::make_address(o.host), o.port2 != 0 ? o.port2 : o.port};
  std::function<void()> start_one;  // startup only, not the data path
  start_one = [&] {
    if (next == n) return;
    connection& c = *conns[static_cast<std::size_t>(next++)];
    asio::co_spawn(io, handshake(c, c.index % 2 == 1 ? ep2 : ep, o), [&](std::exception_ptr e, std::error_code ec) {
      if (e || ec) {
        ++failed;
        std::fprintf(stderr, "ws_load: connection %d: %s\n", c.index, ec ? ec.message().c_str() : "exception");
      }
      ++done;
      start_one();
    });
  };
  for (int i = 0; i < std::min(n, 256); ++i) start_one();
  run_until(io, [&] { return done == n; }, o.timeout, "the handshakes");
  if (failed > 0) die(std::to_string(failed) + " of " + std::to_string(n) + " handshakes failed");
  return conns;
}

int run_echo(const options& o) {
  asio::io_context io(1);
  const int n = o.conns < 0 ? 100 : o.conns;
  auto conns = open_all(io, o, n, 0);
  const std::string text = text_of(o.size);
  const std::string& tag = run_id;
  bool measuring = false, stopping = false;
  std::uint64_t completed = 0, errors = 0;
  int ready = 0, finished = 0;
  latency_stats lat;
  lat.us.reserve(1 << 20);
  for (auto& cp : conns) {
    connection& c = *cp;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      const std::string room = "echo" + tag + "-" + std::to_string(c.index);
      c.queue_text(R"({"op":"create","room":")" + room + R"("})");
      c.flush();
      if (auto ec = co_await await_reply(c, "create")) {
        ++errors;
        ++finished;
        co_return;
      }
      ++ready;
      const std::string request = R"({"op":"message","room":")" + room + R"(","text":")" + text + R"("})";
      while (!stopping) {
        const auto t0 = clock_type::now();
        c.queue_text(request);
        c.flush();
        bool ok = false, event = false;
        while (!(ok && event)) {
          if (auto ec = co_await next_message(c)) {
            ++errors;
            ++finished;
            co_return;
          }
          const auto type = json_string(c.msg, "type");
          if (type == "ok" && json_string(c.msg, "op") == "message") ok = true;
          else if (type == "message") event = true;
          else if (type == "error") {
            std::fprintf(stderr, "ws_load: connection %d: %s\n", c.index, c.msg.c_str());
            ++errors;
            ++finished;
            co_return;
          }
        }
        if (measuring) {
          ++completed;
          lat.us.push_back(static_cast<std::uint32_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - t0).count()));
        }
      }
      ++finished;
    }, asio::detached);
  }
  run_until(io, [&] { return ready + finished == n; }, o.timeout, "the rooms to be created");
  if (errors > 0) die("room creation failed");
  // Warm up, then measure for o.secs.
  asio::steady_timer t(io);
  const auto secs = [](double s) { return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s)); };
  clock_type::time_point start{}, stop{};
  t.expires_after(secs(o.warmup));
  t.async_wait([&](std::error_code) {
    measuring = true;
    start = clock_type::now();
    t.expires_after(secs(o.secs));
    t.async_wait([&](std::error_code) {
      measuring = false;
      stop = clock_type::now();
      stopping = true;
    });
  });
  run_until(io, [&] { return finished == n; }, o.warmup + o.secs + o.timeout, "the echo round trips");
  const double elapsed = std::chrono::duration<double>(stop - start).count();
  std::printf("echo conns=%d msgs_per_s=%.0f p50_us=%u p99_us=%u errors=%llu\n", n,
              static_cast<double>(completed) / elapsed, lat.pct(0.50), lat.pct(0.99),
              static_cast<unsigned long long>(errors));
  return errors == 0 ? 0 : 1;
}

int run_fanout(const options& o) {
  asio::io_context io(1);
  const int m = o.members;
  const auto window = static_cast<std::size_t>(std::max(1, o.window));
  auto conns = open_all(io, o, m, 0);
  const std::string room = "fanout" + run_id;
  const std::string text = text_of(o.size);
  const std::string request = R"({"op":"message","room":")" + room + R"(","text":")" + text + R"("})";
  connection& sender = *conns[0];
  // delivered[k % window]: members that have message k. Message k + window goes out when
  // message k has reached all members.
  std::vector<int> delivered(window, 0);
  std::vector<clock_type::time_point> sent_at(window);  // message k's send, at k % window
  latency_stats lat;
  long long sent = 0;
  bool measuring = false, stopping = false;
  std::uint64_t deliveries = 0;
  int joined = 0;
  const auto send_one = [&] {
    ++sent;  // the room is new: message ids count 1, 2, 3 ... in the order sent
    sent_at[static_cast<std::size_t>(sent) % window] = clock_type::now();
    sender.queue_text(request);
  };
  // Every member reads from the moment it is in the room (the presence events of the joins
  // that follow, then the messages), so no server queue fills during the set-up.
  const auto member = [&](connection& c) -> asio::awaitable<void> {
    c.queue_text(c.index == 0 ? R"({"op":"create","room":")" + room + R"("})" : R"({"op":"join","room":")" + room + R"("})");
    c.flush();
    if (co_await await_reply(c, c.index == 0 ? "create" : "join")) die("fan-out: create or join failed");
    ++joined;
    long long seen = 0;
    for (;;) {
      if (auto ec = co_await next_message(c)) die("fan-out: connection " + std::to_string(c.index) + ": " + ec.message());
      if (json_string(c.msg, "type") != "message") continue;
      const long long id = json_int(c.msg, "msg_id");
      if (id != seen + 1)
        die("fan-out: connection " + std::to_string(c.index) + " got message " + std::to_string(id) + " after " +
            std::to_string(seen));
      seen = id;
      if (measuring) ++deliveries;
      int& d = delivered[static_cast<std::size_t>(id) % window];
      if (++d == m) {
        d = 0;
        if (measuring)
          lat.us.push_back(static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(
              clock_type::now() - sent_at[static_cast<std::size_t>(id) % window]).count()));
        if (!stopping) {
          send_one();
          sender.flush();
        }
      }
    }
  };
  asio::co_spawn(io, member(sender), asio::detached);
  run_until(io, [&] { return joined == 1; }, o.timeout, "the room");
  // The others join, at most 64 joins at a time.
  for (int next = 1; next < m;) {
    const int batch_end = std::min(m, next + 64);
    for (; next < batch_end; ++next) asio::co_spawn(io, member(*conns[static_cast<std::size_t>(next)]), asio::detached);
    run_until(io, [&] { return joined == batch_end; }, o.timeout, "the joins");
  }
  for (std::size_t i = 0; i < window; ++i) send_one();
  sender.flush();
  asio::steady_timer t(io);
  const auto secs = [](double s) { return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(s)); };
  clock_type::time_point start{}, stop{};
  t.expires_after(secs(o.warmup));
  t.async_wait([&](std::error_code) {
    measuring = true;
    start = clock_type::now();
    t.expires_after(secs(o.secs));
    t.async_wait([&](std::error_code) {
      measuring = false;
      stop = clock_type::now();
      stopping = true;
    });
  });
  run_until(io, [&] { return stopping; }, o.warmup + o.secs + o.timeout, "the fan-out");
  const double elapsed = std::chrono::duration<double>(stop - start).count();
  std::printf("fanout members=%d window=%zu messages=%lld deliveries_per_s=%.0f p50_us=%u p99_us=%u\n", m, window, sent,
              static_cast<double>(deliveries) / elapsed, lat.pct(0.50), lat.pct(0.99));
  return 0;
}

long rss_kb(long pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  die("no VmRSS for pid " + std::to_string(pid));
}

/// Raises this process's soft open-files limit to its hard one; dies if `n` connections do not fit.
void raise_fd_limit_for(int n) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < static_cast<rlim_t>(n) + 64)
    die("the open-files limit (" + std::to_string(rl.rlim_cur) + ") is below " + std::to_string(n + 64));
}

int run_idle(const options& o) {
  if (o.pid <= 0) die("idle needs --pid of the server");
  const int n = o.conns < 0 ? 10000 : o.conns;
  raise_fd_limit_for(n);
  asio::io_context io(1);
  auto warm = open_all(io, o, 1, n);
  const long before = rss_kb(o.pid);
  auto conns = open_all(io, o, n, 0);
  // Every handshake was answered; let the server finish what it does after its 101 (one short
  // round of the loop on our side, no timing involved in the figure).
  io.poll();
  const long after = rss_kb(o.pid);
  std::printf("idle conns=%d rss_before_kb=%ld rss_after_kb=%ld bytes_per_conn=%.0f\n", n, before, after,
              static_cast<double>(after - before) * 1024.0 / n);
  if (o.wait_stdin) {  // keep every connection open until stdin says so (the server's heap may be inspected meanwhile)
    std::fflush(stdout);
    std::string line;
    (void)std::getline(std::cin, line);
  }
  return 0;
}

int run_hold(const options& o) {
  if (o.pid <= 0) die("hold needs --pid of the server");
  const int n = o.conns < 0 ? 10000 : o.conns;
  const int rooms = std::min(o.rooms, n);
  raise_fd_limit_for(n);
  asio::io_context io(1);
  auto warm = open_all(io, o, 1, n);
  const long before = rss_kb(o.pid);
  const auto t_open = clock_type::now();
  auto conns = open_all(io, o, n, 0);
  const auto t_opened = clock_type::now();
  const std::string text = text_of(o.size);
  const auto room_of = [&](int i) { return "hold" + run_id + "-" + std::to_string(i % rooms); };
  int joined = 0;
  long long delivered = 0;
  std::vector<int> complete(static_cast<std::size_t>(rooms), 0);  // members of room r that have every message
  int rooms_complete = 0;
  // Every member reads from its join on (presence events, then the messages) and checks that the
  // room's messages arrive as 1, 2, ... MESSAGES.
  const auto member = [&](connection& c) -> asio::awaitable<void> {
    const bool first = c.index < rooms;
    c.queue_text(std::string(first ? R"({"op":"create","room":")" : R"({"op":"join","room":")") + room_of(c.index) + R"("})");
    c.flush();
    if (co_await await_reply(c, first ? "create" : "join")) die("hold: create or join failed");
    ++joined;
    long long seen = 0;
    for (;;) {
      if (auto ec = co_await next_message(c)) die("hold: connection " + std::to_string(c.index) + ": " + ec.message());
      if (json_string(c.msg, "type") != "message") continue;
      const long long id = json_int(c.msg, "msg_id");
      if (id != seen + 1)
        die("hold: connection " + std::to_string(c.index) + " got message " + std::to_string(id) + " after " + std::to_string(seen));
      seen = id;
      ++delivered;
      if (seen == o.messages && ++complete[static_cast<std::size_t>(c.index % rooms)] == n / rooms + (c.index % rooms < n % rooms ? 1 : 0))
        ++rooms_complete;
    }
  };
  // The rooms' creators first, then the others, at most 256 joins at a time.
  for (int i = 0; i < rooms; ++i) asio::co_spawn(io, member(*conns[static_cast<std::size_t>(i)]), asio::detached);
  run_until(io, [&] { return joined == rooms; }, o.timeout, "the rooms to be created");
  for (int next = rooms; next < n;) {
    const int batch_end = std::min(n, next + 256);
    for (; next < batch_end; ++next) asio::co_spawn(io, member(*conns[static_cast<std::size_t>(next)]), asio::detached);
    run_until(io, [&] { return joined >= batch_end - 128; }, o.timeout, "the joins");
  }
  run_until(io, [&] { return joined == n; }, o.timeout, "the joins");
  const auto t_joined = clock_type::now();
  io.poll();
  const long held = rss_kb(o.pid);
  // The first member of each room posts the messages, all at once (queued, one write each).
  for (int r = 0; r < rooms; ++r) {
    connection& s = *conns[static_cast<std::size_t>(r)];
    for (int k = 0; k < o.messages; ++k)
      s.queue_text(R"({"op":"message","room":")" + room_of(r) + R"(","text":")" + text + R"("})");
    s.flush();
  }
  if (o.messages > 0) run_until(io, [&] { return rooms_complete == rooms; }, o.timeout, "every member to get every message");
  const auto t_flowed = clock_type::now();
  io.poll();
  const long after = rss_kb(o.pid);
  const auto ms = [](auto d) { return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()); };
  std::printf("hold conns=%d rooms=%d messages=%d deliveries=%lld rss_before_kb=%ld rss_held_kb=%ld rss_after_kb=%ld "
              "bytes_per_conn=%.0f open_ms=%lld join_ms=%lld flow_ms=%lld\n",
              n, rooms, o.messages, delivered, before, held, after, static_cast<double>(held - before) * 1024.0 / n,
              ms(t_opened - t_open), ms(t_joined - t_opened), ms(t_flowed - t_joined));
  if (o.wait_stdin) {  // keep every connection open until stdin says so (a test reads the server's metrics meanwhile)
    std::fflush(stdout);
    std::string line;
    (void)std::getline(std::cin, line);
  }
  return 0;
}

options parse_args(int argc, char** argv) {
  options o;
  if (argc < 2) die("usage: ws_load echo|fanout|idle --port P [options] (see the top of ws_load.cpp)");
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) die("missing value after " + a);
    const std::string v = argv[++i];
    if (a == "--host") o.host = v;
    else if (a == "--port") o.port = static_cast<unsigned short>(std::stoi(v));
    else if (a == "--port2") o.port2 = static_cast<unsigned short>(std::stoi(v));
    else if (a == "--target") o.target = v;
    else if (a == "--header") o.headers.push_back(v);
    else if (a == "--conns") o.conns = std::stoi(v);
    else if (a == "--members") o.members = std::stoi(v);
    else if (a == "--window") o.window = std::stoi(v);
    else if (a == "--size") o.size = static_cast<std::size_t>(std::stoul(v));
    else if (a == "--secs") o.secs = std::stod(v);
    else if (a == "--warmup") o.warmup = std::stod(v);
    else if (a == "--timeout") o.timeout = std::stod(v);
    else if (a == "--pid") o.pid = std::stol(v);
    else if (a == "--rooms") o.rooms = std::stoi(v);
    else if (a == "--messages") o.messages = std::stoi(v);
    else if (a == "--wait-stdin") o.wait_stdin = v == "1";
    else if (a == "--tls") o.tls = v == "1";
    else die("unknown option " + a);
  }
  if (o.port == 0) die("--port is required");
  if (o.members < 1) die("--members must be at least 1");
  if (o.rooms < 1 || o.messages < 0) die("--rooms must be at least 1, --messages at least 0");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_args(argc, argv);
  if (o.mode == "echo") return run_echo(o);
  if (o.mode == "fanout") return run_fanout(o);
  if (o.mode == "idle") return run_idle(o);
  if (o.mode == "hold") return run_hold(o);
  die("unknown mode " + o.mode);
}
