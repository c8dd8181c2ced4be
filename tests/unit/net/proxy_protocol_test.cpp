#include <rproxy/net/proxy_protocol.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pp = rproxy::net::proxy_protocol;
using rproxy::net::proxy_error;

namespace {

std::vector<std::byte> bytes(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::vector<std::byte> hex(std::string_view h) {
  std::vector<std::byte> out;
  auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < h.size();) {
    if (h[i] == ' ') { ++i; continue; }
    out.push_back(static_cast<std::byte>(nib(h[i]) * 16 + nib(h[i + 1])));
    i += 2;
  }
  return out;
}

std::vector<std::byte> concat(std::vector<std::byte> a, const std::vector<std::byte>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

asio::ip::tcp::endpoint ep(std::string_view a, unsigned short port) {
  return {asio::ip::make_address(std::string(a)), port};
}

// Parses `in` whole; checks the result is an error and returns its code.
std::error_code error_of(std::span<const std::byte> in, pp::parser_options o = {}) {
  pp::parser p(o);
  const auto r = p.parse(in);
  REQUIRE(r.status == pp::parse_status::error);
  REQUIRE(r.error.category() == rproxy::net::proxy_error_category());
  return r.error;
}
std::error_code error_of(std::string_view in, pp::parser_options o = {}) {
  return error_of(bytes(in), o);
}

// Parses `in` one byte at a time; returns the status of the first non-need_more result.
pp::parse_result bytewise(pp::parser& p, std::span<const std::byte> in) {
  std::size_t consumed = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    auto r = p.parse(in.subspan(i, 1));
    consumed += r.consumed;
    if (r.status != pp::parse_status::need_more) {
      r.consumed = consumed;
      return r;
    }
  }
  return {pp::parse_status::need_more, consumed, {}};
}

// The v2 header of a TCP4 connection captured from haproxy: 172.19.0.1:42578 -> 172.19.0.3:80.
const std::string_view haproxy_v2_tcp4 =
    "0d0a0d0a000d0a515549540a 21 11 000c ac130001 ac130003 a652 0050";

}  // namespace

TEST_CASE("match_signature tells a PROXY header's start from other bytes", "[net][proxy]") {
  using pp::signature_match;
  CHECK(pp::match_signature("") == signature_match::partial);
  CHECK(pp::match_signature("P") == signature_match::partial);
  CHECK(pp::match_signature("PROXY") == signature_match::partial);
  CHECK(pp::match_signature("PROXY ") == signature_match::v1);
  CHECK(pp::match_signature("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n") == signature_match::v1);
  CHECK(pp::match_signature("PROXIED") == signature_match::none);
  CHECK(pp::match_signature("GET / HTTP/1.1\r\n") == signature_match::none);
  const std::string v2("\r\n\r\n\0\r\nQUIT\n\x21", 13);
  for (std::size_t n = 1; n < 12; ++n) CHECK(pp::match_signature(v2.substr(0, n)) == signature_match::partial);
  CHECK(pp::match_signature(v2.substr(0, 12)) == signature_match::v2);
  CHECK(pp::match_signature(v2) == signature_match::v2);
  CHECK(pp::match_signature(std::string("\r\n\r\n\0\r\nQUIX", 12)) == signature_match::none);
  CHECK(pp::match_signature("\r\n\r\n") == signature_match::partial);  // a bare CRLF CRLF: wait for more
  STATIC_REQUIRE(pp::match_signature("PROXY ") == signature_match::v1);
}

TEST_CASE("v1 TCP4 and TCP6 headers parse, payload is left alone", "[net][proxy]") {
  pp::parser p;
  const std::string line = "PROXY TCP4 192.168.0.1 10.0.0.2 56324 443\r\n";
  const auto in = bytes(line + "GET / HTTP/1.1\r\n");
  const auto r = p.parse(in);
  REQUIRE(r.status == pp::parse_status::done);
  CHECK(r.consumed == line.size());
  CHECK(p.size() == line.size());
  const auto& h = p.get();
  CHECK(h.version == 1);
  CHECK(h.command == pp::command::proxy);
  CHECK(h.family == pp::family::inet);
  CHECK(h.transport == pp::transport::stream);
  CHECK(h.source == ep("192.168.0.1", 56324));
  CHECK(h.destination == ep("10.0.0.2", 443));
  CHECK(h.has_addresses());
  CHECK(h.tlvs.empty());

  pp::parser p6;
  const auto r6 = p6.parse("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n");
  REQUIRE(r6.status == pp::parse_status::done);
  CHECK(p6.get().family == pp::family::inet6);
  CHECK(p6.get().source == ep("2001:db8::1", 0));
  CHECK(p6.get().destination == ep("::ffff:10.0.0.1", 65535));
}

