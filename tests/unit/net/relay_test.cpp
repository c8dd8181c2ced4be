#include <rproxy/net/relay.hpp>
#include <rproxy/net/test/stream.hpp>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#if defined(__linux__)
#include <linux/types.h>
#include <netinet/in.h>
#include <sys/socket.h>
namespace kernel {  // the kernel's tcp_info, which counts segments (glibc's, from asio's includes, does not)
#include <linux/tcp.h>
}  // namespace kernel
#endif

#include "run_until.hpp"

#include <chrono>
#include <exception>
#include <memory>
#include <type_traits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
namespace net = rproxy::net;
constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

struct splice_path {
  static constexpr bool splice = true;
  static constexpr bool closes = false;
};
struct buffered_path {
  static constexpr bool splice = false;
  static constexpr bool closes = false;
};
/// close_at_end: between TCP sockets on one io_context the relay watches them itself
/// (detail/epoll_watch.hpp), on both of its paths.
struct watched_splice_path {
  static constexpr bool splice = true;
  static constexpr bool closes = true;
};
struct watched_buffered_path {
  static constexpr bool splice = false;
  static constexpr bool closes = true;
};
#define RELAY_PATHS splice_path, buffered_path, watched_splice_path, watched_buffered_path

using rproxy::test::run_until;

/// Two connected loopback sockets.
std::pair<tcp::socket, tcp::socket> tcp_pair(asio::io_context& ioc) {
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  tcp::socket a(ioc);
  a.connect(acc.local_endpoint());
  tcp::socket b = acc.accept();
  return {std::move(a), std::move(b)};
}

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

/// Coroutines spawned by a test; run() drives them and the relay to the end.
struct tasks {
  explicit tasks(asio::io_context& c) : ioc(c) {}
  asio::io_context& ioc;
  int running = 0;
  std::vector<std::exception_ptr> errors;

  void spawn(asio::awaitable<void> a) {
    ++running;
    asio::co_spawn(ioc, std::move(a), [this](std::exception_ptr e) {
      --running;
      if (e) errors.push_back(e);
    });
  }
  /// A coroutine lambda: kept alive (its captures live in it) until its coroutine ends.
  template <class F>
    requires std::is_invocable_r_v<asio::awaitable<void>, F&>
  void spawn(F f) {
    auto keep = std::make_shared<F>(std::move(f));
    ++running;
    asio::co_spawn(ioc, (*keep)(), [this, keep](std::exception_ptr e) {
      --running;
      if (e) errors.push_back(e);
    });
  }
  template <class Pred>
  void run(Pred more) {
    REQUIRE(run_until(ioc, [&] { return running == 0 && !more(); }));
    for (auto& e : errors) std::rethrow_exception(e);
  }
};

struct relay_result {
  std::optional<std::error_code> ec;
  net::relay_stats stats;
};

template <class Client, class Backend>
void start_relay(Client& c, Backend& b, net::relay_options o, relay_result& r) {
  net::async_relay(c, b, std::move(o), [&r](std::error_code ec, net::relay_stats st) {
    r.ec = ec;
    r.stats = st;
  });
}

template <class Stream>
asio::awaitable<std::pair<std::error_code, std::string>> read_all(Stream& s) {
  std::string got;
  auto [ec, n] = co_await asio::async_read(s, asio::dynamic_buffer(got), tuple_awaitable);
  co_return std::pair{ec, std::move(got)};
}

/// Reads until eof and echoes everything back, then half-closes.
asio::awaitable<void> echo(tcp::socket& s, std::string& seen) {
  char buf[16 * 1024];
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
    if (n > 0) {
      seen.append(buf, n);
      co_await asio::async_write(s, asio::buffer(buf, n), asio::use_awaitable);
    }
    if (ec == asio::error::eof) break;
    REQUIRE_FALSE(ec);
  }
  s.shutdown(tcp::socket::shutdown_send);
}

/// A client and a backend connected through the relay under test.
struct tcp_flow {
  asio::io_context ioc;
  tcp::socket user{ioc}, proxy_client{ioc}, proxy_backend{ioc}, backend{ioc};
  tcp_flow() {
    std::tie(user, proxy_client) = tcp_pair(ioc);
    std::tie(proxy_backend, backend) = tcp_pair(ioc);
  }
};

