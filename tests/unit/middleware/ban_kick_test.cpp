// middleware::ban_kick and ban_roster: a new ban ends the open flows it covers (by address or
// identity) on their worker: a TCP flow's socket is shut down (the peer reads its end), a
// WebSocket flow gets close 1008; flows it does not cover stay; a flow with no socket is refused
// at its next hook unless its transport offered a closer (QUIC); on_close unlists; each kick is counted and audited. And shared_bans'
// on_change drives the sweep (a ban here, a ban file published without Redis).
#include <rproxy/middleware/ban_kick.hpp>

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <rproxy/cluster/shared_bans.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/observe/metrics.hpp>
#include <rproxy/pipeline/context.hpp>

#include "run_until.hpp"

using namespace std::chrono_literals;
namespace mw = rproxy::middleware;
using tcp = asio::ip::tcp;

namespace {

using ctx_t = rproxy::basic_context<rproxy::flow_info, mw::ban_kick>;

/// A ws flow's sender as far as the kick sees it.
struct fake_ws {
  std::uint16_t code = 0;
  std::string reason;
  void close(std::uint16_t c, std::string_view r) {
    code = c;
    reason = std::string(r);
  }
};
struct ws_like_flow : rproxy::flow_info {
  fake_ws* ws = nullptr;
};
using ws_ctx_t = rproxy::basic_context<ws_like_flow, mw::ban_kick>;

/// A connected loopback pair: `server` stands for the flow's client socket, `peer` for the client.
struct tcp_pair {
  explicit tcp_pair(asio::io_context& io) : server(io), peer(io) {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    peer.connect(acc.local_endpoint());
    acc.accept(server);
  }
  tcp::socket server, peer;
};

/// True once the peer reads the end of the stream (what a client of a kicked flow sees).
bool peer_sees_end(asio::io_context& io, tcp::socket& peer) {
  bool ended = false;
  char b[16];
  peer.async_read_some(asio::buffer(b), [&](std::error_code ec, std::size_t) { ended = ec == asio::error::eof || ec == asio::error::connection_reset; });
  return rproxy::test::run_until(io, [&] { return ended; });
}

struct audit_lines {
  std::vector<std::string> lines;
  void operator()(const mw::audit_record&, std::string_view line) { lines.emplace_back(line); }
};

}  // namespace

TEST_CASE("ban_kick: a new address ban shuts down the flows it covers, on their worker", "[middleware][ban]") {
  asio::io_context io;
  rproxy::observe::counter kicks;
  mw::ban_roster roster({io.get_executor()}, &kicks);
  mw::ban_list file, shared;
  mw::ban_check_config cfg{.reject_message = "You are banned."};
  audit_lines sink;
  auto audit = mw::audit_log::to(sink);
  mw::ban_kick stage{&roster, &file, &shared, &cfg, &audit};

  tcp_pair banned_conn(io), other_conn(io);
  ctx_t banned_ctx, other_ctx;
  banned_ctx.client = tcp::endpoint(asio::ip::make_address("203.0.113.7"), 40000);
  banned_ctx.client_fd = banned_conn.server.native_handle();
  other_ctx.client = tcp::endpoint(asio::ip::make_address("198.51.100.1"), 40001);
  other_ctx.client_fd = other_conn.server.native_handle();
  REQUIRE(stage.on_accept(banned_ctx).is_next());
  REQUIRE(stage.on_accept(other_ctx).is_next());
  CHECK(roster.size(0) == 2);

  // nothing covers them yet: a sweep ends nothing
  CHECK(roster.sweep_here(0, nullptr) == 0);

  shared.ban_address(*mw::cidr::parse("203.0.113.0/24"), {}, "scraping");
  roster.sweep();  // posted to the worker
  REQUIRE(peer_sees_end(io, banned_conn.peer));
  CHECK(banned_ctx.state<mw::ban_kick>().kicked());
  CHECK(!other_ctx.state<mw::ban_kick>().kicked());
  CHECK(kicks.value() == 1);
  REQUIRE(banned_ctx.rejected);
  CHECK(banned_ctx.rejected->code == rproxy::reject_code::banned);
  CHECK(banned_ctx.rejected->message == "You are banned.");
  REQUIRE(sink.lines.size() == 1);
  CHECK(sink.lines[0].find("ban_kick") != std::string::npos);
  CHECK(sink.lines[0].find("203.0.113.0/24") != std::string::npos);

  // the other flow is untouched: its socket still carries bytes both ways
  asio::write(other_conn.peer, asio::buffer("x", 1));
  char c = 0;
  asio::read(other_conn.server, asio::buffer(&c, 1));
  CHECK(c == 'x');

  // a second sweep does not kick (or count) it again
  CHECK(roster.sweep_here(0, nullptr) == 0);
  CHECK(kicks.value() == 1);

  stage.on_close(banned_ctx, {});
  stage.on_close(other_ctx, {});
  CHECK(roster.size(0) == 0);
  stage.on_close(other_ctx, {});  // twice: no-op
  CHECK(roster.size(0) == 0);
}

