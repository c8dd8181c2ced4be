#include <rproxy/net/tls_stream.hpp>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/connect.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <catch2/catch.hpp>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using asio::ip::tcp;
using rproxy::net::tls_error;

namespace {

// Certificates made once per run with the openssl CLI in a fresh temp dir, removed at exit.
struct cert_dir {
  fs::path dir;

  cert_dir() {
    std::string tmpl = (fs::temp_directory_path() / "rproxy-tls-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    make("a", "ec -pkeyopt ec_paramgen_curve:prime256v1", "a.test", "DNS:a.test");
    make("b", "rsa:2048", "b.test", "DNS:b.test,DNS:www.b.test");
    make("w", "ec -pkeyopt ec_paramgen_curve:prime256v1", "w.test", "DNS:*.w.test");
    make("n", "ec -pkeyopt ec_paramgen_curve:prime256v1", "n.test", "");  // CN only
    run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -aes-256-cbc "
        "-pass pass:secret -out " + path("enc.key"));
    std::ofstream(path("garbage.pem")) << "this is not PEM\n";
    std::ofstream chain(path("chain.pem"));
    chain << std::ifstream(path("a.pem")).rdbuf() << std::ifstream(path("b.pem")).rdbuf();
  }
  ~cert_dir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  std::string path(const std::string& f) const { return (dir / f).string(); }

  static void run(const std::string& cmd) {
    const int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
    INFO(cmd);
    REQUIRE(rc == 0);
  }
  void make(const std::string& name, const std::string& key, const std::string& cn,
            const std::string& san) {
    std::string cmd = "openssl req -x509 -newkey " + key + " -nodes -days 2 -keyout " +
                      path(name + ".key") + " -out " + path(name + ".pem") + " -subj /CN=" + cn;
    if (!san.empty()) cmd += " -addext subjectAltName=" + san;
    run(cmd);
  }

  rproxy::net::tls_certificate cert(const std::string& name,
                                    std::vector<std::string> names = {}) const {
    return {path(name + ".pem"), path(name + ".key"), std::move(names)};
  }
};

const cert_dir& certs() {
  static const cert_dir d;
  return d;
}

rproxy::net::tls_server_context load(rproxy::net::tls_server_options o) {
  auto r = rproxy::net::tls_server_context::load(o);
  if (!r) FAIL(r.error().message);
  return std::move(*r);
}

// Default server: a (default), b, w (wildcard), n (CN only); names taken from the certificates.
rproxy::net::tls_server_options default_options() {
  const auto& c = certs();
  return {.certificates = {c.cert("a"), c.cert("b"), c.cert("w"), c.cert("n")},
          .alpn = {"h2", "http/1.1"}};
}

struct client_options {
  std::optional<std::string> sni{};
  std::vector<std::string> alpn{};
  int max_version = 0;  // 0: OpenSSL's default
};

struct outcome {
  bool server_done = false, client_done = false;
  std::error_code server_ec, client_ec;
  std::string server_sni, server_alpn, client_alpn, peer_cn, received;
  int peer_chain = 0;
};

std::string common_name(X509* cert) {
  char buf[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf);
  return buf;
}

// One loopback connection: server handshake (with timeout), client handshake, "hello" sent.
outcome connect(rproxy::net::tls_server_context& ctx, const client_options& co) {
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ssl::context cctx(asio::ssl::context::tls_client);
  cctx.set_verify_mode(asio::ssl::verify_none);
  if (co.max_version != 0) SSL_CTX_set_max_proto_version(cctx.native_handle(), co.max_version);
  rproxy::net::tls_stream server(io, ctx.context());
  rproxy::net::tls_stream client(io, cctx);
  if (co.sni) SSL_set_tlsext_host_name(client.native_handle(), co.sni->c_str());
  if (!co.alpn.empty()) {
    std::string wire;
    for (const auto& p : co.alpn) wire += static_cast<char>(p.size()) + p;
    SSL_set_alpn_protos(client.native_handle(),
                        reinterpret_cast<const unsigned char*>(wire.data()),
                        static_cast<unsigned>(wire.size()));
  }

  outcome out;
  std::array<char, 5> buf{};
  acceptor.async_accept(server.next_layer(), [&](std::error_code ec) {
    if (ec) {
      out.server_ec = ec;
      out.server_done = true;
      return;
    }
    rproxy::net::async_server_handshake(server, 5s, [&](std::error_code ec) {
      out.server_ec = ec;
      if (ec) {
        out.server_done = true;
        server.next_layer().close();
        return;
      }
      out.server_sni = rproxy::net::server_name(server);
      out.server_alpn = rproxy::net::alpn(server);
      asio::async_read(server, asio::buffer(buf), [&](std::error_code ec, std::size_t n) {
        if (!ec) out.received.assign(buf.data(), n);
        out.server_done = true;
      });
    });
  });
  client.next_layer().async_connect(acceptor.local_endpoint(), [&](std::error_code ec) {
    if (ec) {
      out.client_ec = ec;
      out.client_done = true;
      return;
    }
    client.async_handshake(asio::ssl::stream_base::client, [&](std::error_code ec) {
      out.client_ec = ec;
      if (ec) {
        out.client_done = true;
        client.next_layer().close();
        return;
      }
      out.client_alpn = rproxy::net::alpn(client);
      if (X509* peer = SSL_get1_peer_certificate(client.native_handle())) {
        out.peer_cn = common_name(peer);
        X509_free(peer);
      }
      if (auto* chain = SSL_get_peer_cert_chain(client.native_handle()))
        out.peer_chain = sk_X509_num(chain);
      asio::async_write(client, asio::buffer("hello", 5),
                        [&](std::error_code, std::size_t) { out.client_done = true; });
    });
  });
  io.run_for(10s);
  REQUIRE(out.server_done);
  REQUIRE(out.client_done);
  return out;
}

outcome connect_ok(rproxy::net::tls_server_context& ctx, const client_options& co) {
  auto out = connect(ctx, co);
  INFO("server: " << out.server_ec.message() << ", client: " << out.client_ec.message());
  REQUIRE_FALSE(out.server_ec);
  REQUIRE_FALSE(out.client_ec);
  CHECK(out.received == "hello");
  return out;
}

}  // namespace