template <class Path>
net::relay_options options() {
  net::relay_options o;
  o.splice = Path::splice;
  o.close_at_end = Path::closes;
  o.idle_timeout = 20s;  // a bound, not expected to fire
  return o;
}

}  // namespace

TEMPLATE_TEST_CASE("relay: 1 MiB each way arrives byte-exact", "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  relay_result r;
  start_relay(f.proxy_client, f.proxy_backend, options<TestType>(), r);
  const std::string sent = pattern(1 << 20, 1);
  std::string echoed, seen;
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {  // the client writes while it reads
    co_await asio::async_write(f.user, asio::buffer(sent), asio::use_awaitable);
    f.user.shutdown(tcp::socket::shutdown_send);
  });
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, got] = co_await read_all(f.user);
    CHECK(ec == asio::error::eof);
    echoed = std::move(got);
  });
  t.spawn(echo(f.backend, seen));
  t.run([&] { return !r.ec; });

  REQUIRE(seen.size() == sent.size());
  REQUIRE(seen == sent);
  REQUIRE(echoed == sent);
  REQUIRE_FALSE(*r.ec);
  REQUIRE(r.stats.bytes_client_to_backend == sent.size());
  REQUIRE(r.stats.bytes_backend_to_client == sent.size());
  if (TestType::splice && net::splice_available) REQUIRE(r.stats.spliced);
  if (!TestType::splice) REQUIRE_FALSE(r.stats.spliced);
  REQUIRE(f.proxy_client.is_open() == !TestType::closes);  // close_at_end: closed by the relay
  REQUIRE(f.proxy_backend.is_open() == !TestType::closes);
}

TEMPLATE_TEST_CASE("relay: a backend on the io_context's own executor type (moved in by move_socket)",
                   "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  // As a spawned flow holds its backend: the socket moved, registration and all, into a socket
  // of another executor type on the same io_context.
  asio::basic_stream_socket<tcp, asio::io_context::executor_type> backend(f.ioc.get_executor());
  net::detail::move_socket(backend, f.proxy_backend);
  REQUIRE(backend.is_open());
  REQUIRE_FALSE(f.proxy_backend.is_open());
  relay_result r;
  start_relay(f.proxy_client, backend, options<TestType>(), r);
  const std::string sent = pattern(256 * 1024, 7);
  std::string echoed, seen;
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {
    co_await asio::async_write(f.user, asio::buffer(sent), asio::use_awaitable);
    f.user.shutdown(tcp::socket::shutdown_send);
  });
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, got] = co_await read_all(f.user);
    CHECK(ec == asio::error::eof);
    echoed = std::move(got);
  });
  t.spawn(echo(f.backend, seen));
  t.run([&] { return !r.ec; });

  REQUIRE(seen == sent);
  REQUIRE(echoed == sent);
  REQUIRE_FALSE(*r.ec);
  REQUIRE(r.stats.bytes_client_to_backend == sent.size());
  REQUIRE(r.stats.bytes_backend_to_client == sent.size());
  if (TestType::splice && net::splice_available) REQUIRE(r.stats.spliced);
}

TEMPLATE_TEST_CASE("relay: half-close, the backend answers after the client's FIN", "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  relay_result r;
  auto opts = options<TestType>();
  opts.buffer_size = 7;  // many small cycles through the buffer (or a page-sized pipe)
  start_relay(f.proxy_client, f.proxy_backend, std::move(opts), r);
  std::string answer;
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {
    co_await asio::async_write(f.user, asio::buffer(std::string_view("hello, backend")),
                               asio::use_awaitable);
    f.user.shutdown(tcp::socket::shutdown_send);
    auto [ec, got] = co_await read_all(f.user);
    CHECK(ec == asio::error::eof);
    answer = std::move(got);
  });
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, got] = co_await read_all(f.backend);  // to the client's FIN
    CHECK(ec == asio::error::eof);
    CHECK(got == "hello, backend");
    co_await asio::async_write(f.backend, asio::buffer(std::string_view("hello, client")),
                               asio::use_awaitable);
    f.backend.close();
  });
  t.run([&] { return !r.ec; });
  REQUIRE(answer == "hello, client");
  REQUIRE_FALSE(*r.ec);
  REQUIRE(r.stats.bytes_client_to_backend == 14);
  REQUIRE(r.stats.bytes_backend_to_client == 13);
}

