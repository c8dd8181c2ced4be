// codec/ws/handshake.hpp: RFC 6455 §1.3's key/accept example, request validation (400, 426),
// subprotocol choice and permessage-deflate negotiation (RFC 7692 §7.1), on requests parsed by
// codec/http1.
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/ws/handshake.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>

namespace ws = rproxy::codec::ws;
namespace http1 = rproxy::codec::http1;

namespace {

constexpr std::string_view rfc_key = "dGhlIHNhbXBsZSBub25jZQ==";

/// Parses the request line `start` and `fields` (CRLF-separated lines) and validates them.
rproxy::result<ws::upgrade_request, ws::handshake_error> check(std::string& storage, std::string_view fields,
                                                               const ws::handshake_options& opt = {},
                                                               std::string_view start = "GET /chat HTTP/1.1") {
  storage = std::string(start) + "\r\n" + std::string(fields) + "\r\n";
  static http1::request_parser p;  // the views below point into storage and p's field list
  p.reset();
  const auto r = p.parse(storage);
  REQUIRE((r.what == http1::event::head || r.what == http1::event::upgrade));
  return ws::validate_upgrade(p.head(), opt);
}

const std::string good = std::string("Host: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n") +
                         "Sec-WebSocket-Key: " + std::string(rfc_key) + "\r\nSec-WebSocket-Version: 13\r\n";

}  // namespace

