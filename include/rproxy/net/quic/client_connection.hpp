// rproxy/net/quic/client_connection.hpp: one QUIC client connection on its own connected UDP
// socket: the owner of a net::quic::connection<App> (the transport both sides share) that
// gives it packets, sends its packets, and says when it may be destroyed. It knows streams, not
// HTTP: the application protocol is App (codec::h3::client_session for HTTP/3).
//
//     auto creds = tls_credentials::client({.verify = true, .ca_file = "ca.pem"});
//     auto c = std::make_unique<client_connection<App>>(ex, app_args...);  // its address must not move
//     if (auto ec = c->connect(remote, *creds, "backend.example")) ...    // nothing sent on an error
//     c->set_released(+[](void* ud, void* conn) { ... delete conn ... }, ud);  // after the end
//
// App is a connection<App> application (net/quic/connection.hpp), plus optionally:
//   void on_handshake_completed(connection<App>&)      the handshake is done: requests may go
//   void on_streams_available(connection<App>&)        stream credit came back (MAX_STREAMS)
// The stream operations an application calls on its connection (open a stream, give credit,
// reset) are the free functions at the end of this file, found by argument-dependent lookup, so
// a codec above calls them without including net/.
//
// close() may be called from inside any App hook: the CONNECTION_CLOSE goes out once ngtcp2 has
// returned. Received datagrams are read in batches (recvmmsg); sends go through udp_sender (GSO).
#pragma once

#include <sys/socket.h>

#include <cerrno>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/ip/udp.hpp>
#include <ngtcp2/ngtcp2.h>

#include <rproxy/core/result.hpp>
#include <rproxy/net/quic/cid.hpp>
#include <rproxy/net/quic/client_error.hpp>
#include <rproxy/net/quic/connection.hpp>
#include <rproxy/net/quic/tls.hpp>
#include <rproxy/net/quic/udp.hpp>

namespace rproxy::net::quic {

/// Why a client connection ended, as an error (a handshake that never completed is retry-safe:
/// nothing was sent on it).
inline std::error_code client_end_error(close_reason r, bool handshake_completed) noexcept {
  switch (r) {
    case close_reason::idle: return make_error_code(handshake_completed ? client_error::idle_timeout : client_error::handshake_timeout);
    case close_reason::handshake_timeout: return make_error_code(client_error::handshake_timeout);
    case close_reason::peer_closed: return make_error_code(handshake_completed ? client_error::peer_closed : client_error::handshake_failed);
    case close_reason::local_close: return make_error_code(client_error::closed);
    case close_reason::none:
    case close_reason::error: return make_error_code(handshake_completed ? client_error::transport_failed : client_error::handshake_failed);
  }
  return make_error_code(client_error::transport_failed);
}

/// Counters of one client connection's socket.
struct client_socket_stats {
  std::uint64_t datagrams_received = 0;
  std::uint64_t recv_calls = 0;
};

template <class App>
class client_connection {
public:
  using quic_type = connection<App>;
  using released_fn = void (*)(void* user, void* conn);

  template <class... Args>
  explicit client_connection(const asio::any_io_executor& ex, Args&&... app_args)
      : socket_(ex), quic_(ex, hooks(), std::forward<Args>(app_args)...) {}
  client_connection(const client_connection&) = delete;
  client_connection& operator=(const client_connection&) = delete;

  /// Opens the socket and sends the first Initial to `remote`; `server_name` is SNI and, when
  /// `creds` verify, the name the certificate must carry. On an error nothing was sent and no
  /// hook runs; after success the connection always ends through App::on_closed.
  std::error_code connect(const asio::ip::udp::endpoint& remote, const tls_credentials& creds, std::string_view server_name,
                          const transport_settings& ts = client_transport_settings()) {
    std::error_code ec;
    socket_.open(remote.protocol(), ec);
    if (!ec) socket_.non_blocking(true, ec);
    if (!ec) socket_.connect(remote, ec);
    asio::ip::udp::endpoint local;
    if (!ec) local = socket_.local_endpoint(ec);
    if (ec) return make_error_code(client_error::socket_failed);
    path_ = path_storage(local, remote);
    if (quic_.init_client(path_.path, make_cid(0), ts, creds, server_name)) return make_error_code(client_error::tls_setup);
    sender_.reset(socket_.native_handle());
    started_ = true;
    quic_.write();
    wait_read();
    return {};
  }