TEMPLATE_TEST_CASE("relay: small messages one at a time, each answered before the next is sent", "[net][relay]",
                   RELAY_PATHS) {
  // Each read is short (it empties the socket); the next message must still wake the relay
  // (watched: a new edge, with no read that saw EAGAIN in between).
  tcp_flow f;
  relay_result r;
  start_relay(f.proxy_client, f.proxy_backend, options<TestType>(), r);
  int answered = 0;
  std::string seen;
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {
    char buf[64];
    for (int i = 0; i < 200; ++i) {
      const std::string msg = "ping " + std::to_string(i);
      co_await asio::async_write(f.user, asio::buffer(msg), asio::use_awaitable);
      std::size_t got = 0;
      while (got < msg.size()) got += co_await f.user.async_read_some(asio::buffer(buf + got, sizeof buf - got), asio::use_awaitable);
      REQUIRE(std::string_view(buf, got) == msg);
      ++answered;
    }
    f.user.shutdown(tcp::socket::shutdown_send);
    auto [ec, rest] = co_await read_all(f.user);
    CHECK(ec == asio::error::eof);
    CHECK(rest.empty());
  });
  t.spawn(echo(f.backend, seen));
  t.run([&] { return !r.ec; });
  REQUIRE(answered == 200);
  REQUIRE_FALSE(*r.ec);
  REQUIRE(r.stats.bytes_client_to_backend == seen.size());
  REQUIRE(r.stats.bytes_backend_to_client == seen.size());
}

TEMPLATE_TEST_CASE("relay: bytes after urgent data are relayed at once (a read stops short at the urgent mark)",
                   "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  relay_result r;
  start_relay(f.proxy_client, f.proxy_backend, options<TestType>(), r);
  std::string got;
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {
    co_await asio::async_write(f.user, asio::buffer(std::string_view("hi")), asio::use_awaitable);
    char buf[16];
    std::size_t n = 0;
    while (n < 2) n += co_await f.backend.async_read_some(asio::buffer(buf + n, sizeof buf - n), asio::use_awaitable);
    // The relay waits now. All at once: bytes, an urgent byte (not relayed: the relay reads the
    // normal stream), bytes; a read stops short at the urgent mark with "def" still there.
    f.user.send(asio::buffer(std::string_view("abc")));
    f.user.send(asio::buffer(std::string_view("X")), tcp::socket::message_out_of_band);
    f.user.send(asio::buffer(std::string_view("def")));
    got.assign(buf, n);
    while (got.size() < 8) {
      const std::size_t m = co_await f.backend.async_read_some(asio::buffer(buf), asio::use_awaitable);
      got.append(buf, m);
    }
    f.user.shutdown(tcp::socket::shutdown_send);
    f.backend.shutdown(tcp::socket::shutdown_send);
  });
  t.run([&] { return !r.ec; });
  REQUIRE(got == "hiabcdef");
  REQUIRE_FALSE(*r.ec);
}

#if defined(__linux__)
namespace {
constexpr int tcp_close_wait = 8;  // (the kernel's TCP_CLOSE_WAIT: the peer's FIN has arrived)
kernel::tcp_info tcp_info_of(tcp::socket& s) {
  kernel::tcp_info ti{};
  socklen_t len = sizeof ti;
  REQUIRE(::getsockopt(s.native_handle(), IPPROTO_TCP, TCP_INFO, &ti, &len) == 0);
  return ti;
}
}  // namespace

