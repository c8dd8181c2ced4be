#include <rproxy/flow/mc.hpp>

#include <rproxy/codec/mc/handshake.hpp>
#include <rproxy/codec/mc/legacy.hpp>
#include <rproxy/codec/mc/login.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/codec/mc/text_component.hpp>
#include <rproxy/health/mc_status_probe.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
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
namespace mc = rproxy::codec::mc;
namespace net = rproxy::net;
constexpr auto tuple_awaitable = asio::experimental::as_tuple(asio::use_awaitable);

using rproxy::test::run_until;

/// The test's only stage: routes every login to `backend`, can answer status itself, and can
/// refuse by user name.
struct test_router {
  explicit test_router(tcp::endpoint b) : backend(b) {}
  tcp::endpoint backend;
  std::string rewrite;
  net::proxy_send proxy = net::proxy_send::none;
  std::string banned_name;
  int* routes = nullptr;  ///< counts on_route calls when set

  template <class Ctx>
  rproxy::verdict on_hello(Ctx&, const mc::hello& h) {
    if (h.username() && *h.username() == banned_name) return rproxy::reject(rproxy::reject_code::banned, "no entry");
    return rproxy::next;
  }
  int* joined_count = nullptr;  ///< counts on_connect calls when set
  template <class Ctx>
  rproxy::verdict on_connect(Ctx&) {
    if (joined_count) ++*joined_count;
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    if (routes) ++*routes;
    if (ctx.out_of_attempts) return rproxy::reject(rproxy::reject_code::unavailable, "backend down");
    if (ctx.legacy) {
      ctx.reply = mc::make_legacy_kick(*ctx.legacy, {.protocol = 127, .version_name = "test", .motd = "legacy " + ctx.host, .online = 1, .max = 2});
      return rproxy::replied;
    }
    if (ctx.next == mc::intent::status) {
      mc::status_info s;
      s.version_name = "test";
      s.protocol = ctx.protocol;
      s.description = mc::text_component("hello " + ctx.host);
      mc::append_status_response(ctx.reply, mc::to_json(s));
      return rproxy::replied;
    }
    ctx.backend = backend;
    ctx.rewrite_host = rewrite;
    ctx.proxy_out = proxy;
    return rproxy::next;
  }
};

/// A backend that records every byte it gets and answers "welcome" once it has `expect` bytes.
struct fake_backend {
  explicit fake_backend(asio::io_context& ioc) : acc(ioc, {asio::ip::address_v4::loopback(), 0}) {}
  tcp::acceptor acc;
  std::string got;
  bool accepted = false;
  bool closed = false;
  std::size_t expect = 0;

  asio::awaitable<void> serve() {
    auto [aec, s] = co_await acc.async_accept(tuple_awaitable);
    if (aec) co_return;
    accepted = true;
    char buf[4096];
    bool answered = false;
    for (;;) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
      if (ec) break;
      got.append(buf, n);
      if (!answered && got.size() >= expect) {
        answered = true;
        co_await asio::async_write(s, asio::buffer(std::string("welcome")), tuple_awaitable);
      }
    }
    closed = true;
  }
};

struct harness {
  asio::io_context ioc;
  fake_backend backend{ioc};
  int joined = 0;
  rproxy::flow::options opt;
  std::optional<std::error_code> result;

  harness() {
    opt.hello_timeout = 300ms;
    opt.connect_timeout = 500ms;
    opt.relay.idle_timeout = 2s;
  }

  template <class Pipeline>
  tcp::socket start(Pipeline& p) {
    tcp::acceptor front(ioc, {asio::ip::address_v4::loopback(), 0});
    tcp::socket client(ioc);
    client.connect(front.local_endpoint());
    tcp::socket server = front.accept();
    asio::co_spawn(ioc, backend.serve(), asio::detached);
    asio::co_spawn(
        ioc,
        [](Pipeline& p, tcp::socket s, const rproxy::flow::options& o) -> asio::awaitable<std::error_code> {
          co_return co_await rproxy::flow::serve(p, rproxy::flow::mc_adapter{}, std::move(s), o);
        }(p, std::move(server), opt),
        [this](std::exception_ptr e, std::error_code ec) {
          REQUIRE_FALSE(e);
          result = ec;
        });
    return client;
  }
};

