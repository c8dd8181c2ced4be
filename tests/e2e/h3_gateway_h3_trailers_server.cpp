// An HTTP/3 server for the trailers e2e (h3_gateway_h3_trailers_test.py): answers that no
// packaged HTTP/3 server gives, on rproxy's own QUIC endpoint and codec/h3 server side.
//
//   h3_trailers_server --port N --cert cert.pem --key key.pem
//
// By path:
//   /test.Missing/* gRPC's Trailers-Only answer: one HEADERS frame with :status 200,
//                   content-type application/grpc, grpc-status 12 and grpc-message, END_STREAM,
//                   no DATA (what a gRPC server sends for a method it does not know);
//   /length         a body with content-length ("hello, trailers\n"), then a trailer section
//                   (x-checksum, grpc-status 0);
//   /once/drop/KEY  the first request for a KEY closes the connection (H3_INTERNAL_ERROR) with
//                   the request open, as a backend that crashed would; later ones are echoed;
//   /once/reject/KEY the first request for a KEY is refused unprocessed (RESET_STREAM with
//                   H3_REQUEST_REJECTED); later ones are echoed;
//   anything else   what it received, as text: "body=<bytes>" and one "trailer <name>=<value>"
//                   line per request trailer, with content-length.
// Prints "listening" once the socket is bound; runs until killed.
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <rproxy/codec/h3/server_session.hpp>
#include <rproxy/net/quic/connection.hpp>
#include <rproxy/net/quic/server_endpoint.hpp>
#include <rproxy/net/quic/tls.hpp>
#include <rproxy/net/quic/udp.hpp>

namespace {

namespace h3 = rproxy::codec::h3;
namespace quic = rproxy::net::quic;

struct field {
  std::string_view name, value;
};

class app {
public:
  struct start_type {
    const quic::tls_credentials* creds;
    const quic::tls_credentials& credentials() const noexcept { return *creds; }
  };
  using conn_type = quic::connection<app>;

  explicit app(start_type) {}

