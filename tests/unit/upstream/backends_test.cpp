// Tests for rproxy/upstream/backends.hpp (with h2_backends.hpp, h3_backends.hpp and
// group_block.hpp): a config version's stand-ins are found through one redirect table; a
// reload with the same settings keeps a backend's stand-in, changed settings make a new one and
// the old one stops at commit; a staged version dropped uncommitted stops only what it made;
// a group whose TLS settings cannot be loaded fails the stage. And validate_groups: a backend
// of a stand-in group cannot be in two groups.
#include <rproxy/upstream/backends.hpp>

#include <rproxy/config/decode.hpp>

#include <catch2/catch.hpp>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>

#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/sinks/ostream_sink.h>

namespace ubt {
struct groups_config {
  std::vector<rproxy::upstream::group_block> groups;
  static constexpr auto describe() { return rproxy::config::fields(rproxy::config::doc<&groups_config::groups>("the groups")); }
  void validate(rproxy::config::validator& v) const { (void)rproxy::upstream::validate_groups(groups, v.at(&groups_config::groups)); }
};
}  // namespace ubt

namespace {

using rproxy::flow::upstream_proto;
using rproxy::upstream::group_block;
using tcp = asio::ip::tcp;

group_block group(std::string name, upstream_proto proto, std::uint16_t port) {
  group_block g;
  g.name = std::move(name);
  g.proto = proto;
  g.backends.push_back(rproxy::balance::backend_settings{{"127.0.0.1", port}, 1, rproxy::proxy_send::none});
  return g;
}

tcp::endpoint ep(std::uint16_t port) { return {asio::ip::make_address("127.0.0.1"), port}; }

/// Whether a TCP connect to `to` succeeds (a listening stand-in takes it into its backlog).
bool accepts(const tcp::endpoint& to) {
  asio::io_context io;
  tcp::socket s(io);
  std::error_code ec;
  s.connect(to, ec);
  return !ec;
}

struct fixture {
  std::ostringstream log_text;
  rproxy::observe::logger log = rproxy::observe::make_logger(rproxy::observe::log_format::text, rproxy::observe::log_level::info,
                                                             std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  rproxy::observe::registry reg;
  rproxy::net::io_pool pool{1};  // not started: the test runs its worker's queued work with settle()
  rproxy::upstream::backends b{pool, reg, log, "t"};
  void settle() {
    pool.context(0).restart();
    pool.context(0).poll();
  }
};

}  // namespace

TEST_CASE("backends: h2c and h3 groups get stand-ins in one redirect table, plain HTTP groups none", "[upstream]") {
  fixture f;
  const std::vector<group_block> groups{group("plain", upstream_proto::http, 9001), group("h2", upstream_proto::h2c, 9002),
                                        group("h3", upstream_proto::h3, 9003)};
  auto s = f.b.stage(groups);
  REQUIRE(s);
  const auto r = s->transports.redirect;
  REQUIRE(r);
  CHECK(r->target(ep(9001)) == ep(9001));
  CHECK(r->target(ep(9002)) != ep(9002));
  CHECK(r->target(ep(9003)) != ep(9003));
  CHECK(r->target(ep(9002)).address().is_loopback());
  CHECK(accepts(r->target(ep(9002))));
  REQUIRE(s->transports.by_group.size() == 3);
  CHECK(s->transports.by_group[0].tls == nullptr);  // no tls: block, plain TCP
  f.b.commit(std::move(*s));
  f.b.stop();
  f.settle();
}

TEST_CASE("backends: a reload keeps a stand-in while its settings stay; changed ones make a new one, the old stops at commit", "[upstream]") {
  fixture f;
  std::vector<group_block> groups{group("h2", upstream_proto::h2c, 9002)};
  auto first = f.b.stage(groups);
  REQUIRE(first);
  const auto live = first->transports.redirect->target(ep(9002));
  f.b.commit(std::move(*first));
  f.settle();

  auto same = f.b.stage(groups);
  REQUIRE(same);
  CHECK(same->transports.redirect->target(ep(9002)) == live);
  f.b.commit(std::move(*same));
  f.settle();
  CHECK(accepts(live));

  groups[0].h2 = rproxy::flow::h2_upstream_block{};
  groups[0].h2->max_streams = 7;
  auto changed = f.b.stage(groups);
  REQUIRE(changed);
  const auto fresh = changed->transports.redirect->target(ep(9002));
  CHECK(fresh != live);
  f.settle();
  CHECK(accepts(live));  // nothing live changes before commit
  f.b.commit(std::move(*changed));
  f.settle();
  CHECK_FALSE(accepts(live));
  CHECK(accepts(fresh));
  f.b.stop();
  f.settle();
  CHECK_FALSE(accepts(fresh));
}

TEST_CASE("backends: a staged version dropped uncommitted stops only the stand-ins it made", "[upstream]") {
  fixture f;
  const std::vector<group_block> one{group("a", upstream_proto::h2c, 9002)};
  auto first = f.b.stage(one);
  REQUIRE(first);
  const auto kept = first->transports.redirect->target(ep(9002));
  f.b.commit(std::move(*first));
  tcp::endpoint made;
  {
    const std::vector<group_block> two{group("a", upstream_proto::h2c, 9002), group("b", upstream_proto::h2c, 9004)};
    auto s = f.b.stage(two);
    REQUIRE(s);
    made = s->transports.redirect->target(ep(9004));
    CHECK(s->transports.redirect->target(ep(9002)) == kept);
    f.settle();
    CHECK(accepts(made));
  }  // dropped: a later step of the reload failed
  f.settle();
  CHECK_FALSE(accepts(made));
  CHECK(accepts(kept));
  f.b.stop();
  f.settle();
}

TEST_CASE("backends: a group whose TLS settings cannot be loaded fails the stage (logged), nothing made", "[upstream]") {
  fixture f;
  auto g = group("tls", upstream_proto::http, 9005);
  g.tls = rproxy::flow::upstream_tls_block{};
  g.tls->ca = "no-such-ca-file.pem";
  const std::vector<group_block> groups{group("h2", upstream_proto::h2c, 9002), g};
  CHECK_FALSE(f.b.stage(groups));
  CHECK(f.log_text.str().find("cannot load the backends' TLS settings") != std::string::npos);
}

TEST_CASE("validate_groups: names are unique and a stand-in group's backend is in no other group", "[upstream][config]") {
  auto errors_of = [](const std::string& yaml) {
    auto r = rproxy::config::load_string<ubt::groups_config>(yaml, "app.yaml");
    std::vector<std::string> out;
    if (!r)
      for (const auto& d : r.error()) out.push_back(d.to_string());
    return out;
  };
  CHECK(errors_of("groups:\n  - {name: a, backends: [{address: 127.0.0.1:1}]}\n  - {name: b, backends: [{address: 127.0.0.1:1}]}\n").empty());
  const auto shared = errors_of("groups:\n  - {name: a, backends: [{address: 127.0.0.1:1}]}\n  - {name: b, proto: h2c, backends: [{address: 127.0.0.1:1}]}\n");
  REQUIRE(shared.size() == 1);
  CHECK(shared[0].find("backend 127.0.0.1:1 is also in group 'a'") != std::string::npos);
  const auto twice = errors_of("groups:\n  - {name: a, backends: [{address: 127.0.0.1:1}]}\n  - {name: a, backends: [{address: 127.0.0.1:2}]}\n");
  REQUIRE(twice.size() == 1);
  CHECK(twice[0].find("group name 'a' is used twice") != std::string::npos);
}
