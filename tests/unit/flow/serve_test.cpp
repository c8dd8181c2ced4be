// The flow driver with a fake protocol adapter: a line protocol whose hello is the first line.
#include <rproxy/flow/serve.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <catch2/catch.hpp>

#include "run_until.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace {

using asio::ip::tcp;
using namespace std::chrono_literals;
using rproxy::test::run_until;
namespace flow = rproxy::flow;
constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

struct line_flow : rproxy::flow_info {
  std::string reply;  ///< a stage's answer for `replied`
};
struct line_protocol {
  using flow = line_flow;
  using hello = std::string_view;
  using message = std::string_view;
  using response = std::string_view;
};

/// The fake protocol: the hello is the first line (at most 64 bytes); a refusal is one line.
struct line_adapter {
  static constexpr bool reads_hello = true;

  class reader {
  public:
    std::span<std::byte> prepare(std::size_t n) {
      buf_.resize(used_ + n);
      return {reinterpret_cast<std::byte*>(buf_.data() + used_), n};
    }
    void commit(std::size_t n) {
      used_ += n;
      buf_.resize(used_);
    }
    void feed(std::string_view b) {
      buf_.insert(buf_.begin() + static_cast<std::ptrdiff_t>(used_), b.begin(), b.end());
      used_ += b.size();
    }
    std::optional<std::chrono::milliseconds> settle_time() const { return std::nullopt; }
    template <class Ctx>
    flow::hello_step next(Ctx&, bool) {
      const auto nl = buf_.find('\n');
      if (nl == std::string::npos)
        return buf_.size() > 64 ? flow::hello_step::fail(std::make_error_code(std::errc::message_size))
                                : flow::hello_step::need_more();
      line_ = nl;
      return flow::hello_step::ready();
    }
    std::string_view hello() const { return std::string_view(buf_).substr(0, line_); }
    std::string_view all() const { return buf_; }

  private:
    std::string buf_;
    std::size_t used_ = 0;
    std::size_t line_ = 0;
  };
  reader make_reader() const { return {}; }

  template <class Ctx>
  std::string render(const Ctx&, const rproxy::reject_reason& r) const {
    return "NO " + std::string(rproxy::to_string(r.code)) + ":" + std::string(r.message) + "\n";
  }
  template <class Ctx>
  asio::awaitable<std::error_code> answer(tcp::socket& s, Ctx& ctx, reader&, const flow::options&) const {
    co_return co_await flow::detail::send(s, ctx.reply);
  }
  template <class Ctx>
  std::string first_bytes(const Ctx&, const reader& r) const {
    return std::string(r.all());
  }
};

/// The same protocol with a message loop: each client line runs on_message and goes to the
/// backend; each backend line runs on_response and comes back.
struct line_message_adapter : line_adapter {
  template <class Pipeline>
  asio::awaitable<flow::exchange_result> exchange(Pipeline& p, typename Pipeline::context_type& ctx, tcp::socket& client,
                                                  tcp::socket& backend, const std::string& first, const flow::options&,
                                                  reader&, bool) const {
    const auto nl = first.find('\n') + 1;
    std::string in = first.substr(nl), up;
    co_await asio::async_write(backend, asio::buffer(first.substr(0, nl)), tuple_awaitable);  // the hello
    auto [hec, hn] = co_await asio::async_read_until(backend, asio::dynamic_buffer(up), '\n', tuple_awaitable);
    if (hec) co_return flow::exchange_result{rproxy::net::error::backend_reset};
    up.erase(0, hn);  // its answer is not the client's
    for (;;) {
      auto [ec, n] = co_await asio::async_read_until(client, asio::dynamic_buffer(in), '\n', tuple_awaitable);
      if (ec) co_return flow::exchange_result{};  // the client is done
      const std::string line = in.substr(0, n - 1);
      in.erase(0, n);
      if (auto v = co_await rproxy::run_phase<rproxy::phase::message>(p, ctx, std::string_view(line)); !v.is_next()) {
        ctx.rejected = v.reason();
        co_return flow::exchange_result{co_await flow::detail::send(client, render(ctx, v.reason()))};
      }
      co_await asio::async_write(backend, asio::buffer(line + "\n"), tuple_awaitable);
      auto [bec, m] = co_await asio::async_read_until(backend, asio::dynamic_buffer(up), '\n', tuple_awaitable);
      if (bec) co_return flow::exchange_result{rproxy::net::error::backend_reset};
      const std::string answer = up.substr(0, m);
      up.erase(0, m);
      if (auto v = co_await rproxy::run_phase<rproxy::phase::response>(p, ctx, std::string_view(answer)); !v.is_next())
        co_return flow::exchange_result{};
      co_await asio::async_write(client, asio::buffer(answer), tuple_awaitable);
    }
  }
};