TEMPLATE_TEST_CASE("relay: a backend's last bytes and its FIN, arrived together, reach the client together",
                   "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  const std::string_view answer = "hello, client";
  asio::write(f.backend, asio::buffer(answer));
  f.backend.shutdown(tcp::socket::shutdown_send);
  // Both are in the proxy's socket before the relay starts (its state: CLOSE_WAIT, FIN received).
  REQUIRE(run_until(f.ioc, [&] { return tcp_info_of(f.proxy_backend).tcpi_state == tcp_close_wait; }));
  const auto segs_before = tcp_info_of(f.user).tcpi_segs_in;
  relay_result r;
  start_relay(f.proxy_client, f.proxy_backend, options<TestType>(), r);
  std::string got;
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, all] = co_await read_all(f.user);
    CHECK(ec == asio::error::eof);
    got = std::move(all);
    const auto segs = tcp_info_of(f.user).tcpi_segs_in - segs_before;
    // Watched, the relay knew from the wake-up that the backend had shut: it read the end before
    // sending, and the bytes and the FIN left in one segment (two otherwise).
    if (TestType::closes && net::detail::has_epoll_watch) CHECK(segs == 1);
    else CHECK(segs <= 2);
    f.user.shutdown(tcp::socket::shutdown_send);
  });
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, rest] = co_await read_all(f.backend);
    CHECK(ec == asio::error::eof);
    CHECK(rest.empty());
  });
  t.run([&] { return !r.ec; });
  REQUIRE(got == answer);
  REQUIRE_FALSE(*r.ec);
  REQUIRE(r.stats.bytes_backend_to_client == answer.size());
}
#endif

TEMPLATE_TEST_CASE("relay: initial_to_backend bytes arrive first", "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  relay_result r;
  auto opts = options<TestType>();
  opts.initial_to_backend = "PROXY TCP4 192.0.2.1 192.0.2.2 5000 80\r\n";
  const std::string initial = opts.initial_to_backend;
  start_relay(f.proxy_client, f.proxy_backend, std::move(opts), r);
  std::string at_backend;
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {
    co_await asio::async_write(f.user, asio::buffer(std::string_view("payload")), asio::use_awaitable);
    f.user.shutdown(tcp::socket::shutdown_send);
    auto [ec, got] = co_await read_all(f.user);
    CHECK(ec == asio::error::eof);
    CHECK(got.empty());
  });
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, got] = co_await read_all(f.backend);
    CHECK(ec == asio::error::eof);
    at_backend = std::move(got);
    f.backend.shutdown(tcp::socket::shutdown_send);
  });
  t.run([&] { return !r.ec; });
  REQUIRE(at_backend == initial + "payload");
  REQUIRE_FALSE(*r.ec);
  REQUIRE(r.stats.bytes_client_to_backend == 7);  // initial bytes are not counted
  REQUIRE(r.stats.bytes_backend_to_client == 0);
}

TEMPLATE_TEST_CASE("relay: the backend dies mid-stream, the relay ends with an upstream error",
                   "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  relay_result r;
  start_relay(f.proxy_client, f.proxy_backend, options<TestType>(), r);
  const std::string sent = pattern(4096, 2);
  std::error_code user_ec;
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {
    co_await asio::async_write(f.user, asio::buffer(sent), asio::use_awaitable);
    auto [ec, got] = co_await read_all(f.user);  // ends: the relay closes the client side
    user_ec = ec;
    CHECK(got.empty());
  });
  t.spawn([&]() -> asio::awaitable<void> {
    std::string got(sent.size(), '\0');
    co_await asio::async_read(f.backend, asio::buffer(got), asio::use_awaitable);
    CHECK(got == sent);
    f.backend.set_option(asio::socket_base::linger(true, 0));  // close sends RST
    f.backend.close();
  });
  t.run([&] { return !r.ec; });
  INFO("cause: " << r.stats.cause.message());
  REQUIRE(*r.ec == rproxy::condition::upstream);
  REQUIRE(*r.ec != rproxy::condition::downstream);
  REQUIRE(*r.ec != rproxy::condition::retry_safe);  // bytes reached the backend
  REQUIRE(*r.ec == net::error::backend_reset);
  REQUIRE(r.stats.cause);
  REQUIRE(r.stats.bytes_client_to_backend == sent.size());
  REQUIRE(user_ec);  // eof or reset: the client learns the flow is over
  REQUIRE_FALSE(f.proxy_client.is_open());
  REQUIRE_FALSE(f.proxy_backend.is_open());
}