TEST_CASE("ban_kick: identity bans (folded names), expired bans, and the extra list of a reloaded file", "[middleware][ban]") {
  asio::io_context io;
  mw::ban_roster roster({io.get_executor()});
  mw::ban_list names{{.fold_identity_case = true}};
  mw::ban_kick stage{&roster, nullptr, &names, nullptr, nullptr};
  tcp_pair conn(io);
  ctx_t ctx;
  ctx.client = tcp::endpoint(asio::ip::make_address("192.0.2.10"), 1);
  ctx.client_fd = conn.server.native_handle();
  ctx.identity = "Griefer";
  REQUIRE(stage.on_accept(ctx).is_next());

  const auto now = mw::ban_clock::now();
  names.ban_identity("someone_else", {}, "");
  names.ban_identity("griefer", now - 1s, "expired");  // over already
  CHECK(roster.sweep_here(0, nullptr, now) == 0);

  // a ban file just reloaded: its list is given to the sweep (older flows point to the old one)
  mw::ban_list reloaded;
  REQUIRE(reloaded.parse("# rproxy bans v1\naddr 192.0.2.0/24 0 from%20the%20file\n"));
  CHECK(roster.sweep_here(0, &reloaded, now) == 1);
  REQUIRE(peer_sees_end(io, conn.peer));
  CHECK(ctx.rejected->message == "banned");  // no config: the default message
  stage.on_close(ctx, {});

  // by name, any case
  tcp_pair conn2(io);
  ctx_t ctx2;
  ctx2.client = tcp::endpoint(asio::ip::make_address("192.0.2.11"), 1);
  ctx2.client_fd = conn2.server.native_handle();
  ctx2.identity = "GRIEFER";
  REQUIRE(stage.on_accept(ctx2).is_next());
  names.ban_identity("Griefer", {}, "griefing");
  CHECK(roster.sweep_here(0, nullptr) == 1);
  REQUIRE(peer_sees_end(io, conn2.peer));
  stage.on_close(ctx2, {});
}

TEST_CASE("ban_kick: a WebSocket flow gets close 1008; a flow with no socket is refused at its next hook", "[middleware][ban]") {
  asio::io_context io;
  mw::ban_roster roster({io.get_executor()});
  mw::ban_list bans;
  mw::ban_kick stage{&roster, &bans, nullptr, nullptr, nullptr};

  fake_ws sender;
  ws_ctx_t ws;
  ws.client = tcp::endpoint(asio::ip::make_address("2001:db8::5"), 1);
  ws.ws = &sender;
  ws.client_fd = 12345;  // never used: the close frame goes first
  REQUIRE(stage.on_accept(ws).is_next());

  ctx_t quic_like;  // (client_fd -1: no TCP socket of its own)
  quic_like.client = tcp::endpoint(asio::ip::make_address("2001:db8::6"), 1);
  REQUIRE(stage.on_accept(quic_like).is_next());
  CHECK(stage.on_route(quic_like).is_next());

  bans.ban_address(*mw::cidr::parse("2001:db8::/64"), {}, "abuse");
  CHECK(roster.sweep_here(0, nullptr) == 2);
  CHECK(sender.code == 1008);
  CHECK(sender.reason == "banned");
  const auto v = stage.on_route(quic_like);
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::banned);
  CHECK(stage.on_hello(quic_like, 0).is_reject());
  stage.on_close(ws, {});
  stage.on_close(quic_like, {});
  CHECK(roster.size(0) == 0);
}

TEST_CASE("ban_kick: a flow whose transport offered a closer (QUIC) is ended by it", "[middleware][ban]") {
  asio::io_context io;
  mw::ban_roster roster({io.get_executor()});
  mw::ban_list bans;
  mw::ban_kick stage{&roster, &bans, nullptr, nullptr, nullptr};
  struct transport {
    std::vector<std::string> ended;
    bool can = true;
    static bool end(void* self, std::string_view message) {
      auto& t = *static_cast<transport*>(self);
      if (t.can) t.ended.emplace_back(message);
      return t.can;
    }
  } quic;
  const mw::flow_closer closer{&transport::end, &quic};

  ctx_t covered, spared;
  covered.client = tcp::endpoint(asio::ip::make_address("192.0.2.7"), 1);
  spared.client = tcp::endpoint(asio::ip::make_address("192.0.2.8"), 1);
  mw::ban_kick::offer_closer(covered, &closer);  // before on_accept, as flow/h3.hpp does
  mw::ban_kick::offer_closer(spared, &closer);
  REQUIRE(stage.on_accept(covered).is_next());
  REQUIRE(stage.on_accept(spared).is_next());
  // A pipeline without the stage: offering is a no-op (it compiles and does nothing).
  rproxy::basic_context<rproxy::flow_info> bare;
  mw::ban_kick::offer_closer(bare, &closer);

  bans.ban_address(*mw::cidr::parse("192.0.2.7/32"), {}, "abuse");
  CHECK(roster.sweep_here(0, nullptr) == 1);
  CHECK(quic.ended == std::vector<std::string>{"banned"});
  CHECK(stage.on_route(covered).is_reject());  // (and still refused, should a request slip in)
  CHECK(stage.on_route(spared).is_next());
  CHECK(roster.sweep_here(0, nullptr) == 0);  // once
  CHECK(quic.ended.size() == 1);
  stage.on_close(covered, {});
  stage.on_close(spared, {});
  CHECK(roster.size(0) == 0);
}