  /// Called once the connection is over and nothing of it runs (destroy it there).
  void set_released(released_fn fn, void* user) noexcept {
    released_ = fn;
    released_user_ = user;
  }

  quic_type& quic() noexcept { return quic_; }
  App& app() noexcept { return quic_.app(); }
  bool over() const noexcept { return quic_.over(); }
  bool handshake_completed() const noexcept { return quic_.handshake_completed(); }
  /// Why it ended (once over()).
  std::error_code end_error() const noexcept {
    return refused_ ? make_error_code(client_error::socket_failed) : client_end_error(quic_.reason(), handshake_seen_);
  }
  const udp_sender& sender() const noexcept { return sender_; }
  const client_socket_stats& stats() const noexcept { return stats_; }
  const asio::ip::udp::endpoint remote() const { return path_.remote(); }

  /// Ends the connection with CONNECTION_CLOSE(app_error_code) (HTTP/3: H3_NO_ERROR 0x100).
  void close(std::uint64_t app_error_code = 0x100) {
    if (!started_ || quic_.over()) return;
    if (in_io_) {
      close_code_ = app_error_code;
      close_pending_ = true;
      return;
    }
    quic_.close_application(app_error_code);
  }

private:
  static connection_hooks hooks_for(client_connection* self) {
    connection_hooks h;
    h.owner = self;
    h.send = [](void* o, const ngtcp2_path& path, std::span<const std::uint8_t> data, std::size_t segment) {
      (void)static_cast<client_connection*>(o)->sender_.send(path.remote, data, segment);
    };
    h.new_cid = [](void*, void*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t len) {
      cid->datalen = len;
      random_bytes(std::span(cid->data, len));
      random_bytes(std::span(token, NGTCP2_STATELESS_RESET_TOKENLEN));
      return 0;
    };
    h.finished = [](void* o, void*) { static_cast<client_connection*>(o)->on_finished(); };
    h.handshake_done = [](void* o, void*) {
      auto& self = *static_cast<client_connection*>(o);
      self.handshake_seen_ = true;
      if constexpr (requires { self.quic_.app().on_handshake_completed(self.quic_); }) self.quic_.app().on_handshake_completed(self.quic_);
    };
    return h;
  }
  connection_hooks hooks() { return hooks_for(this); }

  void wait_read() {
    waiting_ = true;
    socket_.async_wait(asio::ip::udp::socket::wait_read, [this](std::error_code ec) {
      waiting_ = false;
      if (!ec && !quic_.over()) on_readable();
      if (!quic_.over() && socket_.is_open()) return wait_read();
      maybe_release();
    });
  }

