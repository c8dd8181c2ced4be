// rproxy/flow/ws_tls_session.hpp: the WebSocket adapter over a TLS stream (wss) driven by
// flow::serve after the server handshake, with an asio::ssl client writing raw frames: the 101,
// messages through on_message, ping/pong, the close handshake, frames sent with the upgrade
// request; a burst of server frames larger than one TLS write (several take() batches) arrives
// whole and in order; the idle deadlines (a ping, then close 1001, then the close timeout).
#include <rproxy/codec/ws/collector.hpp>
#include <rproxy/codec/ws/writer.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/flow/ws.hpp>
#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/net/tls_stream.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "run_until.hpp"

namespace {

namespace fs = std::filesystem;
using asio::ip::tcp;
namespace ws = rproxy::codec::ws;
namespace flow = rproxy::flow;
using proto = flow::ws_protocol<flow::ws_message>;

// A self-signed certificate made once per run with the openssl CLI, removed at exit.
struct cert_dir {
  fs::path dir;
  cert_dir() {
    std::string tmpl = (fs::temp_directory_path() / "rproxy-wss-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -keyout " +
                            path("s.key") + " -out " + path("s.pem") + " -subj /CN=wss.test -addext subjectAltName=DNS:wss.test >/dev/null 2>&1";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
  ~cert_dir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string path(const std::string& f) const { return (dir / f).string(); }
};
const cert_dir& certs() {
  static const cert_dir d;
  return d;
}

struct record {
  std::vector<std::string> messages;
  int closes = 0;
};

/// Echoes each message upper-cased; "burst N" sends N frames of 5,000 bytes each.
struct echo_stage {
  record* r;
  template <class Ctx>
  rproxy::verdict on_message(Ctx& ctx, const flow::ws_message& m) {
    r->messages.emplace_back(m.data);
    if (m.data.starts_with("burst ")) {
      const int n = std::atoi(std::string(m.data.substr(6)).c_str());
      for (int i = 0; i < n; ++i) ctx.ws->send_text(std::to_string(i) + ":" + std::string(5000, 'x'));
      return rproxy::next;
    }
    std::string up(m.data);
    for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    ctx.ws->send_text(std::move(up));
    return rproxy::next;
  }
  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    CHECK(ctx.tls);
    ++r->closes;
  }
};

std::string client_frame(ws::opcode op, std::string_view payload) {
  std::string out;
  ws::append_frame(out, op, payload, {.fin = true, .rsv1 = false, .mask = ws::mask_key{1, 2, 3, 4}});
  return out;
}

const std::string upgrade_request =
    "GET /chat HTTP/1.1\r\nHost: wss.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

struct fixture {
  asio::io_context ioc;
  flow::ws_hub hub{{ioc.get_executor()}};
  record rec;
  decltype(rproxy::make_pipeline<proto>(echo_stage{nullptr})) p = rproxy::make_pipeline<proto>(echo_stage{&rec});
  flow::options opt;
  flow::ws_adapter<> a{.hub = &hub};
  std::optional<rproxy::net::tls_server_context> server_tls;
  asio::ssl::context client_tls{asio::ssl::context::tls_client};
  std::optional<std::error_code> result;
  std::string got;  ///< everything the client received (decrypted)

  fixture() {
    opt.hello_timeout = std::chrono::seconds(5);
    a.frames.max_message_size = a.frames.max_frame_size = 1000;
    auto t = rproxy::net::tls_server_context::load({.certificates = {{certs().path("s.pem"), certs().path("s.key"), {}}}, .alpn = {"http/1.1"}});
    REQUIRE(t);
    server_tls.emplace(std::move(*t));
    client_tls.load_verify_file(certs().path("s.pem"));  // the client trusts exactly this certificate
    client_tls.set_verify_mode(asio::ssl::verify_peer);
  }

  static asio::awaitable<void> serve(fixture* f, tcp::socket s) {
    rproxy::net::tls_stream tls(std::move(s), f->server_tls->context());
    auto [ec] = co_await rproxy::net::async_server_handshake(tls, std::chrono::seconds(5), asio::experimental::as_tuple(asio::use_awaitable));
    REQUIRE_FALSE(ec);
    f->result = co_await flow::serve(f->p, f->a, std::move(tls), f->opt);
  }