mc::bytes hello_bytes(std::string_view host, mc::intent next, std::int32_t protocol = 765, std::string_view name = "alice") {
  mc::bytes out;
  mc::handshake hs;
  hs.protocol_version = protocol;
  hs.server_address = std::string(host);
  hs.server_port = 25565;
  hs.next_state = next;
  mc::append_handshake(out, hs);
  if (next == mc::intent::status) {
    mc::append_status_request(out);
  } else {
    mc::login_start ls;
    ls.username = std::string(name);
    ls.player_uuid = mc::uuid{};
    mc::append_login_start(out, ls, protocol);
  }
  return out;
}

/// Reads from `s` until `enough(read so far)` or the peer closes; returns what was read.
template <class Enough>
std::string read_until(asio::io_context& ioc, tcp::socket& s, Enough enough) {
  std::string got;
  bool done = false;
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        char buf[4096];
        while (!enough(got)) {
          auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
          if (ec) break;
          got.append(buf, n);
        }
        done = true;
      },
      asio::detached);
  run_until(ioc, [&] { return done; });
  return got;
}

/// At least `n` bytes (or all until the peer closes).
std::string read_all(asio::io_context& ioc, tcp::socket& s, std::size_t n) {
  return read_until(ioc, s, [n](const std::string& got) { return got.size() >= n; });
}

/// One whole packet.
std::string read_packet(asio::io_context& ioc, tcp::socket& s) {
  return read_until(ioc, s, [](const std::string& got) {
    mc::packet_reader r(1 << 16);
    r.feed(mc::as_bytes(got));
    return !r.next().need_more();
  });
}

/// The first packet in `bytes`, decoded.
std::optional<mc::packet> first_packet(mc::packet_reader& r, const std::string& bytes) {
  r.feed(mc::as_bytes(bytes));
  auto p = r.next();
  if (!p) return std::nullopt;
  return *p;
}

}  // namespace

TEST_CASE("flow/mc: a login reaches the backend byte-exact, with what followed it, then relays", "[mc][flow]") {
  harness h;
  test_router r0{h.backend.acc.local_endpoint()};
  r0.joined_count = &h.joined;
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r0);
  auto client = h.start(p);
  auto hello = hello_bytes("Lobby.Example.com.\0FML2\0", mc::intent::login);
  const std::string sent = std::string(mc::as_chars(hello)) + "early play bytes";
  h.backend.expect = sent.size();
  asio::write(client, asio::buffer(sent));
  CHECK(read_all(h.ioc, client, 7) == "welcome");
  REQUIRE(run_until(h.ioc, [&] { return h.backend.got.size() >= sent.size(); }));
  CHECK(h.backend.got == sent);
  CHECK(h.joined == 1);
  client.close();
  REQUIRE(run_until(h.ioc, [&] { return h.result.has_value(); }));
  CHECK(h.backend.closed);
}

TEST_CASE("flow/mc: rewrite_host re-encodes only the handshake; PROXY v1 goes first", "[mc][flow]") {
  harness h;
  test_router r{h.backend.acc.local_endpoint()};
  r.rewrite = "10.0.0.5";
  r.proxy = net::proxy_send::v1;
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r);
  auto client = h.start(p);
  auto hello = hello_bytes(std::string_view("play.example.com\0FML3\0", 22), mc::intent::login);
  asio::write(client, asio::buffer(hello));

  mc::bytes want;
  mc::handshake hs;
  hs.protocol_version = 765;
  hs.server_address = std::string("10.0.0.5\0FML3\0", 14);  // the Forge marker is kept
  hs.server_port = 25565;
  hs.next_state = mc::intent::login;
  mc::append_handshake(want, hs);
  mc::login_start ls{"alice", std::nullopt, mc::uuid{}};
  mc::append_login_start(want, ls, 765);
  const auto port = client.local_endpoint().port();
  const std::string proxy_line = "PROXY TCP4 127.0.0.1 127.0.0.1 " + std::to_string(port) + " " +
                                 std::to_string(client.remote_endpoint().port()) + "\r\n";
  h.backend.expect = proxy_line.size() + want.size();
  CHECK(read_all(h.ioc, client, 7) == "welcome");
  CHECK(h.backend.got == proxy_line + std::string(mc::as_chars(want)));
}