  void on_readable() {
    static constexpr std::size_t batch = 16, slot = 2048;
    std::array<mmsghdr, batch> msgs{};
    std::array<iovec, batch> iov{};
    const bool had_streams = quic_.get() && ngtcp2_conn_get_streams_bidi_left(quic_.get()) > 0;
    in_io_ = true;
    for (int rounds = 0; rounds < 8 && !quic_.over(); ++rounds) {
      for (std::size_t i = 0; i < batch; ++i) {
        iov[i] = {rbuf_.data() + i * slot, slot};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = ::recvmmsg(socket_.native_handle(), msgs.data(), batch, MSG_DONTWAIT, nullptr);
      ++stats_.recv_calls;
      if (n < 0 && errno == ECONNREFUSED) {  // ICMP port unreachable: nothing listens there (any more)
        refused_ = true;
        in_io_ = false;
        quic_.abandon();
        return;
      }
      if (n <= 0) break;
      for (int i = 0; i < n && !quic_.over(); ++i) {
        const auto k = static_cast<std::size_t>(i);
        if (msgs[k].msg_hdr.msg_flags & MSG_TRUNC) continue;  // larger than we announced: not a packet of this connection
        ++stats_.datagrams_received;
        quic_.on_packet(path_.path, std::span<const std::uint8_t>(rbuf_.data() + k * slot, msgs[k].msg_len));
      }
      if (static_cast<std::size_t>(n) < batch) break;
    }
    in_io_ = false;
    if (close_pending_ && !quic_.over()) {
      close_pending_ = false;
      quic_.close_application(close_code_);
    }
    if constexpr (requires { quic_.app().on_streams_available(quic_); })
      if (!had_streams && !quic_.over() && quic_.handshake_completed() && ngtcp2_conn_get_streams_bidi_left(quic_.get()) > 0)
        quic_.app().on_streams_available(quic_);
  }

  void on_finished() {
    finished_ = true;
    std::error_code ignored;
    socket_.close(ignored);  // a pending wait completes (aborted) and releases
    maybe_release();
  }
  void maybe_release() {
    if (!finished_ || waiting_ || release_done_) return;
    release_done_ = true;
    if (released_) released_(released_user_, this);  // may destroy *this: nothing after this line
  }

  asio::ip::udp::socket socket_;
  path_storage path_;
  udp_sender sender_;
  client_socket_stats stats_{};
  released_fn released_ = nullptr;
  void* released_user_ = nullptr;
  std::uint64_t close_code_ = 0x100;
  bool started_ = false, in_io_ = false, close_pending_ = false, waiting_ = false, finished_ = false, release_done_ = false;
  bool handshake_seen_ = false, refused_ = false;
  std::array<std::uint8_t, 16 * 2048> rbuf_{};
  quic_type quic_;  // last: its App's hooks may use the members above while it is destroyed
};

// --- stream operations on a connection (for an application protocol, found by ADL) ---------------

/// A new bidirectional stream, or client_error::no_stream when the peer allows none now.
template <class App>
result<std::int64_t> open_bidi_stream(connection<App>& c, void* stream_user_data) {
  if (c.over() || !c.get()) return failure(make_error_code(client_error::closed));
  std::int64_t id = -1;
  const int rv = ngtcp2_conn_open_bidi_stream(c.get(), &id, stream_user_data);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) return failure(make_error_code(client_error::no_stream));
  if (rv != 0) return failure(make_error_code(client_error::transport_failed));
  return id;
}
template <class App>
result<std::int64_t> open_uni_stream(connection<App>& c) {
  if (c.over() || !c.get()) return failure(make_error_code(client_error::closed));
  std::int64_t id = -1;
  if (ngtcp2_conn_open_uni_stream(c.get(), &id, nullptr) != 0) return failure(make_error_code(client_error::no_stream));
  return id;
}
template <class App>
std::uint64_t streams_bidi_left(connection<App>& c) noexcept {
  return c.over() || !c.get() ? 0 : ngtcp2_conn_get_streams_bidi_left(c.get());
}
/// `n` more bytes of credit on stream `id` and on the connection.
template <class App>
void extend_credit(connection<App>& c, std::int64_t id, std::size_t n) {
  c.extend(id, n);
}
template <class App>
void shutdown_stream(connection<App>& c, std::int64_t id, std::uint64_t app_error_code) {
  if (!c.over() && c.get()) ngtcp2_conn_shutdown_stream(c.get(), id, app_error_code);
}
template <class App>
void shutdown_stream_read(connection<App>& c, std::int64_t id, std::uint64_t app_error_code) {
  if (!c.over() && c.get()) ngtcp2_conn_shutdown_stream_read(c.get(), id, app_error_code);
}
template <class App>
void shutdown_stream_write(connection<App>& c, std::int64_t id, std::uint64_t app_error_code) {
  if (!c.over() && c.get()) ngtcp2_conn_shutdown_stream_write(c.get(), id, app_error_code);
}
/// Sends what the application queued, in one write pass after the current handler.
template <class App>
void schedule_write(connection<App>& c) {
  c.schedule_write();
}
/// Why the connection ended, as a client error (from App::on_closed).
template <class App>
std::error_code end_error(connection<App>& c) noexcept {
  return client_end_error(c.reason(), c.handshake_completed());
}

}  // namespace rproxy::net::quic