  int on_ready(conn_type& c) {
    c_ = &c;
    std::int64_t ctrl = -1, enc = -1, dec = -1;
    if (ngtcp2_conn_open_uni_stream(c.get(), &ctrl, nullptr) != 0 || ngtcp2_conn_open_uni_stream(c.get(), &enc, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(c.get(), &dec, nullptr) != 0)
      return -1;
    return session_.bind(ctrl, enc, dec) ? 0 : -1;
  }
  int on_stream_data(conn_type& c, std::int64_t id, std::span<const std::uint8_t> data, bool fin) {
    handle(session_.feed(id, data, fin));
    if (session_.failed() != 0) c.close_application(session_.error_code());
    else if (drop_) c.close_application(NGHTTP3_H3_INTERNAL_ERROR, "dropped on purpose");
    kick();
    return 0;
  }
  int on_acked(conn_type&, std::int64_t id, std::uint64_t n) { return session_.acked(id, n); }
  int on_stream_close(conn_type& c, std::int64_t id, std::uint64_t code, bool has_code) {
    if (session_.stream_closed(id, code, has_code) != 0) return -1;
    if ((id & 0x3) == 0) ngtcp2_conn_extend_max_streams_bidi(c.get(), 1);
    handle(session_.poll());
    kick();
    return 0;
  }
  int on_stream_reset(conn_type&, std::int64_t id, std::uint64_t) {
    if (session_.stream_reset(id) != 0) return -1;
    handle(session_.poll());
    kick();
    return 0;
  }
  int on_extend_stream(conn_type&, std::int64_t id) {
    session_.unblocked(id);
    return 0;
  }
  int on_extend_streams_bidi(conn_type&, std::uint64_t max) {
    session_.set_max_client_streams(max);
    return 0;
  }
  std::ptrdiff_t writev(std::int64_t& id, bool& fin, std::span<ngtcp2_vec> v) { return session_.writev(id, fin, v); }
  int wrote(std::int64_t id, std::size_t n) { return session_.wrote(id, n); }
  void blocked(std::int64_t id) { session_.blocked(id); }
  void shut_wr(std::int64_t id) { session_.shut_wr(id); }
  void on_closed(conn_type& c) { c.app_done(); }

private:
  void kick() {
    if (!c_ || c_->over()) return;
    for (const auto& a : session_.take_actions()) {
      switch (a.what) {
        case h3::action_kind::extend: c_->extend(a.stream_id, a.n); break;
        case h3::action_kind::shutdown: (void)ngtcp2_conn_shutdown_stream(c_->get(), a.stream_id, a.n); break;
        case h3::action_kind::shutdown_read: (void)ngtcp2_conn_shutdown_stream_read(c_->get(), a.stream_id, a.n); break;
        case h3::action_kind::shutdown_write: (void)ngtcp2_conn_shutdown_stream_write(c_->get(), a.stream_id, a.n); break;
      }
    }
    c_->schedule_write();
  }

  void handle(std::span<const h3::event> events) {
    for (const auto& e : events) {
      switch (e.what) {
        case h3::event_kind::data:
          bodies_[e.stream_id] += e.data;
          session_.consume(e.stream_id, e.data.size());
          break;
        case h3::event_kind::end_stream: answer(e.stream_id); break;
        case h3::event_kind::closed:
          bodies_.erase(e.stream_id);
          session_.release(e.stream_id);
          break;
        default: break;
      }
    }
  }

  void answer(std::int64_t id) {
    const auto& req = session_.request(id);
    const std::string_view path = req.path();
    static std::unordered_set<std::string> seen;  // the KEYs of /once/ paths (one connection at a time: no lock)
    if (path.starts_with("/once/drop/") && seen.insert(std::string(path)).second) {
      drop_ = true;
      return;
    }
    if (path.starts_with("/once/reject/") && seen.insert(std::string(path)).second) {
      (void)ngtcp2_conn_shutdown_stream(c_->get(), id, NGHTTP3_H3_REQUEST_REJECTED);
      return;
    }
    if (path.starts_with("/test.Missing/")) {
      const std::vector<field> head{{"content-type", "application/grpc"}, {"grpc-status", "12"}, {"grpc-message", "unknown method"}};
      (void)session_.submit_response(id, 200, head, /*end_stream=*/true);
      return;
    }
    if (path == "/length") {
      const std::string body = "hello, trailers\n";
      const std::string length = std::to_string(body.size());
      const std::vector<field> head{{"content-type", "text/plain"}, {"content-length", length}};
      const std::vector<field> trailers{{"x-checksum", "c0ffee"}, {"grpc-status", "0"}};
      (void)session_.submit_response(id, 200, head);
      (void)session_.send_data(id, body);
      (void)session_.end_stream(id, trailers);
      return;
    }
    std::string body = "body=" + bodies_[id] + "\n";
    for (const auto& f : req.trailers()) body += "trailer " + std::string(f.name) + "=" + std::string(f.value) + "\n";
    const std::string length = std::to_string(body.size());
    const std::vector<field> head{{"content-type", "text/plain"}, {"content-length", length}};
    (void)session_.submit_response(id, 200, head);
    (void)session_.send_data(id, body);
    (void)session_.end_stream(id);
  }

  conn_type* c_ = nullptr;
  bool drop_ = false;
  h3::server_session session_;
  std::unordered_map<std::int64_t, std::string> bodies_;
};

struct factory {
  using app_type = app;
  const quic::tls_credentials* creds;
  std::optional<app::start_type> start() const { return app::start_type{creds}; }
};

}  // namespace

int main(int argc, char** argv) {
  std::string cert, key;
  unsigned short port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view a = argv[i];
    if (a == "--port") port = static_cast<unsigned short>(std::atoi(argv[i + 1]));
    else if (a == "--cert") cert = argv[i + 1];
    else if (a == "--key") key = argv[i + 1];
    else {
      std::fprintf(stderr, "h3_trailers_server: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (port == 0 || cert.empty() || key.empty()) {
    std::fprintf(stderr, "usage: h3_trailers_server --port N --cert cert.pem --key key.pem\n");
    return 2;
  }
  auto creds = quic::tls_credentials::server({{cert, key}});
  if (!creds) {
    std::fprintf(stderr, "h3_trailers_server: %s\n", creds.error().c_str());
    return 1;
  }
  asio::io_context io;
  auto s = quic::open_udp_socket(io.get_executor(), {asio::ip::make_address("127.0.0.1"), port}, false);
  if (!s) {
    std::fprintf(stderr, "h3_trailers_server: %s\n", s.error().message().c_str());
    return 1;
  }
  const auto secrets = quic::endpoint_secrets::generate();
  quic::server_endpoint<factory>::options o{.worker = 0, .workers = 1, .secrets = &secrets, .settings = {}};
  quic::server_endpoint<factory> ep(std::move(*s), o, factory{&*creds});
  ep.start();
  std::printf("listening\n");
  std::fflush(stdout);
  io.run();
}