TEMPLATE_TEST_CASE("relay: the client resets, the relay ends with a downstream error",
                   "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  relay_result r;
  start_relay(f.proxy_client, f.proxy_backend, options<TestType>(), r);
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {
    co_await asio::async_write(f.user, asio::buffer(std::string_view("x")), asio::use_awaitable);
    f.user.set_option(asio::socket_base::linger(true, 0));
    f.user.close();
    co_return;
  });
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, got] = co_await read_all(f.backend);  // the relay closes the backend side
    CHECK(got == "x");
  });
  t.run([&] { return !r.ec; });
  INFO("cause: " << r.stats.cause.message());
  REQUIRE(*r.ec == rproxy::condition::downstream);
  REQUIRE(*r.ec == net::error::client_reset);
  REQUIRE(r.stats.bytes_client_to_backend == 1);
}

TEMPLATE_TEST_CASE("relay: idle timeout ends a silent flow", "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  relay_result r;
  auto opts = options<TestType>();
  opts.idle_timeout = 50ms;
  start_relay(f.proxy_client, f.proxy_backend, std::move(opts), r);
  tasks t{f.ioc};
  std::error_code user_ec, backend_ec;
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, got] = co_await read_all(f.user);
    user_ec = ec;
  });
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, got] = co_await read_all(f.backend);
    backend_ec = ec;
  });
  t.run([&] { return !r.ec; });
  REQUIRE(*r.ec == net::error::idle_timeout);
  REQUIRE(*r.ec == rproxy::condition::downstream);
  REQUIRE(r.stats.bytes_client_to_backend == 0);
  REQUIRE(user_ec);  // both peers see the flow end
  REQUIRE(backend_ec);
}

TEST_CASE("relay: the idle timeout of a relay on a strand (its own timer, not the sweep)", "[net][relay]") {
  asio::io_context ioc;
  auto strand = asio::make_strand(ioc);
  tcp::socket user(ioc), proxy_backend(ioc);
  tcp::socket proxy_client(strand), backend(strand);
  {
    auto [u, pc] = tcp_pair(ioc);
    user = std::move(u);
    proxy_client = tcp::socket(strand, tcp::v4(), pc.release());
    auto [pb, b] = tcp_pair(ioc);
    proxy_backend = tcp::socket(strand, tcp::v4(), pb.release());
    backend = std::move(b);
  }
  relay_result r;
  auto opts = options<splice_path>();
  opts.idle_timeout = 50ms;
  start_relay(proxy_client, proxy_backend, std::move(opts), r);
  REQUIRE(run_until(ioc, [&] { return r.ec.has_value(); }));
  REQUIRE(*r.ec == net::error::idle_timeout);
  REQUIRE(asio::use_service<net::idle_sweep>(ioc).size() == 0);
}

TEMPLATE_TEST_CASE("relay: a finished relay leaves no idle wait behind", "[net][relay]", RELAY_PATHS) {
  tcp_flow f;
  relay_result r;
  auto opts = options<TestType>();
  opts.idle_timeout = 1h;
  start_relay(f.proxy_client, f.proxy_backend, std::move(opts), r);
  REQUIRE(run_until(f.ioc, [&] { return asio::use_service<net::idle_sweep>(f.ioc).size() == 1; }));
  f.user.shutdown(tcp::socket::shutdown_send);
  f.backend.shutdown(tcp::socket::shutdown_send);
  REQUIRE(run_until(f.ioc, [&] { return r.ec.has_value(); }));
  REQUIRE_FALSE(*r.ec);
  REQUIRE(asio::use_service<net::idle_sweep>(f.ioc).size() == 0);
  // Nothing is pending on the io_context now (no hour-long timer): run() returns at once.
  f.ioc.restart();
  f.ioc.run_for(20s);
  REQUIRE(f.ioc.stopped());
}