TEST_CASE("SNI selects the certificate: exact, wildcard, default", "[net][tls]") {
  auto ctx = load(default_options());
  REQUIRE(ctx.size() == 4);

  struct row {
    std::optional<std::string> sni;
    std::string cn;
  };
  const row rows[] = {
      {"a.test", "a.test"},     {"b.test", "b.test"},   {"B.Test", "b.test"},
      {"www.b.test", "b.test"}, {"x.w.test", "w.test"}, {"w.test", "a.test"},
      {"y.x.w.test", "a.test"}, {"n.test", "n.test"},   {"c.test", "a.test"},
      {std::nullopt, "a.test"},
  };
  for (const auto& r : rows) {
    INFO("sni " << r.sni.value_or("(none)"));
    const auto out = connect_ok(ctx, {.sni = r.sni});
    CHECK(out.peer_cn == r.cn);
    CHECK(out.server_sni == r.sni.value_or(""));
  }
}

TEST_CASE("server names: configured, from SANs, from CN; select()", "[net][tls]") {
  const auto& c = certs();
  auto ctx = load({.certificates = {c.cert("a"), c.cert("b", {"api.example.com", "*.Example.com"}),
                                    c.cert("w"), c.cert("n")}});
  CHECK(ctx.names(0) == std::vector<std::string>{"a.test"});
  CHECK(ctx.names(1) == std::vector<std::string>{"api.example.com", "*.example.com"});
  CHECK(ctx.names(2) == std::vector<std::string>{"*.w.test"});
  CHECK(ctx.names(3) == std::vector<std::string>{"n.test"});
  CHECK(ctx.select("api.example.com") == 1);
  CHECK(ctx.select("img.example.com") == 1);
  CHECK(ctx.select("example.com") == 0);
  CHECK(ctx.select("b.test") == 0);  // configured names replace the certificate's
  CHECK(ctx.select("a.test.") == 0);
  CHECK(ctx.select("") == 0);
  CHECK(ctx.select(".w.test") == 0);

  const auto out = connect_ok(ctx, {.sni = "img.example.com"});
  CHECK(out.peer_cn == "b.test");
}

TEST_CASE("strict SNI rejects unknown names but not a missing one", "[net][tls]") {
  auto o = default_options();
  o.strict_sni = true;
  auto ctx = load(o);
  CHECK(ctx.select("c.test") == rproxy::net::tls_server_context::npos);
  const auto bad = connect(ctx, {.sni = "c.test"});
  CHECK(bad.server_ec);
  CHECK(bad.client_ec);
  CHECK(connect_ok(ctx, {.sni = "b.test"}).peer_cn == "b.test");
  CHECK(connect_ok(ctx, {}).peer_cn == "a.test");
}