/// What the stages saw, for the checks.
struct record {
  int closes = 0;
  std::error_code close_ec;
  int routes = 0;
  int connects = 0;
  int messages = 0;
  int responses = 0;
  std::vector<std::error_code> connect_errors;
};

/// First and therefore closes last: counts on_close.
struct closer {
  record* r;
  template <class Ctx>
  void on_close(Ctx&, std::error_code ec) {
    ++r->closes;
    r->close_ec = ec;
  }
};

struct gate {
  bool refuse = false;
  template <class Ctx>
  rproxy::verdict on_accept(Ctx&) {
    return refuse ? rproxy::reject(rproxy::reject_code::forbidden, "closed") : rproxy::next;
  }
};

/// An asynchronous hello check: waits on a timer, then refuses "mallory".
struct slow_check {
  template <class Ctx>
  asio::awaitable<rproxy::verdict> on_hello(Ctx&, const std::string_view& name) {
    asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
    co_await t.async_wait(asio::use_awaitable);
    co_return name == "mallory" ? rproxy::reject(rproxy::reject_code::banned, "go away") : rproxy::next;
  }
};

/// Routes to backends in order, moving on after a failed connect; answers "PING" itself.
struct router {
  record* r;
  std::vector<tcp::endpoint> backends;
  struct state {
    std::size_t next = 0;
  };
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const std::string_view& line) {
    ctx.identity = std::string(line);
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    ++r->routes;
    if (ctx.connect_error) r->connect_errors.push_back(ctx.connect_error);
    if (ctx.out_of_attempts) return rproxy::reject(rproxy::reject_code::unavailable, "all down");
    if (ctx.identity == "PING") {
      ctx.reply = "PONG\n";
      return rproxy::replied;
    }
    auto& st = ctx.template state<router>();
    if (st.next >= backends.size()) return rproxy::reject(rproxy::reject_code::unavailable, "none left");
    ctx.backend = backends[st.next++];
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_connect(Ctx&) {
    ++r->connects;
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_message(Ctx&, const std::string_view& line) {
    ++r->messages;
    return line == "forbidden" ? rproxy::reject(rproxy::reject_code::forbidden, "not that") : rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_response(Ctx&, const std::string_view&) {
    ++r->responses;
    return rproxy::next;
  }
};

/// A backend that records what it gets and answers each line with "echo:<line>".
struct echo_backend {
  explicit echo_backend(asio::io_context& ioc) : acc(ioc, {asio::ip::address_v4::loopback(), 0}) {}
  tcp::acceptor acc;
  std::string got;
  bool accepted = false;
  asio::awaitable<void> serve() {
    auto [aec, s] = co_await acc.async_accept(tuple_awaitable);
    if (aec) co_return;
    accepted = true;
    std::string buf;
    for (;;) {
      auto [ec, n] = co_await asio::async_read_until(s, asio::dynamic_buffer(buf), '\n', tuple_awaitable);
      if (ec) break;
      got += buf.substr(0, n);
      const std::string out = "echo:" + buf.substr(0, n);
      buf.erase(0, n);
      co_await asio::async_write(s, asio::buffer(out), tuple_awaitable);
    }
  }
};

tcp::endpoint dead_endpoint(asio::io_context& ioc) {
  tcp::acceptor a(ioc, {asio::ip::address_v4::loopback(), 0});
  return a.local_endpoint();  // closed when `a` goes: connects are refused
}

struct harness {
  asio::io_context ioc;
  echo_backend backend{ioc};
  record rec;
  flow::options opt;
  std::optional<std::error_code> result;

  harness() {
    opt.hello_timeout = 300ms;
    opt.connect_timeout = 500ms;
    opt.relay.idle_timeout = 2s;
  }

  template <class Pipeline, class Adapter = line_adapter>
  tcp::socket start(Pipeline& p, Adapter a = {}) {
    tcp::acceptor front(ioc, {asio::ip::address_v4::loopback(), 0});
    tcp::socket client(ioc);
    client.connect(front.local_endpoint());
    tcp::socket server = front.accept();
    asio::co_spawn(ioc, backend.serve(), asio::detached);
    asio::co_spawn(ioc, flow::serve(p, a, std::move(server), opt), [this](std::exception_ptr e, std::error_code ec) {
      REQUIRE_FALSE(e);
      result = ec;
    });
    return client;
  }

  /// The same through flow::spawn: `done` records the result (and counts its calls); it is
  /// called after on_close, so `closes_at_done` says what on_close had run by then.
  template <class Pipeline, class Adapter = line_adapter>
  tcp::socket spawn(Pipeline& p, Adapter a = {}) {
    tcp::acceptor front(ioc, {asio::ip::address_v4::loopback(), 0});
    tcp::socket client(ioc);
    client.connect(front.local_endpoint());
    tcp::socket server = front.accept();
    asio::co_spawn(ioc, backend.serve(), asio::detached);
    flow::spawn(p, a, std::move(server), opt, std::nullopt, [this](std::error_code ec) {
      ++dones;
      closes_at_done = rec.closes;
      result = ec;
    });
    return client;
  }
  int dones = 0;
  int closes_at_done = -1;

  /// Everything the client gets until `want` bytes arrived or the driver closed.
  std::string read(tcp::socket& s, std::size_t want = 1 << 20) {
    std::string got;
    bool done = false;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          char buf[512];
          while (got.size() < want) {
            auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
            if (ec) break;
            got.append(buf, n);
          }
          done = true;
        },
        asio::detached);
    REQUIRE(run_until(ioc, [&] { return done; }));
    return got;
  }
  void finish() { REQUIRE(run_until(ioc, [&] { return result.has_value(); })); }
};