TEST_CASE("v1 UNKNOWN ignores the rest of the line", "[net][proxy]") {
  for (std::string_view s : {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
                             "PROXY UNKNOWN whatever is here\r\n"}) {
    pp::parser p;
    const auto r = p.parse(s);
    REQUIRE(r.status == pp::parse_status::done);
    CHECK(r.consumed == s.size());
    CHECK(p.get().version == 1);
    CHECK(p.get().family == pp::family::unspec);
    CHECK(p.get().transport == pp::transport::unspec);
    CHECK_FALSE(p.get().has_addresses());
  }
}

TEST_CASE("v1 line bound: 107 bytes with CRLF is the maximum", "[net][proxy]") {
  std::string ok = "PROXY UNKNOWN ";
  ok.resize(105, 'x');
  ok += "\r\n";
  REQUIRE(ok.size() == 107);
  pp::parser p;
  CHECK(p.parse(ok).status == pp::parse_status::done);

  std::string longer = ok.substr(0, 105) + "x\r\n";
  CHECK(error_of(longer) == proxy_error::line_too_long);
  // no CRLF at all: rejected once 107 bytes are in, whatever follows
  CHECK(error_of(std::string("PROXY UNKNOWN ") + std::string(200, 'y')) ==
        proxy_error::line_too_long);
  pp::parser q;
  const auto stream = bytes(std::string("PROXY UNKNOWN ") + std::string(200, 'y'));
  const auto r = bytewise(q, stream);
  CHECK(r.status == pp::parse_status::error);
  CHECK(r.error == proxy_error::line_too_long);
  CHECK(r.consumed == 106);  // the bytes accepted before the 107th proved the line too long
}

TEST_CASE("v1 errors are specific", "[net][proxy]") {
  CHECK(error_of("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n") == proxy_error::bad_family);
  CHECK(error_of("PROXY UNKNOWNX\r\n") == proxy_error::bad_family);
  CHECK(error_of("PROXY \r\n") == proxy_error::bad_family);
  CHECK(error_of("PROXY TCP4\r\n") == proxy_error::bad_line);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n") == proxy_error::bad_line);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n") == proxy_error::bad_line);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n") == proxy_error::bad_line);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX") == proxy_error::bad_line);
  CHECK(error_of("PROXY TCP4  1.2.3.4 5.6.7.8 1\r\n") == proxy_error::bad_address);
  CHECK(error_of("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n") == proxy_error::bad_address);
  CHECK(error_of("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n") == proxy_error::bad_address);
  CHECK(error_of("PROXY TCP4 ::1 5.6.7.8 1 2\r\n") == proxy_error::bad_address);
  CHECK(error_of("PROXY TCP6 1.2.3.4 ::1 1 2\r\n") == proxy_error::bad_address);
  CHECK(error_of("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n") == proxy_error::bad_address);
  CHECK(error_of("PROXY TCP6 ::1 ::g 1 2\r\n") == proxy_error::bad_address);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n") == proxy_error::bad_port);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n") == proxy_error::bad_port);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n") == proxy_error::bad_port);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n") == proxy_error::bad_port);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 x 2\r\n") == proxy_error::bad_port);
  CHECK(error_of("PROXY TCP4 1.2.3.4 5.6.7.8 1 000002\r\n") == proxy_error::bad_port);
}

TEST_CASE("v2 TCP4 from haproxy parses", "[net][proxy]") {
  const auto in = concat(hex(haproxy_v2_tcp4), bytes("GET / HTTP/1.1\r\n"));
  pp::parser p;
  const auto r = p.parse(in);
  REQUIRE(r.status == pp::parse_status::done);
  CHECK(r.consumed == 28);
  const auto& h = p.get();
  CHECK(h.version == 2);
  CHECK(h.command == pp::command::proxy);
  CHECK(h.family == pp::family::inet);
  CHECK(h.transport == pp::transport::stream);
  CHECK(h.source == ep("172.19.0.1", 42578));
  CHECK(h.destination == ep("172.19.0.3", 80));
  // and writing it back gives the very same bytes
  CHECK(pp::write_v2(h) == hex(haproxy_v2_tcp4));
}