TEST_CASE("ALPN follows the server's preference", "[net][tls]") {
  auto ctx = load(default_options());
  SECTION("overlap: the server's first choice wins") {
    const auto out = connect_ok(ctx, {.sni = "a.test", .alpn = {"http/1.1", "h2"}});
    CHECK(out.server_alpn == "h2");
    CHECK(out.client_alpn == "h2");
  }
  SECTION("only http/1.1 offered") {
    const auto out = connect_ok(ctx, {.sni = "b.test", .alpn = {"http/1.1"}});
    CHECK(out.server_alpn == "http/1.1");
    CHECK(out.client_alpn == "http/1.1");
  }
  SECTION("after an SNI switch the selected certificate's context still does ALPN") {
    const auto out = connect_ok(ctx, {.sni = "x.w.test", .alpn = {"h2"}});
    CHECK(out.peer_cn == "w.test");
    CHECK(out.server_alpn == "h2");
  }
  SECTION("no overlap: proceeds without ALPN") {
    const auto out = connect_ok(ctx, {.alpn = {"spdy/3", "h3"}});
    CHECK(out.server_alpn.empty());
    CHECK(out.client_alpn.empty());
  }
  SECTION("client without ALPN") {
    const auto out = connect_ok(ctx, {});
    CHECK(out.server_alpn.empty());
  }
  SECTION("no overlap with require_alpn fails the handshake") {
    auto o = default_options();
    o.require_alpn = true;
    auto strict = load(o);
    const auto bad = connect(strict, {.alpn = {"spdy/3"}});
    CHECK(bad.server_ec);
    CHECK(bad.client_ec);
    CHECK(connect_ok(strict, {.alpn = {"h2"}}).server_alpn == "h2");
  }
  SECTION("a server without ALPN ignores the client's list") {
    const auto& c = certs();
    auto plain = load({.certificates = {c.cert("a")}});
    CHECK(connect_ok(plain, {.alpn = {"h2"}}).server_alpn.empty());
  }
}

TEST_CASE("TLS 1.2 is the floor; 1.3 can be required", "[net][tls]") {
  auto ctx = load(default_options());
  CHECK(connect_ok(ctx, {.max_version = TLS1_2_VERSION}).peer_cn == "a.test");
  const auto old = connect(ctx, {.max_version = TLS1_1_VERSION});
  CHECK(old.server_ec);
  CHECK(old.client_ec);

  auto o = default_options();
  o.min_version = rproxy::net::tls_version::tls1_3;
  auto only13 = load(o);
  CHECK(connect(only13, {.max_version = TLS1_2_VERSION}).server_ec);
  CHECK(connect_ok(only13, {}).peer_cn == "a.test");
}

TEST_CASE("a chain file sends leaf and chain", "[net][tls]") {
  const auto& c = certs();
  auto ctx = load({.certificates = {{c.path("chain.pem"), c.path("a.key"), {}}}});
  const auto out = connect_ok(ctx, {.sni = "a.test"});
  CHECK(out.peer_cn == "a.test");
  CHECK(out.peer_chain == 2);
}

TEST_CASE("handshake timeout: a silent client gets timed_out", "[net][tls]") {
  auto ctx = load(default_options());
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket silent(io);
  silent.connect(acceptor.local_endpoint());
  rproxy::net::tls_stream server(io, ctx.context());
  acceptor.accept(server.next_layer());

  std::optional<std::error_code> result;
  rproxy::net::async_server_handshake(server, 50ms, [&](std::error_code ec) { result = ec; });
  io.run_for(10s);
  REQUIRE(result.has_value());
  CHECK(*result == asio::error::timed_out);
}

#if defined(ASIO_HAS_CO_AWAIT)  // g++; clang 14 with libstdc++ lacks it in Asio 1.22
TEST_CASE("handshake timeout with a coroutine completion token", "[net][tls]") {
  auto ctx = load(default_options());
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  tcp::socket silent(io);
  silent.connect(acceptor.local_endpoint());
  rproxy::net::tls_stream server(io, ctx.context());
  acceptor.accept(server.next_layer());

  std::optional<std::error_code> result;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto [ec] = co_await rproxy::net::async_server_handshake(
            server, 50ms, asio::experimental::as_tuple(asio::use_awaitable));
        result = ec;
      },
      asio::detached);
  io.run_for(10s);
  REQUIRE(result.has_value());
  CHECK(*result == asio::error::timed_out);
}
#endif

