// cluster::shared_players: an instance with no clients of its own keeps a woken group busy while
// another instance has clients there, lets it sleep once they left (or their instance stopped
// refreshing), and keeps it busy while Redis cannot tell.
#include <rproxy/cluster/shared_players.hpp>

#include <asio/io_context.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>

#include "redis_server.hpp"
#include "redis_test_options.hpp"
#include "run_until.hpp"
#include "skip.hpp"

using namespace std::chrono_literals;
namespace cl = rproxy::cluster;
using clock_type = rproxy::health::power_state::clock;

namespace {

struct node {
  cl::redis_client client;
  cl::shared_players players;
  rproxy::health::power_state wake;
  node(asio::io_context& io, const rproxy::test::redis_server& rs, const char* id)
      : client(io.get_executor(), rproxy::test::redis_options_for(rs)), players(&client, id, nullptr, 400ms, 50ms) {
    client.start();
    players.start();
  }
};

}  // namespace

TEST_CASE("shared_players: busy while another instance has clients, idle once they left or lapsed", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  node b(io, rs, "b");
  auto a = std::make_unique<node>(io, rs, "a");
  REQUIRE(rproxy::test::run_until(io, [&] { return a->client.ready() && b.client.ready(); }));

  // each instance tells its count as the app's tick would; b learns a's (and a has its own
  // first answer: each instance's read comes back on its own)
  auto others_of_b = [&](std::int64_t want) {
    return [&, want] {
      a->players.share("survival", a->wake);
      b.players.share("survival", b.wake);
      return b.players.elsewhere("survival") == want && a->players.elsewhere("survival").has_value();
    };
  };
  a->wake.joined();
  REQUIRE(rproxy::test::run_until(io, others_of_b(1)));
  CHECK(a->players.elsewhere("survival") == 0);
  CHECK(rs.command({"HEXISTS", "t:players{survival}", "a"}) == "1");
  CHECK(rs.command({"HEXISTS", "t:players{survival}", "b"}) == "0");  // no clients: no field

  // b has no clients of its own, but the group is busy: its idle time starts over at each tick
  const auto t = clock_type::now();
  CHECK(b.players.share("survival", b.wake));
  CHECK_FALSE(b.wake.begin_sleep(t + 500ms, 1s));
  rproxy::health::power_state alone;  // the same state with nobody elsewhere sleeps
  CHECK(alone.begin_sleep(clock_type::now() + 2s, 1s));

  // a's client leaves: b may put the group to sleep idle_timeout later
  a->wake.left(clock_type::now());
  REQUIRE(rproxy::test::run_until(io, others_of_b(0)));
  CHECK_FALSE(b.players.share("survival", b.wake));
  CHECK(b.wake.begin_sleep(clock_type::now() + 2s, 1s));
  CHECK(rs.command({"HEXISTS", "t:players{survival}", "a"}) == "0");

  // a crashed instance's clients stop counting within the ttl
  a->wake.joined();
  REQUIRE(rproxy::test::run_until(io, others_of_b(1)));
  a.reset();
  REQUIRE(rproxy::test::run_until(io, [&] {
    b.players.share("survival", b.wake);
    return b.players.elsewhere("survival") == 0;
  }));
}

TEST_CASE("shared_players: while Redis cannot tell, the group stays busy", "[cluster][redis]") {
  rproxy::test::redis_server rs;
  if (!rs) RPROXY_SKIP_MISSING("redis-server");
  asio::io_context io;
  node b(io, rs, "b");
  REQUIRE(rproxy::test::run_until(io, [&] { return b.client.ready(); }));
  CHECK(b.players.share("lobby", b.wake));  // before the first answer: unknown, so busy
  REQUIRE(rproxy::test::run_until(io, [&] { return !b.players.share("lobby", b.wake); }));

  rs.kill();
  REQUIRE(rproxy::test::run_until(io, [&] {
    b.players.share("lobby", b.wake);
    return !b.players.elsewhere("lobby").has_value();
  }));
  CHECK(b.players.share("lobby", b.wake));
  REQUIRE(rs.restart());
  REQUIRE(rproxy::test::run_until(io, [&] { return !b.players.share("lobby", b.wake); }));
}

TEST_CASE("shared_players: without a client nothing is shared", "[cluster]") {
  cl::shared_players p(nullptr, "x");
  p.start();
  rproxy::health::power_state s;
  CHECK_FALSE(p.share("lobby", s));
  CHECK_FALSE(p.elsewhere("lobby").has_value());
  CHECK(s.begin_sleep(clock_type::now() + 2s, 1s));
}