TEMPLATE_TEST_CASE("relay: a reader that stops reading holds the sender back, and nothing is lost", "[net][relay]",
                   RELAY_PATHS) {
  tcp_flow f;
  relay_result r;
  auto opts = options<TestType>();
  opts.buffer_size = 4096;
  start_relay(f.proxy_client, f.proxy_backend, std::move(opts), r);
  const std::string sent = pattern(32 << 20, 5);  // more than the four sockets' buffers take
  std::size_t written = 0;
  tasks t{f.ioc};
  t.spawn([&]() -> asio::awaitable<void> {
    co_await asio::async_write(f.backend, asio::buffer(sent), asio::use_awaitable);
    written = sent.size();
    f.backend.shutdown(tcp::socket::shutdown_send);
  });
  // The user reads nothing for now: the relay's sink (the client socket) fills, the relay
  // waits for room, and the backend's writes stop (nothing runs any more).
  REQUIRE(run_until(f.ioc, [&] { return f.ioc.poll() == 0; }));
  REQUIRE(written == 0);
  REQUIRE_FALSE(r.ec);
  std::string got;
  t.spawn([&]() -> asio::awaitable<void> {
    auto [ec, all] = co_await read_all(f.user);
    CHECK(ec == asio::error::eof);
    got = std::move(all);
    f.user.shutdown(tcp::socket::shutdown_send);
  });
  t.run([&] { return !r.ec; });
  REQUIRE(got.size() == sent.size());
  REQUIRE(got == sent);
  REQUIRE_FALSE(*r.ec);
  REQUIRE(r.stats.bytes_backend_to_client == sent.size());
}

TEST_CASE("relay: a watched relay keeps its io_context running while it idles, and only then", "[net][relay]") {
  tcp_flow f;
  relay_result r;
  auto opts = options<watched_splice_path>();
  opts.idle_timeout = {};  // nothing else pending on the io_context
  start_relay(f.proxy_client, f.proxy_backend, std::move(opts), r);
  f.ioc.run_for(100ms);  // (returns at the deadline only if work is left)
  REQUIRE_FALSE(f.ioc.stopped());
  REQUIRE_FALSE(r.ec);
  f.user.shutdown(tcp::socket::shutdown_send);
  f.backend.shutdown(tcp::socket::shutdown_send);
  REQUIRE(run_until(f.ioc, [&] { return r.ec.has_value(); }));
  REQUIRE_FALSE(*r.ec);
  f.ioc.restart();
  f.ioc.run_for(20s);  // nothing is left: returns at once
  REQUIRE(f.ioc.stopped());
  // The relay closed both sockets: the peers see them gone.
  REQUIRE_FALSE(f.proxy_client.is_open());
  char c;
  std::error_code ec;
  f.user.read_some(asio::buffer(&c, 1), ec);
  REQUIRE(ec == asio::error::eof);
}

TEST_CASE("relay: an io_context destroyed with idle watched relays frees them, their handlers uncalled",
          "[net][relay]") {
  // As a spawned flow: the completion handler owns the sockets.
  struct owned {
    tcp::socket client, backend;
  };
  auto token = std::make_shared<int>(0);
  int called = 0;
  {
    asio::io_context ioc;
    std::vector<tcp::socket> peers;
    for (int i = 0; i < 3; ++i) {
      auto [user, pc] = tcp_pair(ioc);
      auto [pb, backend] = tcp_pair(ioc);
      auto o = std::make_unique<owned>(owned{std::move(pc), std::move(pb)});
      auto& sockets = *o;
      net::relay_options opts = options<watched_splice_path>();
      net::async_relay(sockets.client, sockets.backend, std::move(opts),
                       [o = std::move(o), token, &called](std::error_code, net::relay_stats) { ++called; });
      peers.push_back(std::move(user));
      peers.push_back(std::move(backend));
    }
    REQUIRE(token.use_count() == 4);
    REQUIRE(run_until(ioc, [&] { return ioc.poll() == 0; }));  // all three started, idle
    REQUIRE(token.use_count() == 4);
  }
  REQUIRE(token.use_count() == 1);  // every relay and its handler freed (the sanitizers see leaks)
  REQUIRE(called == 0);
}

