#include <rproxy/middleware/ip_filter.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace mw = rproxy::middleware;

namespace {
asio::ip::address addr(const char* s) { return asio::ip::make_address(s); }
struct lines {
  std::vector<std::string> out;
  void operator()(const mw::audit_record&, std::string_view line) { out.emplace_back(line); }
};
}  // namespace

TEST_CASE("ip_rules: longest prefix decides, deny wins ties, default action", "[middleware][ip_filter]") {
  mw::ip_filter_config cfg;
  cfg.deny = {"0.0.0.0/0", "::/0", "10.6.6.0/24", "2001:db8:bad::/48", "192.0.2.10"};
  cfg.allow = {"10.0.0.0/8", "2001:db8::/32", "10.6.6.6", "192.0.2.10"};
  auto r = mw::ip_rules::build(cfg);
  REQUIRE(r);
  CHECK(r->allows(addr("10.1.2.3")));
  CHECK_FALSE(r->allows(addr("10.6.6.5")));
  CHECK(r->allows(addr("10.6.6.6")));         // /32 allow inside the /24 deny
  CHECK_FALSE(r->allows(addr("192.0.2.10")));  // the same block in both lists: deny
  CHECK_FALSE(r->allows(addr("8.8.8.8")));
  CHECK(r->allows(addr("2001:db8::1")));
  CHECK_FALSE(r->allows(addr("2001:db8:bad::1")));
  CHECK_FALSE(r->allows(addr("2001:db9::1")));
  CHECK(r->allows(addr("::ffff:10.1.2.3")));

  mw::ip_filter_config only_deny;
  only_deny.deny = {"203.0.113.0/24"};
  auto d = mw::ip_rules::build(only_deny);
  CHECK(d->allows(addr("203.0.112.255")));
  CHECK_FALSE(d->allows(addr("203.0.113.0")));
  CHECK_FALSE(d->allows(addr("203.0.113.255")));
  CHECK(d->allows(addr("203.0.114.0")));

  mw::ip_filter_config default_deny;
  default_deny.default_allow = false;
  default_deny.allow = {"127.0.0.1", "::1"};
  auto dd = mw::ip_rules::build(default_deny);
  CHECK(dd->allows(addr("127.0.0.1")));
  CHECK(dd->allows(addr("::1")));
  CHECK_FALSE(dd->allows(addr("127.0.0.2")));

  mw::ip_filter_config bad;
  bad.allow = {"10.0.0.0/8", "10.0.0.300/32"};
  std::string which;
  CHECK(mw::ip_rules::build(bad, &which).error() == mw::error::bad_cidr);
  CHECK(which == "10.0.0.300/32");
}

TEST_CASE("ip_filter stage in a pipeline", "[middleware][ip_filter]") {
  mw::ip_filter_config cfg;
  cfg.deny = {"198.51.100.0/24"};
  cfg.reject_message = "go away";
  auto rules = mw::ip_rules::build(cfg);
  lines sink;
  auto log = mw::audit_log::to(sink);
  auto p = rproxy::make_pipeline(mw::ip_filter{&*rules, &log, &cfg});
  auto ctx = p.make_context();
  ctx.client = {addr("198.51.100.77"), 4242};
  auto v = p.accept(ctx);
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::forbidden);
  CHECK(v.reason().message == "go away");
  REQUIRE(sink.out.size() == 1);
  CHECK(sink.out[0].find("stage=ip_filter") != std::string::npos);
  CHECK(sink.out[0].find("client=198.51.100.77") != std::string::npos);

  auto ok = p.make_context();
  ok.client = {addr("198.51.101.1"), 1};
  CHECK(p.accept(ok).is_next());
}