TEST_CASE("RFC 6455 1.3: the accept key of the example nonce", "[ws][handshake]") {
  CHECK(ws::accept_key(rfc_key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST_CASE("a valid upgrade request gives a 101 with the accept key", "[ws][handshake]") {
  std::string s;
  auto r = check(s, good + "Origin: http://example.com\r\n");
  REQUIRE(r.has_value());
  CHECK(r->target == "/chat");
  CHECK(r->host == "server.example.com");
  CHECK(r->origin == std::optional<std::string_view>("http://example.com"));
  CHECK(r->subprotocol.empty());
  CHECK_FALSE(r->deflate);
  const std::string resp = ws::make_accept_response(*r);
  CHECK(resp == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
  // The response parses as a 101 that switches protocols.
  http1::response_parser rp;
  rp.set_request_method("GET");
  REQUIRE(rp.parse(resp).what == http1::event::head);
  CHECK(rp.head().status == 101);
  CHECK(rp.parse(std::string_view(resp).substr(resp.size())).what == http1::event::upgrade);
  // Tokens are case-insensitive and may be in lists.
  auto r2 = check(s, "Host: h\r\nUpgrade: foo, WebSocket\r\nConnection: keep-alive, UPGRADE\r\n"
                     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n");
  CHECK(r2.has_value());
}

TEST_CASE("bad requests get 400, other versions 426 with Sec-WebSocket-Version: 13", "[ws][handshake]") {
  std::string s;
  const auto fails = [&](std::string_view fields, ws::handshake_error e, std::string_view start = "GET /chat HTTP/1.1") {
    auto r = check(s, fields, {}, start);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == e);
  };
  fails(good, ws::handshake_error::not_get, "POST /chat HTTP/1.1");
  fails(good, ws::handshake_error::not_http11, "GET /chat HTTP/1.0");
  {
    // The HTTP/1.1 parser already refuses a request without Host; a head from elsewhere may lack it.
    const http1::field_view f[] = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"},
                                   {"Sec-WebSocket-Key", rfc_key}, {"Sec-WebSocket-Version", "13"}};
    http1::request_head_view h{"GET", "/", http1::http_version::http11, http1::fields_view(f)};
    CHECK(ws::validate_upgrade(h).error() == ws::handshake_error::no_host);
  }
  std::string no_upgrade = good;
  no_upgrade.replace(no_upgrade.find("Upgrade: websocket"), 18, "Upgrade: h2c");
  fails(no_upgrade, ws::handshake_error::no_upgrade);
  std::string no_conn = good;
  no_conn.replace(no_conn.find("Connection: Upgrade"), 19, "Connection: close");
  fails(no_conn, ws::handshake_error::no_connection_upgrade);
  for (std::string_view key : {"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25j", "dGhlIHNhbXBsZSBub25jZQ=!",
                               "dGhlIHNhbXBsZSBub25jZR==", "dGhlIHNhbXBsZSBub25jZQ==AAAA", "!GhlIHNhbXBsZSBub25jZQ=="}) {
    std::string f = good;
    f.replace(f.find(rfc_key), rfc_key.size(), key);
    INFO(key);
    fails(f, ws::handshake_error::bad_key);
  }
  fails(good + "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n", ws::handshake_error::bad_key);
  std::string no_version = good;
  no_version.erase(no_version.find("Sec-WebSocket-Version: 13\r\n"));
  fails(no_version, ws::handshake_error::no_version);
  for (std::string_view v : {"8", "12", "14", "13, 8", "abc"}) {
    std::string f = good;
    f.replace(f.find("Version: 13"), 11, "Version: " + std::string(v));
    fails(f, ws::handshake_error::bad_version);
  }
  fails(good + "Sec-WebSocket-Protocol: a b\r\n", ws::handshake_error::bad_protocol);
  fails(good + "Sec-WebSocket-Extensions: permessage-deflate; =\r\n", ws::handshake_error::bad_extensions);
  fails(good + "Sec-WebSocket-Extensions: \"x\"\r\n", ws::handshake_error::bad_extensions);

  const std::string r426 = ws::make_handshake_error_response(ws::handshake_error::bad_version);
  http1::response_parser rp;
  rp.set_request_method("GET");
  REQUIRE(rp.parse(r426).what == http1::event::head);
  CHECK(rp.head().status == 426);
  CHECK(rp.head().fields.find("sec-websocket-version") == std::optional<std::string_view>("13"));
  const std::string r400 = ws::make_handshake_error_response(ws::handshake_error::bad_key);
  rp.reset();
  REQUIRE(rp.parse(r400).what == http1::event::head);
  CHECK(rp.head().status == 400);
  CHECK_FALSE(rp.head().fields.contains("sec-websocket-version"));
  CHECK(rp.head().fields.has_token("connection", "close"));
}

TEST_CASE("subprotocols: the server's first choice that the client offered", "[ws][handshake]") {
  std::string s;
  static constexpr std::string_view mine[] = {"chat.v2", "chat.v1"};
  ws::handshake_options opt{.subprotocols = mine};
  auto r = check(s, good + "Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n", opt);
  REQUIRE(r.has_value());
  CHECK(r->subprotocol == "chat.v2");
  CHECK(ws::make_accept_response(*r).find("\r\nSec-WebSocket-Protocol: chat.v2\r\n") != std::string::npos);
  r = check(s, good + "Sec-WebSocket-Protocol: other\r\nSec-WebSocket-Protocol: chat.v1\r\n", opt);
  REQUIRE(r.has_value());
  CHECK(r->subprotocol == "chat.v1");
  r = check(s, good + "Sec-WebSocket-Protocol: other\r\n", opt);
  REQUIRE(r.has_value());
  CHECK(r->subprotocol.empty());
  CHECK(ws::make_accept_response(*r).find("Sec-WebSocket-Protocol") == std::string::npos);
}

TEST_CASE("permessage-deflate negotiation (RFC 7692 7.1)", "[ws][handshake][deflate]") {
  std::string s;
  ws::handshake_options on{.deflate = {.enabled = true}};
  const auto negotiate = [&](std::string_view offer, const ws::handshake_options& opt) {
    auto r = check(s, good + "Sec-WebSocket-Extensions: " + std::string(offer) + "\r\n", opt);
    REQUIRE(r.has_value());
    return r->deflate;
  };
  auto d = negotiate("permessage-deflate", on);
  REQUIRE(d);
  CHECK(d->to_string() == "permessage-deflate");
  CHECK_FALSE(negotiate("permessage-deflate", {}));  // disabled on the server
  d = negotiate("permessage-deflate; client_max_window_bits", on);
  REQUIRE(d);
  CHECK(d->to_string() == "permessage-deflate");
  CHECK(d->receive_window(ws::role::server) == 15);
  d = negotiate("permessage-deflate; client_max_window_bits=10; server_max_window_bits=12; "
                "server_no_context_takeover; client_no_context_takeover",
                on);
  REQUIRE(d);
  CHECK(d->to_string() == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                          "server_max_window_bits=12; client_max_window_bits=10");
  CHECK(d->send_window(ws::role::server) == 12);
  CHECK(d->receive_window(ws::role::server) == 10);
  CHECK(d->send_reset(ws::role::server));
  CHECK(d->receive_reset(ws::role::server));
  // A quoted value is allowed; the server may ask for less and for client_no_context_takeover.
  ws::handshake_options frugal{.deflate = {.enabled = true, .server_no_context_takeover = true,
                                           .client_no_context_takeover = true, .server_max_window_bits = 10,
                                           .client_max_window_bits = 9}};
  d = negotiate("permessage-deflate; client_max_window_bits=\"12\"", frugal);
  REQUIRE(d);
  CHECK(d->to_string() == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                          "server_max_window_bits=10; client_max_window_bits=9");
  // Invalid offers are declined and the next one is tried.
  for (std::string_view bad : {"permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=16",
                               "permessage-deflate; client_max_window_bits=7", "permessage-deflate; foo",
                               "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                               "permessage-deflate; server_no_context_takeover=1",
                               "permessage-deflate; server_max_window_bits=010",
                               "permessage-deflate; server_max_window_bits=8"}) {
    INFO(bad);
    CHECK_FALSE(negotiate(bad, on));
    d = negotiate(std::string(bad) + ", permessage-deflate; client_no_context_takeover", on);
    REQUIRE(d);
    CHECK(d->to_string() == "permessage-deflate; client_no_context_takeover");
  }
  // Other extensions are ignored.
  d = negotiate("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=15", on);
  REQUIRE(d);
  CHECK(d->to_string() == "permessage-deflate; server_max_window_bits=15");
  auto r = check(s, good + "Sec-WebSocket-Extensions: permessage-deflate\r\n", on);
  REQUIRE(r.has_value());
  CHECK(ws::make_accept_response(*r).find("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n") != std::string::npos);
}