TEST_CASE("relay: an io_context destroyed while a coroutine awaits a watched relay frees the coroutine",
          "[net][relay]") {
  // The coroutine's frame holds the sockets; destroying the relay's handler posts the frame's
  // destruction, which must still find the socket service there.
  auto token = std::make_shared<int>(0);
  {
    asio::io_context ioc;
    auto [user, pc] = tcp_pair(ioc);  // (the peers go before the io_context)
    auto [pb, backend] = tcp_pair(ioc);
    asio::co_spawn(
        ioc,
        [](tcp::socket c, tcp::socket b, std::shared_ptr<int> keep) -> asio::awaitable<void> {
          co_await net::async_relay(c, b, options<watched_splice_path>(), tuple_awaitable);
          (void)keep;
        }(std::move(pc), std::move(pb), token),
        asio::detached);
    REQUIRE(run_until(ioc, [&] { return ioc.poll() == 0; }));  // relaying, idle
    REQUIRE(token.use_count() == 2);
  }
  REQUIRE(token.use_count() == 1);  // the coroutine's frame is gone (the sanitizers see the rest)
}

TEST_CASE("relay: per-operation cancellation ends it with operation_aborted", "[net][relay]") {
  tcp_flow f;
  asio::cancellation_signal sig;
  std::optional<std::error_code> ec;
  net::async_relay(f.proxy_client, f.proxy_backend, options<buffered_path>(),
                   asio::bind_cancellation_slot(sig.slot(), [&](std::error_code e, net::relay_stats) {
                     ec = e;
                   }));
  f.ioc.poll();
  sig.emit(asio::cancellation_type::terminal);
  REQUIRE(run_until(f.ioc, [&] { return ec.has_value(); }));
  REQUIRE(*ec == asio::error::operation_aborted);
}

// Every operation of the relay fails once (the n-th, n = 0, 1, ...) until the exchange succeeds:
// each failure must end the relay with an error from the side that failed, and nothing hangs.
TEST_CASE("relay over test streams: fail the n-th operation on either side", "[net][relay]") {
  const std::string request = pattern(3000, 3), response = pattern(2000, 4);
  for (const auto failing : {net::side::downstream, net::side::upstream}) {
    std::size_t n = 0;
    for (; n < 500; ++n) {
      asio::io_context ioc;
      net::test::fail_count fc{n, asio::error::connection_reset};
      auto* fc_client = failing == net::side::downstream ? &fc : nullptr;
      auto* fc_backend = failing == net::side::upstream ? &fc : nullptr;
      net::test::stream user(ioc), proxy_client(ioc, fc_client), proxy_backend(ioc, fc_backend),
          backend(ioc);
      user.connect(proxy_client);
      proxy_backend.connect(backend);
      user.write_size(512);
      backend.write_size(700);
      proxy_client.read_size(1000);

      net::relay_options o;
      o.buffer_size = 256;
      o.idle_timeout = 10s;
      relay_result r;
      start_relay(proxy_client, proxy_backend, std::move(o), r);
      std::string answer, seen;
      tasks t{ioc};
      t.spawn([&]() -> asio::awaitable<void> {
        auto [ec, k] = co_await asio::async_write(user, asio::buffer(request), tuple_awaitable);
        std::error_code ignored;
        if (!ec) user.shutdown(asio::socket_base::shutdown_send, ignored);
        auto [rec, got] = co_await read_all(user);
        answer = std::move(got);
      });
      t.spawn([&]() -> asio::awaitable<void> {
        auto [ec, got] = co_await read_all(backend);
        seen = std::move(got);
        if (ec != asio::error::eof) co_return;
        auto [wec, k] = co_await asio::async_write(backend, asio::buffer(response), tuple_awaitable);
        std::error_code ignored;
        if (!wec) backend.shutdown(asio::socket_base::shutdown_send, ignored);
      });
      t.run([&] { return !r.ec; });

      if (!fc.triggered()) {
        REQUIRE_FALSE(*r.ec);
        REQUIRE(seen == request);
        REQUIRE(answer == response);
        REQUIRE(r.stats.bytes_client_to_backend == request.size());
        REQUIRE(r.stats.bytes_backend_to_client == response.size());
        break;
      }
      INFO("failing operation " << n);
      REQUIRE(*r.ec);
      if (failing == net::side::downstream) {
        REQUIRE(*r.ec == net::error::client_reset);
      } else {
        REQUIRE(*r.ec == net::error::backend_reset);
      }
      REQUIRE(r.stats.cause == asio::error::connection_reset);
      REQUIRE_FALSE(proxy_client.is_open());
      REQUIRE_FALSE(proxy_backend.is_open());
    }
    REQUIRE(n > 10);
    REQUIRE(n < 500);
  }
}