template <class... S>
auto make(S... s) {
  return rproxy::make_pipeline<line_protocol>(std::move(s)...);
}

}  // namespace

TEST_CASE("flow: the hello and what follows reach the backend, then bytes are relayed", "[flow]") {
  harness h;
  auto p = make(closer{&h.rec}, gate{}, slow_check{}, router{&h.rec, {h.backend.acc.local_endpoint()}});
  auto client = h.start(p);
  asio::write(client, asio::buffer(std::string("alice\nmore\n")));
  CHECK(h.read(client, 21) == "echo:alice\necho:more\n");
  client.close();
  h.finish();
  CHECK(*h.result == std::error_code{});
  CHECK(h.backend.got == "alice\nmore\n");
  CHECK(h.rec.connects == 1);
  CHECK(h.rec.closes == 1);
}

TEST_CASE("flow: spawn relays like serve and calls `done` once, after on_close", "[flow]") {
  harness h;
  auto p = make(closer{&h.rec}, gate{}, slow_check{}, router{&h.rec, {h.backend.acc.local_endpoint()}});
  auto client = h.spawn(p);
  asio::write(client, asio::buffer(std::string("alice\nmore\n")));
  CHECK(h.read(client, 21) == "echo:alice\necho:more\n");
  CHECK_FALSE(h.result.has_value());  // still relaying
  client.shutdown(tcp::socket::shutdown_send);
  CHECK(h.read(client).empty());      // the backend's end came through
  h.finish();
  CHECK(*h.result == std::error_code{});
  CHECK(h.dones == 1);
  CHECK(h.closes_at_done == 1);
  CHECK(h.rec.closes == 1);
  CHECK(h.rec.close_ec == std::error_code{});
  CHECK(h.backend.got == "alice\nmore\n");
  CHECK(h.rec.connects == 1);
}

TEST_CASE("flow: spawn ends a refused flow itself: the refusal is told, on_close and `done` run", "[flow]") {
  harness h;
  auto p = make(closer{&h.rec}, gate{true}, router{&h.rec, {h.backend.acc.local_endpoint()}});
  auto client = h.spawn(p);
  asio::write(client, asio::buffer(std::string("alice\n")));
  CHECK(h.read(client) == "NO forbidden:closed\n");
  h.finish();
  CHECK(h.dones == 1);
  CHECK(h.closes_at_done == 1);
  CHECK(h.rec.routes == 0);
  CHECK_FALSE(h.backend.accepted);
}

TEST_CASE("flow: a spawned flow whose io_context goes away first is destroyed, `done` uncalled", "[flow]") {
  record rec;
  int dones = 0;
  std::optional<tcp::socket> client;
  {
    harness h;
    auto p = make(closer{&rec}, router{&rec, {h.backend.acc.local_endpoint()}});
    tcp::acceptor front(h.ioc, {asio::ip::address_v4::loopback(), 0});
    client.emplace(h.ioc);
    client->connect(front.local_endpoint());
    asio::co_spawn(h.ioc, h.backend.serve(), asio::detached);
    flow::spawn(p, line_adapter{}, front.accept(), h.opt, std::nullopt, [&](std::error_code) { ++dones; });
    asio::write(*client, asio::buffer(std::string("alice\n")));
    REQUIRE(run_until(h.ioc, [&] { return rec.connects == 1; }));  // relaying now
    client.reset();
  }  // the io_context (declared first in harness) goes last, with the flow still relaying
  CHECK(dones == 0);
}

TEST_CASE("flow: a refusal on accept is told once the hello says how, and nothing is connected", "[flow]") {
  harness h;
  auto p = make(closer{&h.rec}, gate{true}, router{&h.rec, {h.backend.acc.local_endpoint()}});
  auto client = h.start(p);
  asio::write(client, asio::buffer(std::string("alice\n")));
  CHECK(h.read(client) == "NO forbidden:closed\n");
  h.finish();
  CHECK(h.rec.routes == 0);
  CHECK_FALSE(h.backend.accepted);
  CHECK(h.rec.closes == 1);
}

