#include <rproxy/middleware/ip.hpp>

#include <catch2/catch.hpp>

namespace mw = rproxy::middleware;

namespace {
asio::ip::address addr(const char* s) { return asio::ip::make_address(s); }
bool in(const char* block, const char* a) { return mw::cidr::parse(block)->contains(addr(a)); }
}  // namespace

TEST_CASE("CIDR parsing: valid forms and errors", "[middleware][ip]") {
  CHECK(mw::cidr::parse("10.0.0.0/8")->to_string() == "10.0.0.0/8");
  CHECK(mw::cidr::parse("192.0.2.1")->family_bits() == 32);
  CHECK(mw::cidr::parse("2001:db8::/32")->to_string() == "2001:db8::/32");
  CHECK(mw::cidr::parse("::1")->family_bits() == 128);
  CHECK(mw::cidr::parse("0.0.0.0/0")->bits() == 96);
  CHECK(mw::cidr::parse("::/0")->bits() == 0);
  CHECK(mw::cidr::parse("::ffff:192.0.2.1")->is_v4());  // mapped single address: IPv4
  CHECK(mw::cidr::parse("::ffff:0:0/96")->is_v4());
  for (const char* bad : {"", "10.0.0.0/", "10.0.0.0/33", "10.0.0.1/8", "2001:db8::1/32", "::/129", "10.0.0.0/08",
                          "10.0.0.0/-1", "10.0.0.0/8x", "300.1.1.1", "host.example", "10.0.0.0/1000"}) {
    INFO(bad);
    CHECK(mw::cidr::parse(bad).error() == mw::error::bad_cidr);
  }
}

TEST_CASE("CIDR matching at the edges (v4 and v6)", "[middleware][ip]") {
  CHECK(in("10.0.0.0/8", "10.0.0.0"));
  CHECK(in("10.0.0.0/8", "10.255.255.255"));
  CHECK_FALSE(in("10.0.0.0/8", "11.0.0.0"));
  CHECK_FALSE(in("10.0.0.0/8", "9.255.255.255"));
  CHECK(in("192.0.2.128/25", "192.0.2.128"));
  CHECK_FALSE(in("192.0.2.128/25", "192.0.2.127"));
  CHECK(in("192.0.2.7/32", "192.0.2.7"));
  CHECK_FALSE(in("192.0.2.7/32", "192.0.2.6"));
  CHECK(in("0.0.0.0/0", "255.255.255.255"));
  CHECK_FALSE(in("0.0.0.0/0", "2001:db8::1"));  // IPv4 any is not IPv6 any
  CHECK(in("::/0", "192.0.2.1"));               // IPv6 any includes the mapped IPv4 range
  CHECK(in("10.0.0.0/8", "::ffff:10.1.2.3"));   // a mapped client matches IPv4 rules
  CHECK(in("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
  CHECK_FALSE(in("2001:db8::/32", "2001:db9::"));
  CHECK(in("2001:db8:0:1::/64", "2001:db8:0:1:ffff::1"));
  CHECK_FALSE(in("2001:db8:0:1::/64", "2001:db8:0:2::"));
  CHECK(in("2001:db8::/127", "2001:db8::1"));
  CHECK_FALSE(in("2001:db8::/127", "2001:db8::2"));
  CHECK(in("fe80::/10", "febf::1"));
  CHECK_FALSE(in("fe80::/10", "fec0::1"));
}

TEST_CASE("address grouping: IPv4 /32, IPv6 /64", "[middleware][ip]") {
  CHECK(mw::group(addr("2001:db8:1:2:3:4:5:6")) == mw::group(addr("2001:db8:1:2::")));
  CHECK_FALSE(mw::group(addr("2001:db8:1:2::")) == mw::group(addr("2001:db8:1:3::")));
  CHECK_FALSE(mw::group(addr("192.0.2.1")) == mw::group(addr("192.0.2.2")));
  CHECK(mw::group(addr("192.0.2.1"), 24) == mw::group(addr("192.0.2.200"), 24));
  CHECK(mw::group(addr("::ffff:192.0.2.1")) == mw::group(addr("192.0.2.1")));
  auto g = mw::group(addr("2001:db8:1:2:3:4:5:6"));
  CHECK(mw::to_string(g, 64) == "2001:db8:1:2::/64");
}

TEST_CASE("cidr_table: longest match, find_if, erase", "[middleware][ip]") {
  mw::cidr_table<int> t;
  t.insert(*mw::cidr::parse("10.0.0.0/8"), 8);
  t.insert(*mw::cidr::parse("10.1.0.0/16"), 16);
  t.insert(*mw::cidr::parse("10.1.2.3"), 32);
  t.insert(*mw::cidr::parse("::/0"), 0);
  auto k = [](const char* s) { return mw::to_ip_key(addr(s)); };
  CHECK(*t.longest_match(k("10.1.2.3")) == 32);
  CHECK(*t.longest_match(k("10.1.2.4")) == 16);
  CHECK(*t.longest_match(k("10.2.0.0")) == 8);
  CHECK(*t.longest_match(k("11.0.0.0")) == 0);
  CHECK(*t.longest_match(k("2001:db8::1")) == 0);
  CHECK(*t.find_if(k("10.1.2.3"), [](const mw::cidr&, int v) { return v < 16; }) == 8);
  CHECK(t.size() == 4);
  t.insert(*mw::cidr::parse("10.1.0.0/16"), 17);  // replace
  CHECK(t.size() == 4);
  CHECK(*t.longest_match(k("10.1.9.9")) == 17);
  CHECK(t.erase(*mw::cidr::parse("10.1.0.0/16")));
  CHECK_FALSE(t.erase(*mw::cidr::parse("10.1.0.0/16")));
  CHECK(*t.longest_match(k("10.1.9.9")) == 8);
  CHECK(t.erase_if([](const mw::cidr& c, int) { return c.is_v4(); }) == 2);
  CHECK(t.size() == 1);
  int seen = 0;
  t.for_each([&](const mw::cidr& c, int) {
    CHECK(c.to_string() == "::/0");
    ++seen;
  });
  CHECK(seen == 1);
}