TEST_CASE("v2 TCP6, UDP, UNIX, UNSPEC and LOCAL", "[net][proxy]") {
  SECTION("TCP6 and dgram") {
    pp::header h = pp::make_header(ep("2001:db8::7", 1234), ep("::1", 53), pp::transport::dgram);
    const auto bin = pp::write_v2(h);
    CHECK(bin.size() == 16 + 36);
    CHECK(bin[13] == std::byte{0x22});
    pp::parser p;
    REQUIRE(p.parse(bin).status == pp::parse_status::done);
    CHECK(p.get().family == pp::family::inet6);
    CHECK(p.get().transport == pp::transport::dgram);
    CHECK(p.get().source == ep("2001:db8::7", 1234));
    CHECK(p.get().destination == ep("::1", 53));
  }
  SECTION("UNIX paths, abstract names kept") {
    pp::header h;
    h.family = pp::family::unix_socket;
    h.transport = pp::transport::stream;
    h.source_path = "/run/app.sock";
    h.destination_path = std::string("\0abstract", 9);
    const auto bin = pp::write_v2(h);
    CHECK(bin.size() == 16 + 216);
    CHECK(bin[13] == std::byte{0x31});
    pp::parser p;
    REQUIRE(p.parse(bin).status == pp::parse_status::done);
    CHECK(p.get().source_path == "/run/app.sock");
    CHECK(p.get().destination_path == std::string("\0abstract", 9));
    CHECK_FALSE(p.get().has_addresses());
    CHECK(p.get() == h);
  }
  SECTION("LOCAL UNSPEC as health checks send it") {
    const auto bin = hex("0d0a0d0a000d0a515549540a 20 00 0000");
    pp::parser p;
    const auto r = p.parse(bin);
    REQUIRE(r.status == pp::parse_status::done);
    CHECK(r.consumed == 16);
    CHECK(p.get().command == pp::command::local);
    CHECK(p.get().family == pp::family::unspec);
    CHECK_FALSE(p.get().has_addresses());
  }
  SECTION("LOCAL ignores an unknown family and its block") {
    const auto bin = hex("0d0a0d0a000d0a515549540a 20 ff 0003 010203");
    pp::parser p;
    const auto r = p.parse(bin);
    REQUIRE(r.status == pp::parse_status::done);
    CHECK(r.consumed == 19);
    CHECK(p.get().command == pp::command::local);
    CHECK(p.get().family == pp::family::unspec);
  }
  SECTION("LOCAL with a short address block is accepted, addresses ignored") {
    const auto bin = hex("0d0a0d0a000d0a515549540a 20 11 0004 01020304");
    pp::parser p;
    REQUIRE(p.parse(bin).status == pp::parse_status::done);
    CHECK(p.get().family == pp::family::unspec);
  }
  SECTION("PROXY UNSPEC carries TLVs only") {
    pp::header h;
    h.tlvs.push_back(pp::tlv::from_text(pp::tlv_type::authority, "example.com"));
    const auto bin = pp::write_v2(h);
    pp::parser p;
    REQUIRE(p.parse(bin).status == pp::parse_status::done);
    CHECK(p.get().family == pp::family::unspec);
    CHECK(p.get().text(pp::tlv_type::authority) == "example.com");
  }
}