TEST_CASE("ban_kick: a flow whose context is moved keeps its place; a copy is not listed", "[middleware][ban]") {
  asio::io_context io;
  mw::ban_roster roster({io.get_executor()});
  mw::ban_list bans;
  mw::ban_kick stage{&roster, &bans, nullptr, nullptr, nullptr};
  auto first = std::make_unique<ctx_t>();
  first->client = tcp::endpoint(asio::ip::make_address("192.0.2.1"), 1);
  first->identity = "moved";
  REQUIRE(stage.on_accept(*first).is_next());
  ctx_t other;  // listed after it: the list has two entries around the moved one
  other.client = tcp::endpoint(asio::ip::make_address("192.0.2.2"), 1);
  REQUIRE(stage.on_accept(other).is_next());

  ctx_t moved(std::move(*first));  // (a WebSocket flow handed to its session)
  first.reset();                   // the old context is gone
  CHECK(moved.state<mw::ban_kick>().listed());
  CHECK(roster.size(0) == 2);
  const ctx_t copy(moved);
  CHECK(!copy.state<mw::ban_kick>().listed());
  CHECK(roster.size(0) == 2);

  bans.ban_identity("moved", {}, "");
  CHECK(roster.sweep_here(0, nullptr) == 1);  // found through the moved context
  CHECK(moved.state<mw::ban_kick>().kicked());
  CHECK(moved.rejected.has_value());
  CHECK(!other.state<mw::ban_kick>().kicked());
  stage.on_close(moved, {});
  CHECK(roster.size(0) == 1);
  stage.on_close(other, {});
  CHECK(roster.size(0) == 0);
}

TEST_CASE("ban_kick: a null roster does nothing", "[middleware][ban]") {
  mw::ban_kick off{};
  ctx_t ctx;
  ctx.client_fd = -1;
  CHECK(off.on_accept(ctx).is_next());
  CHECK(!ctx.state<mw::ban_kick>().listed());
  off.on_close(ctx, {});
}

TEST_CASE("shared_bans::on_change drives the sweep: a ban here, a ban file published without Redis", "[middleware][ban][cluster]") {
  asio::io_context io;
  rproxy::observe::counter kicks;
  mw::ban_roster roster({io.get_executor()}, &kicks);
  rproxy::cluster::shared_bans shared(nullptr);
  shared.on_change([&](std::shared_ptr<const mw::ban_list> file) { roster.sweep(std::move(file)); });
  mw::ban_list file;  // the ban file as the flows' stage knows it (not reloaded yet)
  mw::ban_kick stage{&roster, &file, &shared.list(), nullptr, nullptr};

  tcp_pair a(io), b(io);
  ctx_t ca, cb;
  ca.client = tcp::endpoint(asio::ip::make_address("203.0.113.1"), 1);
  ca.client_fd = a.server.native_handle();
  cb.client = tcp::endpoint(asio::ip::make_address("198.51.100.2"), 1);
  cb.client_fd = b.server.native_handle();
  REQUIRE(stage.on_accept(ca).is_next());
  REQUIRE(stage.on_accept(cb).is_next());

  REQUIRE(shared.ban("addr", "203.0.113.1", {}, "admin"));  // an admin POST
  REQUIRE(peer_sees_end(io, a.peer));
  CHECK(kicks.value() == 1);
  CHECK(!cb.state<mw::ban_kick>().kicked());

  mw::ban_list reloaded;  // the file, edited and loaded again
  REQUIRE(reloaded.parse("# rproxy bans v1\naddr 198.51.100.0/24 0 \n"));
  shared.publish(reloaded);  // no Redis: list() does not take it, the sweep gets a copy
  REQUIRE(peer_sees_end(io, b.peer));
  CHECK(kicks.value() == 2);
  CHECK(!shared.list().find_address(asio::ip::make_address("198.51.100.2"), mw::ban_clock::now()));
  stage.on_close(ca, {});
  stage.on_close(cb, {});
}