  /// The client: the handshake, `bytes`, then `later` once the 101 came, reading until the server closes.
  static asio::awaitable<void> client(fixture* f, asio::ssl::stream<tcp::socket>& c, std::string bytes, std::vector<std::string> later) {
    using asio::experimental::as_tuple;
    SSL_set_tlsext_host_name(c.native_handle(), "wss.test");
    co_await c.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
    co_await asio::async_write(c, asio::buffer(bytes), asio::use_awaitable);
    std::array<char, 16384> buf;
    std::size_t next = 0;
    for (;;) {
      auto [ec, n] = co_await c.async_read_some(asio::buffer(buf), as_tuple(asio::use_awaitable));
      if (ec) break;
      f->got.append(buf.data(), n);
      if (next < later.size() && f->got.find("\r\n\r\n") != std::string::npos)
        co_await asio::async_write(c, asio::buffer(later[next++]), asio::use_awaitable);
    }
  }

  void exchange(const std::string& bytes, const std::vector<std::string>& later = {}) {
    tcp::acceptor front(ioc, {asio::ip::address_v4::loopback(), 0});
    asio::ssl::stream<tcp::socket> c(ioc, client_tls);
    c.next_layer().connect(front.local_endpoint());
    asio::co_spawn(ioc, serve(this, front.accept()), [](std::exception_ptr e) { REQUIRE_FALSE(e); });
    bool done = false;
    asio::co_spawn(ioc, client(this, c, bytes, later), [&](std::exception_ptr e) {
      REQUIRE_FALSE(e);
      done = true;
    });
    REQUIRE(rproxy::test::run_until(ioc, [&] { return done && result.has_value(); }));
  }

  std::vector<ws::received_item> frames() const {
    ws::collector c({.side = ws::role::client});
    c.feed(got.substr(got.find("\r\n\r\n") + 4));
    return c.received;
  }
};

}  // namespace

TEST_CASE("wss: 101, messages, ping and close over TLS; on_close once with ctx.tls", "[flow][ws][tls]") {
  fixture f;
  f.exchange(upgrade_request + client_frame(ws::opcode::text, "hello") + client_frame(ws::opcode::ping, "p1") +
             client_frame(ws::opcode::text, "again") + client_frame(ws::opcode::close, std::string("\x03\xe8", 2)));
  REQUIRE(f.got.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
  REQUIRE(f.got.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != std::string::npos);  // RFC 6455 §1.3
  auto fr = f.frames();
  REQUIRE(fr.size() == 4);
  CHECK((fr[0].what == ws::event::data && fr[0].data == "HELLO"));
  CHECK((fr[1].what == ws::event::pong && fr[1].data == "p1"));
  CHECK((fr[2].what == ws::event::data && fr[2].data == "AGAIN"));
  CHECK((fr[3].what == ws::event::close && fr[3].code == 1000));
  REQUIRE(f.rec.messages == std::vector<std::string>{"hello", "again"});
  REQUIRE(f.rec.closes == 1);
  REQUIRE_FALSE(*f.result);
}

TEST_CASE("wss: a burst larger than one TLS write arrives whole and in order", "[flow][ws][tls]") {
  fixture f;
  f.a.send.max_queue_bytes = 4 * 1024 * 1024;
  f.exchange(upgrade_request, {client_frame(ws::opcode::text, "burst 100") + client_frame(ws::opcode::close, std::string("\x03\xe8", 2))});
  auto fr = f.frames();
  REQUIRE(fr.size() == 101);
  for (int i = 0; i < 100; ++i) {
    INFO(i);
    REQUIRE(fr[static_cast<std::size_t>(i)].what == ws::event::data);
    REQUIRE(fr[static_cast<std::size_t>(i)].data == std::to_string(i) + ":" + std::string(5000, 'x'));
  }
  CHECK((fr[100].what == ws::event::close && fr[100].code == 1000));
}

TEST_CASE("wss idle: a ping after idle_timeout, close 1001 after another, then the close timeout ends it", "[flow][ws][tls]") {
  fixture f;
  f.a.idle_timeout = std::chrono::milliseconds(50);
  f.a.send.close_timeout = std::chrono::milliseconds(50);
  f.exchange(upgrade_request);  // the client never answers
  auto fr = f.frames();
  REQUIRE(fr.size() == 2);
  CHECK(fr[0].what == ws::event::ping);
  CHECK((fr[1].what == ws::event::close && fr[1].code == 1001));
  REQUIRE(f.rec.closes == 1);
}