TEST_CASE("v2 TLVs are parsed into the header", "[net][proxy]") {
  pp::header h = pp::make_header(ep("10.1.2.3", 40000), ep("10.9.9.9", 25565));
  h.tlvs.push_back(pp::tlv::from_text(pp::tlv_type::alpn, "h2"));
  h.tlvs.push_back(pp::tlv::from_text(pp::tlv_type::authority, "play.example.com"));
  h.tlvs.push_back(pp::tlv::from_text(pp::tlv_type::unique_id, std::string(128, 'u')));
  h.tlvs.push_back(pp::tlv{pp::tlv_type::noop, std::vector<std::byte>(5)});
  h.tlvs.push_back(pp::tlv::from_text(pp::tlv_type::netns, "blue"));
  // SSL: client=0x07, verify=0, sub-TLVs VERSION and CN
  h.tlvs.push_back(pp::tlv{pp::tlv_type::ssl,
                           concat(hex("07 00000000 21 0007"),
                                  concat(bytes("TLSv1.3"), concat(hex("22 0006"), bytes("client"))))});
  h.tlvs.push_back(pp::tlv{0xE0, bytes("custom")});
  const auto bin = pp::write_v2(h, {.crc32c = true});

  pp::parser p;
  REQUIRE(p.parse(bin).status == pp::parse_status::done);
  const auto& got = p.get();
  REQUIRE(got.tlvs.size() == h.tlvs.size() + 1);
  CHECK(got.tlvs.back().type == pp::tlv_type::crc32c);
  CHECK(std::vector(got.tlvs.begin(), got.tlvs.end() - 1) == h.tlvs);
  CHECK(got.text(pp::tlv_type::alpn) == "h2");
  CHECK(got.text(pp::tlv_type::authority) == "play.example.com");
  CHECK(got.text(pp::tlv_type::netns) == "blue");
  CHECK_FALSE(got.text(0x7F).has_value());

  const auto ssl = pp::decode_ssl(*got.find(pp::tlv_type::ssl));
  REQUIRE(ssl.has_value());
  CHECK(ssl->ssl());
  CHECK(ssl->client_cert());
  CHECK(ssl->verify == 0);
  CHECK(ssl->text(pp::tlv_type::ssl_version) == "TLSv1.3");
  CHECK(ssl->text(pp::tlv_type::ssl_cn) == "client");
  CHECK_FALSE(pp::decode_ssl(*got.find(pp::tlv_type::alpn)).has_value());
}

TEST_CASE("CRC32C: standard check value, verified when present", "[net][proxy]") {
  CHECK(pp::crc32c(bytes("123456789")) == 0xE3069283u);
  CHECK(pp::crc32c({}) == 0u);

  pp::header h = pp::make_header(ep("1.2.3.4", 1), ep("5.6.7.8", 2));
  h.tlvs.push_back(pp::tlv::from_text(pp::tlv_type::authority, "a.test"));
  auto bin = pp::write_v2(h, {.crc32c = true});
  {
    pp::parser p;
    CHECK(p.parse(bin).status == pp::parse_status::done);
  }
  SECTION("a flipped address bit fails the check") {
    bin[17] ^= std::byte{0x01};
    CHECK(error_of(bin) == proxy_error::bad_crc32c);
  }
  SECTION("a flipped CRC bit fails the check") {
    bin.back() ^= std::byte{0x80};
    CHECK(error_of(bin) == proxy_error::bad_crc32c);
  }
  SECTION("a CRC TLV given by the caller gets its value computed") {
    pp::header g = h;
    g.tlvs.push_back(pp::tlv{pp::tlv_type::crc32c, hex("deadbeef")});
    pp::parser p;
    REQUIRE(p.parse(pp::write_v2(g)).status == pp::parse_status::done);
    CHECK(pp::write_v2(p.get()) == pp::write_v2(g));
  }
  SECTION("two CRC TLVs or a CRC of the wrong size are malformed") {
    auto two = hex("0d0a0d0a000d0a515549540a 21 00 000e 03 0004 00000000 03 0004 00000000");
    CHECK(error_of(two) == proxy_error::bad_tlv);
    auto small = hex("0d0a0d0a000d0a515549540a 21 00 0005 03 0002 0000");
    CHECK(error_of(small) == proxy_error::bad_tlv);
  }
}