TEST_CASE("flow: an asynchronous stage's refusal is rendered by the adapter", "[flow]") {
  harness h;
  auto p = make(closer{&h.rec}, slow_check{}, router{&h.rec, {h.backend.acc.local_endpoint()}});
  auto client = h.start(p);
  asio::write(client, asio::buffer(std::string("mallory\n")));
  CHECK(h.read(client) == "NO banned:go away\n");
  h.finish();
  CHECK(h.rec.routes == 0);
  CHECK(h.rec.closes == 1);
}

TEST_CASE("flow: `replied` sends the stage's answer and connects nowhere", "[flow]") {
  harness h;
  auto p = make(closer{&h.rec}, router{&h.rec, {h.backend.acc.local_endpoint()}});
  auto client = h.start(p);
  asio::write(client, asio::buffer(std::string("PING\n")));
  CHECK(h.read(client) == "PONG\n");
  h.finish();
  CHECK_FALSE(h.backend.accepted);
  CHECK(h.rec.closes == 1);
}

TEST_CASE("flow: a refused connect fails over, and the stage learns of the failed pick", "[flow]") {
  harness h;
  auto p = make(closer{&h.rec}, router{&h.rec, {dead_endpoint(h.ioc), h.backend.acc.local_endpoint()}});
  auto client = h.start(p);
  asio::write(client, asio::buffer(std::string("bob\n")));
  CHECK(h.read(client, 9) == "echo:bob\n");
  client.close();
  h.finish();
  REQUIRE(h.rec.connect_errors.size() == 1);
  CHECK(h.rec.connect_errors[0] == rproxy::net::error::connect_refused);
  CHECK(h.rec.routes == 2);
  CHECK(h.rec.connects == 1);
  CHECK(h.rec.closes == 1);
}

TEST_CASE("flow: when attempts are spent, the last on_route reports the failure and its refusal is sent", "[flow]") {
  harness h;
  h.opt.max_connect_attempts = 2;
  auto p = make(closer{&h.rec}, router{&h.rec, {dead_endpoint(h.ioc), dead_endpoint(h.ioc), dead_endpoint(h.ioc)}});
  auto client = h.start(p);
  asio::write(client, asio::buffer(std::string("carol\n")));
  CHECK(h.read(client) == "NO unavailable:all down\n");
  h.finish();
  CHECK(*h.result == rproxy::condition::retry_safe);
  CHECK(h.rec.routes == 3);  // two attempts, then the one that reports the second failure
  CHECK(h.rec.connect_errors.size() == 2);
  CHECK(h.rec.connects == 0);
  CHECK(h.rec.closes == 1);
  CHECK(h.rec.close_ec == rproxy::net::error::connect_refused);
}

TEST_CASE("flow: a slow or oversized hello ends the flow without a backend", "[flow]") {
  SECTION("slow") {
    harness h;
    auto p = make(closer{&h.rec}, router{&h.rec, {h.backend.acc.local_endpoint()}});
    auto client = h.start(p);
    asio::write(client, asio::buffer(std::string("no newline yet")));
    CHECK(h.read(client).empty());
    h.finish();
    CHECK(*h.result == rproxy::net::error::idle_timeout);
    CHECK(h.rec.closes == 1);
  }
  SECTION("oversized") {
    harness h;
    auto p = make(closer{&h.rec}, router{&h.rec, {h.backend.acc.local_endpoint()}});
    auto client = h.start(p);
    asio::write(client, asio::buffer(std::string(100, 'x')));
    CHECK(h.read(client).empty());
    h.finish();
    CHECK(*h.result == std::errc::message_size);
    CHECK(h.rec.routes == 0);
    CHECK(h.rec.closes == 1);
  }
}

TEST_CASE("flow: the message loop runs on_message and on_response per message", "[flow]") {
  harness h;
  auto p = make(closer{&h.rec}, router{&h.rec, {h.backend.acc.local_endpoint()}});
  auto client = h.start(p, line_message_adapter{});
  asio::write(client, asio::buffer(std::string("dave\nhello\n")));
  CHECK(h.read(client, 11) == "echo:hello\n");
  asio::write(client, asio::buffer(std::string("forbidden\n")));
  CHECK(h.read(client) == "NO forbidden:not that\n");
  h.finish();
  CHECK(h.rec.messages == 2);
  CHECK(h.rec.responses == 1);
  CHECK(h.backend.got == "dave\nhello\n");
  CHECK(h.rec.closes == 1);
}