TEST_CASE("flow/mc: a status reply from a stage is followed by the pong", "[mc][flow]") {
  harness h;
  test_router r0{h.backend.acc.local_endpoint()};
  r0.joined_count = &h.joined;
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r0);
  auto client = h.start(p);
  asio::write(client, asio::buffer(hello_bytes("mc.example.com", mc::intent::status)));
  auto got = read_packet(h.ioc, client);
  mc::packet_reader r2(1 << 16);
  auto resp = first_packet(r2, got);
  REQUIRE(resp);
  auto text = mc::parse_status_response(resp->body);
  REQUIRE(text);
  CHECK(mc::plain_text(mc::parse_status_json(*text)->description) == "hello mc.example.com");
  mc::bytes ping;
  mc::append_ping(ping, 0x1122334455667788);
  asio::write(client, asio::buffer(ping));
  auto pong_bytes = read_all(h.ioc, client, 10);
  mc::packet_reader r3(64);
  auto pong = first_packet(r3, pong_bytes);
  REQUIRE(pong);
  CHECK(*mc::parse_pong(pong->body) == 0x1122334455667788);
  REQUIRE(run_until(h.ioc, [&] { return h.result.has_value(); }));
  CHECK_FALSE(h.backend.accepted);
}

TEST_CASE("flow/mc: a refused login gets a Login Disconnect with the reason", "[mc][flow]") {
  harness h;
  test_router r{h.backend.acc.local_endpoint()};
  r.banned_name = "griefer";
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r);
  auto client = h.start(p);
  asio::write(client, asio::buffer(hello_bytes("mc.example.com", mc::intent::login, 47, "griefer")));
  auto got = read_all(h.ioc, client, 1 << 20);  // until the proxy closes
  mc::packet_reader in(1 << 16);
  auto pk = first_packet(in, got);
  REQUIRE(pk);
  auto reason = mc::parse_login_disconnect(pk->body);
  REQUIRE(reason);
  CHECK(mc::plain_text(*reason) == "no entry");
  REQUIRE(run_until(h.ioc, [&] { return h.result.has_value(); }));
  CHECK_FALSE(h.backend.accepted);
}

TEST_CASE("flow/mc: a backend that cannot be reached gives the stage's kick once attempts are spent", "[mc][flow]") {
  harness h;
  tcp::endpoint dead;
  {
    tcp::acceptor a(h.ioc, {asio::ip::address_v4::loopback(), 0});
    dead = a.local_endpoint();
  }
  int routes = 0;
  test_router r{dead};
  r.routes = &routes;
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r);
  auto client = h.start(p);
  asio::write(client, asio::buffer(hello_bytes("mc.example.com", mc::intent::login, 340)));
  auto got = read_all(h.ioc, client, 1 << 20);
  mc::packet_reader in(1 << 16);
  auto pk = first_packet(in, got);
  REQUIRE(pk);
  CHECK(mc::plain_text(*mc::parse_login_disconnect(pk->body)) == "backend down");
  REQUIRE(run_until(h.ioc, [&] { return h.result.has_value(); }));
  CHECK(*h.result == rproxy::condition::retry_safe);
  CHECK(routes == 4);  // max_connect_attempts, then the final on_route that reports and rejects
}

TEST_CASE("flow/mc: legacy pings are answered by the stage, routed by the 1.6 host", "[mc][flow]") {
  harness h;
  test_router r0{h.backend.acc.local_endpoint()};
  r0.joined_count = &h.joined;
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r0);
  auto client = h.start(p);
  mc::bytes ping;
  mc::append_legacy_ping(ping, {mc::legacy_ping_kind::v1_6, 78, "Old.Example.com", 25565});
  asio::write(client, asio::buffer(ping));
  auto got = read_all(h.ioc, client, 1 << 20);
  auto kick = mc::parse_legacy_kick(mc::as_bytes(got));
  REQUIRE(kick);
  CHECK(kick->motd == "legacy old.example.com");
  CHECK(kick->version_name == "test");
}

TEST_CASE("flow/mc: a lone 0xFE (beta ping) is settled once the client pauses", "[mc][flow]") {
  harness h;
  test_router r0{h.backend.acc.local_endpoint()};
  r0.joined_count = &h.joined;
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r0);
  auto client = h.start(p);
  const unsigned char fe = 0xFE;
  asio::write(client, asio::buffer(&fe, 1));
  auto got = read_all(h.ioc, client, 1 << 20);
  auto kick = mc::parse_legacy_kick(mc::as_bytes(got));
  REQUIRE(kick);
  CHECK(kick->motd == "legacy ");
}