TEST_CASE("v2 errors are specific", "[net][proxy]") {
  const std::string sig = "0d0a0d0a000d0a515549540a";
  CHECK(error_of(hex(sig + "11 11 000c 0102030405060708 0001 0002")) == proxy_error::bad_version);
  CHECK(error_of(hex(sig + "31 11 000c 0102030405060708 0001 0002")) == proxy_error::bad_version);
  CHECK(error_of(hex(sig + "22 11 000c 0102030405060708 0001 0002")) == proxy_error::bad_command);
  CHECK(error_of(hex(sig + "21 41 000c 0102030405060708 0001 0002")) == proxy_error::bad_family);
  CHECK(error_of(hex(sig + "21 13 000c 0102030405060708 0001 0002")) == proxy_error::bad_family);
  CHECK(error_of(hex(sig + "21 01 0000")) == proxy_error::bad_family);
  CHECK(error_of(hex(sig + "21 11 000b 0102030405060708 0001 00")) ==
        proxy_error::truncated_address);
  CHECK(error_of(hex(sig + "21 21 000c 0102030405060708 0001 0002")) ==
        proxy_error::truncated_address);
  CHECK(error_of(hex(sig + "21 31 0000")) == proxy_error::truncated_address);
  // TLVs: truncated header, truncated value, oversize UNIQUE_ID, short SSL, bad SSL sub-TLV
  CHECK(error_of(hex(sig + "21 00 0002 0100")) == proxy_error::bad_tlv);
  CHECK(error_of(hex(sig + "21 00 0004 01 0002 68")) == proxy_error::bad_tlv);
  {
    pp::header h;
    h.tlvs.push_back(pp::tlv::from_text(pp::tlv_type::unique_id, std::string(129, 'u')));
    CHECK(error_of(pp::write_v2(h)) == proxy_error::bad_tlv);
  }
  CHECK(error_of(hex(sig + "21 00 0007 20 0004 01000000")) == proxy_error::bad_tlv);
  CHECK(error_of(hex(sig + "21 00 000a 20 0007 0100000000 2100")) == proxy_error::bad_tlv);
  // the version and family are rejected as soon as their byte arrives
  pp::parser p;
  CHECK(p.parse(hex(sig)).status == pp::parse_status::need_more);
  const auto r = p.parse(hex("21 55"));
  CHECK(r.status == pp::parse_status::error);
  CHECK(r.error == proxy_error::bad_family);
}

TEST_CASE("v2 length bound is configurable", "[net][proxy]") {
  pp::header h;
  h.tlvs.push_back(pp::tlv{pp::tlv_type::noop, std::vector<std::byte>(5000)});
  const auto big = pp::write_v2(h);
  CHECK(error_of(big) == proxy_error::too_long);  // default bound 4096

  pp::parser wide({.max_v2_length = 8192});
  CHECK(wide.parse(big).status == pp::parse_status::done);

  pp::parser narrow({.max_v2_length = 12});
  CHECK(narrow.parse(hex(haproxy_v2_tcp4)).status == pp::parse_status::done);
  pp::parser narrower({.max_v2_length = 11});
  // rejected from the 16-byte fixed part alone, before the body arrives
  const auto fixed = hex(haproxy_v2_tcp4);
  const auto r = narrower.parse(std::span(fixed).first(16));
  CHECK(r.status == pp::parse_status::error);
  CHECK(r.error == proxy_error::too_long);
}