TEST_CASE("a handshake that finishes leaves no timer behind", "[net][tls]") {
  // io.run() returns only when no work is left: the deadline timer must have been cancelled.
  auto ctx = load(default_options());
  asio::io_context io;
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  asio::ssl::context cctx(asio::ssl::context::tls_client);
  rproxy::net::tls_stream client(io, cctx);
  rproxy::net::tls_stream server(io, ctx.context());
  client.next_layer().connect(acceptor.local_endpoint());
  acceptor.accept(server.next_layer());
  std::optional<std::error_code> sec, cec;
  rproxy::net::async_server_handshake(server, 1h, [&](std::error_code ec) { sec = ec; });
  client.async_handshake(asio::ssl::stream_base::client, [&](std::error_code ec) { cec = ec; });
  io.run_for(10s);
  REQUIRE(sec.has_value());
  REQUIRE(cec.has_value());
  CHECK_FALSE(*sec);
  CHECK_FALSE(*cec);
  CHECK(io.stopped());  // ran out of work: nothing waits for the hour-long deadline
}

TEST_CASE("load errors name the file and the problem", "[net][tls]") {
  const auto& c = certs();
  auto err = [](const rproxy::net::tls_server_options& o) {
    auto r = rproxy::net::tls_server_context::load(o);
    REQUIRE_FALSE(r);
    return r.error();
  };
  using rproxy::net::tls_certificate;

  auto e = err({.certificates = {{c.path("missing.pem"), c.path("a.key"), {}}}});
  CHECK(e.code == tls_error::file_unreadable);
  CHECK(e.message == c.path("missing.pem") + ": No such file or directory");

  e = err({.certificates = {{c.path("a.pem"), c.path("missing.key"), {}}}});
  CHECK(e.code == tls_error::file_unreadable);
  CHECK(e.message == c.path("missing.key") + ": No such file or directory");

  e = err({.certificates = {{c.path("garbage.pem"), c.path("a.key"), {}}}});
  CHECK(e.code == tls_error::bad_certificate);
  CHECK(e.message == c.path("garbage.pem") + ": no PEM certificate found");

  e = err({.certificates = {{c.path("a.pem"), c.path("garbage.pem"), {}}}});
  CHECK(e.code == tls_error::bad_private_key);
  CHECK(e.message.starts_with(c.path("garbage.pem") + ": no PEM private key found"));

  e = err({.certificates = {{c.path("a.pem"), c.path("enc.key"), {}}}});
  CHECK(e.code == tls_error::bad_private_key);
  CHECK(e.message.find("encrypted keys are not supported") != std::string::npos);

  for (const char* key : {"b.key", "w.key"}) {  // other type (RSA) and same type (EC)
    e = err({.certificates = {c.cert("a"), {c.path("a.pem"), c.path(key), {}}}});
    CHECK(e.code == tls_error::key_mismatch);
    CHECK(e.message == c.path(key) + ": key does not match certificate " + c.path("a.pem"));
  }

  e = err({});
  CHECK(e.code == tls_error::no_certificates);

  e = err({.certificates = {c.cert("a", {"a.*.test"})}});
  CHECK(e.code == tls_error::bad_server_name);
  CHECK(e.message.find("a.*.test") != std::string::npos);
  CHECK(err({.certificates = {c.cert("a", {""})}}).code == tls_error::bad_server_name);
  CHECK(err({.certificates = {c.cert("a", {"*"})}}).code == tls_error::bad_server_name);

  CHECK(err({.certificates = {c.cert("a")}, .alpn = {""}}).code == tls_error::bad_alpn);
  CHECK(err({.certificates = {c.cert("a")}, .alpn = {std::string(256, 'x')}}).code ==
        tls_error::bad_alpn);

  e = err({.certificates = {c.cert("a")}, .ciphers = "NOPE-NOTHING"});
  CHECK(e.code == tls_error::bad_ciphers);
  CHECK(e.message.find("NOPE-NOTHING") != std::string::npos);

  CHECK(e.code == rproxy::condition::internal);
  CHECK(std::string(e.code.category().name()) == "rproxy.net.tls");
  CHECK(ERR_peek_error() == 0);  // the OpenSSL error queue is left clean
}