TEST_CASE("flow/mc: slow, malformed or oversized hellos close without touching a backend", "[mc][flow]") {
  SECTION("slowloris: one byte, then silence") {
    harness h;
    test_router r0{h.backend.acc.local_endpoint()};
  r0.joined_count = &h.joined;
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r0);
    auto client = h.start(p);
    const char b = 0x10;
    asio::write(client, asio::buffer(&b, 1));
    REQUIRE(run_until(h.ioc, [&] { return h.result.has_value(); }));
    CHECK(*h.result == rproxy::net::error::idle_timeout);
    CHECK_FALSE(h.backend.accepted);
  }
  SECTION("a bogus VarInt length") {
    harness h;
    test_router r0{h.backend.acc.local_endpoint()};
  r0.joined_count = &h.joined;
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r0);
    auto client = h.start(p);
    const unsigned char bad[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x00};
    asio::write(client, asio::buffer(bad));
    REQUIRE(run_until(h.ioc, [&] { return h.result.has_value(); }));
    CHECK(h.result->category() == mc::error_category());
    CHECK_FALSE(h.backend.accepted);
  }
  SECTION("a hostname far over 255 characters") {
    harness h;
    test_router r0{h.backend.acc.local_endpoint()};
  r0.joined_count = &h.joined;
  auto p = rproxy::make_pipeline<mc::pipeline_protocol<>>(r0);
    auto client = h.start(p);
    auto hello = hello_bytes(std::string(1500, 'a') + ".example.com", mc::intent::login);
    asio::write(client, asio::buffer(hello));
    REQUIRE(run_until(h.ioc, [&] { return h.result.has_value(); }));
    CHECK(h.result->category() == mc::error_category());
    CHECK_FALSE(h.backend.accepted);
  }
}

TEST_CASE("fetch_mc_status reads a server's status answer, and fails on garbage or silence", "[mc][health]") {
  asio::io_context ioc;
  tcp::acceptor acc(ioc, {asio::ip::address_v4::loopback(), 0});
  std::string seen;
  auto server = [&](std::string answer) -> asio::awaitable<void> {
    auto [aec, s] = co_await acc.async_accept(tuple_awaitable);
    if (aec) co_return;
    char buf[512];
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), tuple_awaitable);
    seen.assign(buf, ec ? 0 : n);
    if (!answer.empty()) co_await asio::async_write(s, asio::buffer(answer), tuple_awaitable);
    co_await asio::steady_timer(s.get_executor(), 1s).async_wait(tuple_awaitable);
  };
  std::optional<rproxy::result<rproxy::health::mc_status_reply>> got;
  auto fetch = [&](std::chrono::milliseconds t) {
    got.reset();
    rproxy::health::mc_status_query q;
    q.host = "lobby.example.com";
    q.protocol = 47;
    asio::co_spawn(
        ioc,
        [&]() -> asio::awaitable<void> {
          got.emplace(co_await rproxy::health::fetch_mc_status(ioc.get_executor(), acc.local_endpoint(), q, t));
        },
        asio::detached);
    REQUIRE(run_until(ioc, [&] { return got.has_value(); }));
  };

  SECTION("a good answer") {
    mc::bytes out;
    mc::append_status_response(out, R"({"version":{"name":"1.8.8","protocol":47},"description":{"text":"hi"}})");
    asio::co_spawn(ioc, server(std::string(mc::as_chars(out))), asio::detached);
    fetch(2s);
    REQUIRE(*got);
    CHECK((*got)->json == R"({"version":{"name":"1.8.8","protocol":47},"description":{"text":"hi"}})");
    mc::packet_reader in(1024);
    in.feed(mc::as_bytes(seen));
    auto hs = mc::parse_handshake(in.next()->body);
    REQUIRE(hs);
    CHECK(hs->server_address == "lobby.example.com");
    CHECK(hs->protocol_version == 47);
    CHECK(hs->next_state == mc::intent::status);
  }
  SECTION("garbage") {
    asio::co_spawn(ioc, server("\x05\x01garbage"), asio::detached);
    fetch(2s);
    CHECK_FALSE(*got);
  }
  SECTION("silence") {
    asio::co_spawn(ioc, server(""), asio::detached);
    fetch(200ms);
    REQUIRE_FALSE(*got);
    CHECK(got->error() == rproxy::net::error::connect_timeout);
  }
}