TEST_CASE("not a PROXY header: optional mode hands the bytes back", "[net][proxy]") {
  for (std::string_view s : {"GET / HTTP/1.1\r\n", "POST /x HTTP/1.1\r\n", "PRI * HTTP/2.0\r\n",
                             "\x16\x03\x01\x02\x00", "\r\n\r\nX", "PROXY\r\n", "proxy tcp4"}) {
    INFO(s);
    pp::parser p({.optional = true});
    const auto r = p.parse(s);
    CHECK(r.status == pp::parse_status::not_proxy);
    CHECK(r.consumed == 0);
    CHECK(p.buffered().empty());
    CHECK(error_of(s) == proxy_error::bad_signature);
  }
  SECTION("fed byte by byte, earlier bytes come back through buffered()") {
    pp::parser p({.optional = true});
    CHECK(p.parse("P").status == pp::parse_status::need_more);
    CHECK(p.parse("R").status == pp::parse_status::need_more);
    const auto r = p.parse("I * HTTP/2.0");
    CHECK(r.status == pp::parse_status::not_proxy);
    CHECK(r.consumed == 0);
    CHECK(p.buffered().size() == 2);
    CHECK(std::vector(p.buffered().begin(), p.buffered().end()) == bytes("PR"));
    // terminal: more input changes nothing
    CHECK(p.parse("more").status == pp::parse_status::not_proxy);
  }
  SECTION("a v2 signature prefix that diverges") {
    pp::parser p({.optional = true});
    CHECK(p.parse(hex("0d0a0d0a00")).status == pp::parse_status::need_more);
    CHECK(p.parse(hex("0d0a50")).status == pp::parse_status::not_proxy);
    CHECK(p.buffered().size() == 5);
  }
  SECTION("a disabled version is not a PROXY header") {
    pp::parser p({.allow_v1 = false, .optional = true});
    CHECK(p.parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n").status == pp::parse_status::not_proxy);
    CHECK(error_of("PROXY UNKNOWN\r\n", {.allow_v1 = false}) == proxy_error::bad_signature);
    CHECK(error_of(hex(haproxy_v2_tcp4), {.allow_v2 = false}) == proxy_error::bad_signature);
  }
}

TEST_CASE("split input: byte by byte, empty chunks, payload in the last chunk", "[net][proxy]") {
  const std::string v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n";
  for (const auto& hdr : {bytes(v1), hex(haproxy_v2_tcp4)}) {
    const auto in = concat(hdr, bytes("payload"));
    pp::parser whole;
    REQUIRE(whole.parse(in).status == pp::parse_status::done);

    pp::parser p;
    CHECK(p.parse(std::span<const std::byte>{}).status == pp::parse_status::need_more);
    const auto r = bytewise(p, in);
    REQUIRE(r.status == pp::parse_status::done);
    CHECK(r.consumed == hdr.size());
    CHECK(p.get() == whole.get());

    pp::parser q;
    const auto r1 = q.parse(std::span(in).first(hdr.size() - 1));
    CHECK(r1.status == pp::parse_status::need_more);
    CHECK(r1.consumed == hdr.size() - 1);
    const auto r2 = q.parse(std::span(in).subspan(hdr.size() - 1));
    CHECK(r2.status == pp::parse_status::done);
    CHECK(r2.consumed == 1);
    CHECK(q.get() == whole.get());
    // done is terminal until reset
    const auto again = q.parse(bytes("x"));
    CHECK(again.status == pp::parse_status::done);
    CHECK(again.consumed == 0);
    q.reset();
    CHECK(q.parse(in).status == pp::parse_status::done);
  }
}

TEST_CASE("writers", "[net][proxy]") {
  const auto h4 = pp::make_header(ep("192.0.2.1", 5), ep("198.51.100.2", 6));
  CHECK(pp::write_v1(h4) == "PROXY TCP4 192.0.2.1 198.51.100.2 5 6\r\n");
  const auto h6 = pp::make_header(ep("192.0.2.1", 5), ep("2001:db8::2", 6));
  CHECK(h6.family == pp::family::inet6);
  CHECK(pp::write_v1(h6) == "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 5 6\r\n");
  auto scoped = pp::make_header(ep("fe80::1", 1), ep("fe80::2", 2));
  auto a = scoped.source.address().to_v6();
  a.scope_id(3);
  scoped.source.address(a);
  CHECK(pp::write_v1(scoped) == "PROXY TCP6 fe80::1 fe80::2 1 2\r\n");

  pp::header local = h4;
  local.command = pp::command::local;
  CHECK(pp::write_v1(local) == "PROXY UNKNOWN\r\n");
  pp::header udp = h4;
  udp.transport = pp::transport::dgram;
  CHECK(pp::write_v1(udp) == "PROXY UNKNOWN\r\n");
  CHECK(pp::write_v1(pp::header{}) == "PROXY UNKNOWN\r\n");

  pp::header wrong = h4;
  wrong.family = pp::family::inet6;
  CHECK_THROWS_AS(pp::write_v1(wrong), std::invalid_argument);
  CHECK_THROWS_AS(pp::write_v2(wrong), std::invalid_argument);
  pp::header long_path;
  long_path.family = pp::family::unix_socket;
  long_path.source_path = std::string(109, 'p');
  CHECK_THROWS_AS(pp::write_v2(long_path), std::invalid_argument);
  pp::header bad_fam;
  bad_fam.family = pp::family::inet;  // transport unspec: not a valid combination
  CHECK_THROWS_AS(pp::write_v2(bad_fam), std::invalid_argument);

  // write_v2(header, tlvs) writes the given TLVs instead of header.tlvs
  pp::header with = h4;
  with.tlvs.push_back(pp::tlv::from_text(pp::tlv_type::alpn, "h2"));
  const std::vector<pp::tlv> other{pp::tlv::from_text(pp::tlv_type::authority, "x")};
  pp::parser p;
  REQUIRE(p.parse(pp::write_v2(with, other)).status == pp::parse_status::done);
  CHECK(p.get().tlvs == other);
}

TEST_CASE("proxy_error codes carry the downstream condition", "[net][proxy]") {
  const std::error_code ec = proxy_error::bad_crc32c;
  CHECK(ec == rproxy::condition::downstream);
  CHECK_FALSE(ec == rproxy::condition::retry_safe);
  CHECK(ec.message() == "PROXY v2: CRC32C mismatch");
  CHECK(std::string(ec.category().name()) == "rproxy.net.proxy");
}
