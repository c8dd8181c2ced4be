// rproxy/net/quic/client_connection.hpp: one QUIC client connection on an Asio UDP socket
// (ngtcp2 0.12 + its GnuTLS crypto glue). It knows streams, not HTTP: an application protocol
// (`App`, e.g. codec::h3::client_session) reads and writes stream bytes through the hooks below,
// each called with the connection so the protocol can open streams and give flow-control
// credit. Single-threaded: every call on one connection comes from its executor's thread.
//
//     client_connection<App> c{ex, tls, App{...}};        // heap-held: its address must not move
//     if (auto ec = c.connect(remote, "backend.example")) ...
//     // App::on_handshake_completed(c) says requests may go; App::on_closed(c, ec) that it ended;
//     // App::on_released(c) comes last, when no handler refers to c: the owner may delete it there.
//
// App's hooks (Conn is client_connection<App>):
//   int  on_application_keys(Conn&)                      1-RTT keys: open/bind control streams
//   void on_handshake_completed(Conn&)
//   int  recv_stream_data(Conn&, uint32_t flags, int64_t sid, const uint8_t*, size_t)
//   int  acked_stream_data(Conn&, int64_t sid, uint64_t n)
//   int  stream_close(Conn&, uint32_t flags, int64_t sid, uint64_t app_error_code)
//   int  stream_reset(Conn&, int64_t sid, uint64_t app_error_code)        (also on STOP_SENDING)
//   int  extend_max_stream_data(Conn&, int64_t sid)
//   void extend_max_local_streams_bidi(Conn&)
//   ngtcp2_ssize write_stream(Conn&, int64_t& sid, int& fin, ngtcp2_vec*, size_t)  pull bytes to send
//   int  add_write_offset(Conn&, int64_t sid, size_t n)
//   void block_stream(Conn&, int64_t sid); void shutdown_stream_write(Conn&, int64_t sid)
//   void on_closed(Conn&, std::error_code); void on_released(Conn&)
//
// Bounded: a handshake and an idle timeout (the connection ends on either), stream and
// connection flow-control windows, the number of streams the server may open; datagrams larger
// than a UDP payload are dropped by the kernel's buffer size. Packets go out in batches with
// sendmmsg(2) and come in with recvmmsg(2).
#pragma once

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/ip/udp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <rproxy/net/quic/client_error.hpp>
#include <rproxy/net/quic/client_tls.hpp>

namespace rproxy::net::quic {

struct client_options {
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(10);
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(30);
  std::uint64_t stream_window = 1024 * 1024;        ///< bytes the server may send on one stream ahead of our credit
  std::uint64_t connection_window = 8 * 1024 * 1024; ///< the same for the whole connection
  std::uint64_t max_server_uni_streams = 16;         ///< HTTP/3 needs 3 (control, QPACK encoder, decoder)
};

/// Counters of one connection (the owner sums them for metrics).
struct client_stats {
  std::uint64_t packets_sent = 0;
  std::uint64_t packets_received = 0;
  std::uint64_t packets_dropped = 0;  ///< not sent: the socket buffer was full (QUIC resends them)
  std::uint64_t send_calls = 0;
  std::uint64_t recv_calls = 0;
};

/// Now, on the clock every ngtcp2 timestamp of this client uses (nanoseconds, monotonic).
inline ngtcp2_tstamp client_now() noexcept {
  return static_cast<ngtcp2_tstamp>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

template <class App>
class client_connection {
public:
  client_connection(asio::any_io_executor ex, const client_tls_context& tls, App app, client_options o = {})
      : socket_(ex), timer_(ex), tls_(&tls), app_(std::move(app)), opts_(o) {
    ref_.get_conn = [](ngtcp2_crypto_conn_ref* r) { return static_cast<client_connection*>(r->user_data)->conn_; };
    ref_.user_data = this;
  }
  client_connection(const client_connection&) = delete;
  client_connection& operator=(const client_connection&) = delete;
  ~client_connection() {
    if (conn_) ngtcp2_conn_del(conn_);
    if (session_) gnutls_deinit(session_);
  }

  App& app() noexcept { return app_; }
  const App& app() const noexcept { return app_; }
  ngtcp2_conn* native() noexcept { return conn_; }
  const client_stats& stats() const noexcept { return stats_; }
  bool handshake_completed() const noexcept { return conn_ && ngtcp2_conn_get_handshake_completed(conn_); }
  bool closed() const noexcept { return closed_; }
  const asio::ip::udp::endpoint& remote() const noexcept { return remote_; }

  /// Opens the UDP socket and sends the first Initial. `server_name` is SNI and the name the
  /// certificate must match. An error here means nothing was sent and no hook will run; after
  /// success every end (a failed handshake too) comes through App::on_closed.
  std::error_code connect(const asio::ip::udp::endpoint& remote, std::string server_name) {
    std::error_code ec;
    remote_ = remote;
    socket_.open(remote.protocol(), ec);
    if (!ec) socket_.non_blocking(true, ec);
    if (!ec) socket_.connect(remote, ec);
    if (!ec) local_ = socket_.local_endpoint(ec);
    if (ec) return make_error_code(client_error::socket_failed);
    name_ = std::move(server_name);
    auto s = tls_->new_session(name_, &ref_);
    if (!s) return s.error();
    session_ = *s;

    ngtcp2_cid dcid, scid;
    dcid.datalen = 18;
    scid.datalen = 17;
    random(dcid.data, dcid.datalen);
    random(scid.data, scid.datalen);
    set_path();
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = client_now();
    settings.handshake_timeout = static_cast<ngtcp2_duration>(opts_.handshake_timeout.count());
    settings.max_stream_window = opts_.stream_window * 4;
    settings.max_window = opts_.connection_window * 2;
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_stream_data_bidi_local = opts_.stream_window;
    params.initial_max_stream_data_uni = opts_.stream_window;
    params.initial_max_data = opts_.connection_window;
    params.initial_max_streams_bidi = 0;
    params.initial_max_streams_uni = opts_.max_server_uni_streams;
    params.max_idle_timeout = static_cast<ngtcp2_duration>(opts_.idle_timeout.count());
    params.max_udp_payload_size = rslot;  // what one receive slot holds
    const auto cb = callbacks();
    if (ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path_, NGTCP2_PROTO_VER_V1, &cb, &settings, &params, nullptr, this) != 0) {
      conn_ = nullptr;
      return make_error_code(client_error::tls_setup);
    }
    ngtcp2_conn_set_tls_native_handle(conn_, session_);
    started_ = true;
    write();
    if (!closed_) wait_read();
    return {};
  }

  // --- for App --------------------------------------------------------------------------------

  /// A new bidirectional stream, or client_error::no_stream when the server allows none now
  /// (App::extend_max_local_streams_bidi says when it does again).
  result<std::int64_t> open_bidi_stream(void* stream_user_data = nullptr) {
    if (closed_ || !conn_) return failure(make_error_code(client_error::closed));
    std::int64_t sid = -1;
    const int rv = ngtcp2_conn_open_bidi_stream(conn_, &sid, stream_user_data);
    if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) return failure(make_error_code(client_error::no_stream));
    if (rv != 0) return failure(make_error_code(client_error::transport_failed));
    return sid;
  }
  result<std::int64_t> open_uni_stream() {
    if (closed_ || !conn_) return failure(make_error_code(client_error::closed));
    std::int64_t sid = -1;
    if (ngtcp2_conn_open_uni_stream(conn_, &sid, nullptr) != 0) return failure(make_error_code(client_error::no_stream));
    return sid;
  }
  std::uint64_t streams_bidi_left() const noexcept { return conn_ && !closed_ ? ngtcp2_conn_get_streams_bidi_left(conn_) : 0; }

  /// Gives the server `n` more bytes of credit on `sid` and on the connection (bytes consumed).
  void extend_credit(std::int64_t sid, std::size_t n) {
    if (!conn_ || closed_ || n == 0) return;
    ngtcp2_conn_extend_max_stream_offset(conn_, sid, n);
    ngtcp2_conn_extend_max_offset(conn_, n);
  }
  /// Connection-level credit only (bytes of a stream that is gone).
  void extend_connection_credit(std::size_t n) {
    if (conn_ && !closed_ && n) ngtcp2_conn_extend_max_offset(conn_, n);
  }
  void shutdown_stream(std::int64_t sid, std::uint64_t app_error_code) {
    if (conn_ && !closed_) ngtcp2_conn_shutdown_stream(conn_, sid, app_error_code);
  }
  void shutdown_stream_read(std::int64_t sid, std::uint64_t app_error_code) {
    if (conn_ && !closed_) ngtcp2_conn_shutdown_stream_read(conn_, sid, app_error_code);
  }
  void shutdown_stream_write(std::int64_t sid, std::uint64_t app_error_code) {
    if (conn_ && !closed_) ngtcp2_conn_shutdown_stream_write(conn_, sid, app_error_code);
  }

  /// Sends what the App has queued, once, after the current handler (many submissions in one
  /// turn of the loop go out in one batch).
  void schedule_flush() {
    if (closed_ || !started_) return;
    if (in_io_) {
      need_write_ = true;
      return;
    }
    if (flush_posted_) return;
    flush_posted_ = true;
    ++pending_;
    asio::post(socket_.get_executor(), [this] {
      flush_posted_ = false;
      --pending_;
      if (!closed_) write();
      maybe_release();
    });
  }

  /// Ends the connection: a CONNECTION_CLOSE with `app_error_code` (HTTP/3: H3_NO_ERROR 0x100)
  /// once the handshake is done, then on_closed(closed) and on_released.
  void close(std::uint64_t app_error_code = 0x100) {
    if (closed_) return;
    if (in_io_) {  // called from a hook inside ngtcp2: close once ngtcp2 has returned
      close_code_ = app_error_code;
      close_pending_ = true;
      return;
    }
    if (conn_ && started_ && !ngtcp2_conn_is_in_closing_period(conn_) && !ngtcp2_conn_is_in_draining_period(conn_)) {
      ngtcp2_connection_close_error ccerr;
      ngtcp2_connection_close_error_default(&ccerr);
      if (ngtcp2_conn_get_handshake_completed(conn_)) ngtcp2_connection_close_error_set_application_error(&ccerr, app_error_code, nullptr, 0);
      send_close(ccerr);
    }
    finish(make_error_code(client_error::closed));
  }

private:
  static constexpr std::size_t batch = 16;
  static constexpr std::size_t slot = 1500;

  static void random(std::uint8_t* p, std::size_t n) noexcept { (void)gnutls_rnd(GNUTLS_RND_RANDOM, p, n); }

  void set_path() {
    path_.local.addr = const_cast<ngtcp2_sockaddr*>(reinterpret_cast<const ngtcp2_sockaddr*>(local_.data()));
    path_.local.addrlen = static_cast<ngtcp2_socklen>(local_.size());
    path_.remote.addr = const_cast<ngtcp2_sockaddr*>(reinterpret_cast<const ngtcp2_sockaddr*>(remote_.data()));
    path_.remote.addrlen = static_cast<ngtcp2_socklen>(remote_.size());
    path_.user_data = nullptr;
  }

  static client_connection& self(void* ud) noexcept { return *static_cast<client_connection*>(ud); }

  static ngtcp2_callbacks callbacks() {
    ngtcp2_callbacks cb{};
    cb.client_initial = ngtcp2_crypto_client_initial_cb;
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.rand = [](std::uint8_t* dest, std::size_t n, const ngtcp2_rand_ctx*) { random(dest, n); };
    cb.get_new_connection_id = [](ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t cidlen, void*) {
      cid->datalen = cidlen;
      random(cid->data, cidlen);
      random(token, NGTCP2_STATELESS_RESET_TOKENLEN);
      return 0;
    };
    cb.recv_rx_key = [](ngtcp2_conn*, ngtcp2_crypto_level level, void* ud) {
      if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION) return 0;
      auto& c = self(ud);
      return c.app_.on_application_keys(c) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.handshake_completed = [](ngtcp2_conn*, void* ud) {
      auto& c = self(ud);
      c.app_.on_handshake_completed(c);
      return 0;
    };
    cb.recv_stream_data = [](ngtcp2_conn*, std::uint32_t flags, std::int64_t sid, std::uint64_t, const std::uint8_t* data,
                             std::size_t len, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.recv_stream_data(c, flags, sid, data, len) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.acked_stream_data_offset = [](ngtcp2_conn*, std::int64_t sid, std::uint64_t, std::uint64_t n, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.acked_stream_data(c, sid, n) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.stream_close = [](ngtcp2_conn*, std::uint32_t flags, std::int64_t sid, std::uint64_t code, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.stream_close(c, flags, sid, code) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.stream_reset = [](ngtcp2_conn*, std::int64_t sid, std::uint64_t, std::uint64_t code, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.stream_reset(c, sid, code) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.stream_stop_sending = [](ngtcp2_conn*, std::int64_t sid, std::uint64_t code, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.stream_reset(c, sid, code) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.extend_max_stream_data = [](ngtcp2_conn*, std::int64_t sid, std::uint64_t, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.extend_max_stream_data(c, sid) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.extend_max_local_streams_bidi = [](ngtcp2_conn*, std::uint64_t, void* ud) {
      auto& c = self(ud);
      c.app_.extend_max_local_streams_bidi(c);
      return 0;
    };
    return cb;
  }

  // --- reading ----------------------------------------------------------------------------------

  void wait_read() {
    ++pending_;
    socket_.async_wait(asio::ip::udp::socket::wait_read, [this](std::error_code ec) {
      --pending_;
      if (!ec && !closed_) {
        on_readable();
        if (!closed_) wait_read();
      }
      maybe_release();
    });
  }

  void on_readable() {
    std::array<mmsghdr, batch> msgs{};
    std::array<iovec, batch> iov{};
    in_io_ = true;
    for (int rounds = 0; rounds < 16 && !closed_; ++rounds) {
      for (std::size_t i = 0; i < batch; ++i) {
        iov[i] = {rbuf_.data() + i * rslot, rslot};
        msgs[i] = {};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int n = ::recvmmsg(socket_.native_handle(), msgs.data(), batch, MSG_DONTWAIT, nullptr);
      ++stats_.recv_calls;
      if (n <= 0) break;
      const auto ts = client_now();
      for (int i = 0; i < n && !closed_; ++i) {
        ++stats_.packets_received;
        ngtcp2_pkt_info pi{};
        const int rv = ngtcp2_conn_read_pkt(conn_, &path_, &pi, rbuf_.data() + static_cast<std::size_t>(i) * rslot, msgs[static_cast<std::size_t>(i)].msg_len, ts);
        if (rv != 0) on_read_error(rv);
      }
      if (static_cast<std::size_t>(n) < batch) break;
    }
    in_io_ = false;
    need_write_ = false;
    if (!closed_) write();
  }

  /// Runs a close() asked for from inside ngtcp2 (after the packets already queued).
  void close_if_asked() {
    if (close_pending_ && !closed_ && !in_io_) {
      close_pending_ = false;
      close(close_code_);
    }
  }

  void on_read_error(int rv) {
    switch (rv) {
      case NGTCP2_ERR_DRAINING:  // the server sent CONNECTION_CLOSE: mid-handshake, it refused us
        finish(make_error_code(ngtcp2_conn_get_handshake_completed(conn_) ? client_error::peer_closed : client_error::handshake_failed));
        return;
      case NGTCP2_ERR_DROP_CONN: finish(make_error_code(client_error::transport_failed)); return;
      case NGTCP2_ERR_CRYPTO: {
        ngtcp2_connection_close_error ccerr;
        ngtcp2_connection_close_error_default(&ccerr);
        ngtcp2_connection_close_error_set_transport_error_tls_alert(&ccerr, ngtcp2_conn_get_tls_alert(conn_), nullptr, 0);
        send_close(ccerr);
        finish(make_error_code(client_error::handshake_failed));
        return;
      }
      default: {
        ngtcp2_connection_close_error ccerr;
        ngtcp2_connection_close_error_default(&ccerr);
        ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, rv, nullptr, 0);
        send_close(ccerr);
        finish(make_error_code(ngtcp2_conn_get_handshake_completed(conn_) ? client_error::transport_failed : client_error::handshake_failed));
      }
    }
  }

  // --- writing ----------------------------------------------------------------------------------

  /// The write loop: packets (stream data pulled from the App, ACKs, retransmissions) until
  /// ngtcp2 has nothing more or pacing/congestion says wait; sent in batches.
  void write() {
    if (closed_ || !conn_) return;
    in_io_ = true;
    std::size_t queued = 0;
    const auto ts = client_now();
    const std::size_t max_pkt = std::min<std::size_t>(slot, ngtcp2_conn_get_path_max_tx_udp_payload_size(conn_));
    for (;;) {
      std::array<ngtcp2_vec, 16> vec{};
      std::int64_t sid = -1;
      int fin = 0;
      ngtcp2_ssize nvec = 0;
      if (ngtcp2_conn_get_max_data_left(conn_) > 0) {
        nvec = app_.write_stream(*this, sid, fin, vec.data(), vec.size());
        if (nvec < 0) {
          fail_transport(NGTCP2_ERR_CALLBACK_FAILURE);
          break;
        }
      }
      std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
      if (fin) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
      ngtcp2_ssize ndatalen = -1;
      ngtcp2_pkt_info pi{};
      auto* out = wbuf_.data() + queued * slot;
      const auto n = ngtcp2_conn_writev_stream(conn_, nullptr, &pi, out, max_pkt, &ndatalen, flags, sid, vec.data(),
                                               static_cast<std::size_t>(nvec), ts);
      if (n < 0) {
        if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
          app_.block_stream(*this, sid);
          continue;
        }
        if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
          app_.shutdown_stream_write(*this, sid);
          continue;
        }
        if (n == NGTCP2_ERR_WRITE_MORE) {
          if (app_.add_write_offset(*this, sid, static_cast<std::size_t>(ndatalen)) != 0) {
            fail_transport(NGTCP2_ERR_CALLBACK_FAILURE);
            break;
          }
          continue;
        }
        fail_transport(static_cast<int>(n));
        break;
      }
      if (ndatalen >= 0 && sid >= 0 && app_.add_write_offset(*this, sid, static_cast<std::size_t>(ndatalen)) != 0) {
        fail_transport(NGTCP2_ERR_CALLBACK_FAILURE);
        break;
      }
      if (n == 0) break;
      lens_[queued++] = static_cast<std::size_t>(n);
      if (queued == batch) {
        send_batch(queued);
        queued = 0;
      }
    }
    if (queued) send_batch(queued);
    // Pacing before the first RTT sample uses a 333 ms default, which would hold the handshake's
    // last flight and the first requests back by tens of ms: pace only once the handshake is done.
    if (!closed_ && ngtcp2_conn_get_handshake_completed(conn_)) ngtcp2_conn_update_pkt_tx_time(conn_, ts);
    in_io_ = false;
    if (close_pending_) return close_if_asked();
    if (!closed_) arm_timer();
  }

  void send_batch(std::size_t count) {
    std::array<mmsghdr, batch> msgs{};
    std::array<iovec, batch> iov{};
    for (std::size_t i = 0; i < count; ++i) {
      iov[i] = {wbuf_.data() + i * slot, lens_[i]};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    std::size_t done = 0;
    while (done < count) {
      const int n = ::sendmmsg(socket_.native_handle(), msgs.data() + done, static_cast<unsigned>(count - done), MSG_DONTWAIT);
      ++stats_.send_calls;
      if (n < 0) {
        if (errno == EINTR) continue;
        // A full socket buffer (or an ICMP error queued on the socket): these packets are lost
        // to QUIC, which resends what mattered.
        stats_.packets_dropped += count - done;
        break;
      }
      done += static_cast<std::size_t>(n);
      stats_.packets_sent += static_cast<std::size_t>(n);
    }
  }

  void send_close(const ngtcp2_connection_close_error& ccerr) {
    if (!conn_) return;
    ngtcp2_pkt_info pi{};
    const auto n = ngtcp2_conn_write_connection_close(conn_, nullptr, &pi, wbuf_.data(), slot, &ccerr, client_now());
    if (n > 0) {
      lens_[0] = static_cast<std::size_t>(n);
      send_batch(1);
    }
  }

  void fail_transport(int liberr) {
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_default(&ccerr);
    ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, liberr, nullptr, 0);
    send_close(ccerr);
    finish(make_error_code(client_error::transport_failed));
  }

  // --- timers -----------------------------------------------------------------------------------

  void arm_timer() {
    if (closed_ || !conn_) return;
    const auto expiry = ngtcp2_conn_get_expiry(conn_);
    if (expiry == UINT64_MAX) return;
    if (timer_armed_ && expiry >= timer_at_) return;  // the armed wait comes first; it re-checks
    timer_at_ = expiry;
    const auto now = client_now();
    timer_.expires_after(std::chrono::nanoseconds(expiry > now ? expiry - now : 0));
    if (timer_armed_) return;  // expires_after cancelled the old wait: its handler re-arms
    timer_armed_ = true;
    ++pending_;
    timer_.async_wait([this](std::error_code ec) {
      --pending_;
      timer_armed_ = false;
      if (!closed_) on_timer(ec);
      maybe_release();
    });
  }

  void on_timer(std::error_code ec) {
    if (ec) {  // re-armed earlier: wait for the new time
      timer_armed_ = false;
      timer_at_ = UINT64_MAX;
      arm_timer();
      return;
    }
    const auto now = client_now();
    timer_at_ = UINT64_MAX;
    if (ngtcp2_conn_get_expiry(conn_) <= now) {
      const int rv = ngtcp2_conn_handle_expiry(conn_, now);
      if (rv == NGTCP2_ERR_IDLE_CLOSE) return finish(make_error_code(client_error::idle_timeout));
      if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) return finish(make_error_code(client_error::handshake_timeout));
      if (rv != 0) return fail_transport(rv);
    }
    write();
  }

  // --- the end ----------------------------------------------------------------------------------

  void finish(std::error_code ec) {
    if (closed_) return;
    closed_ = true;
    end_error_ = ec;
    std::error_code ignored;
    socket_.close(ignored);
    timer_.cancel();
    app_.on_closed(*this, ec);
    if (pending_ == 0 && !released_) {
      // Not from inside a handler (connect() or the App calling close()): release after this turn.
      ++pending_;
      asio::post(socket_.get_executor(), [this] {
        --pending_;
        maybe_release();
      });
    }
  }

  void maybe_release() {
    if (closed_ && pending_ == 0 && !released_) {
      released_ = true;
      app_.on_released(*this);  // may delete *this: nothing after this line
    }
  }

  static constexpr std::size_t rslot = 2048;

  asio::ip::udp::socket socket_;
  asio::steady_timer timer_;
  const client_tls_context* tls_;
  App app_;
  client_options opts_;
  client_stats stats_{};
  asio::ip::udp::endpoint remote_, local_;
  ngtcp2_path path_{};
  ngtcp2_crypto_conn_ref ref_{};
  std::string name_;
  gnutls_session_t session_ = nullptr;
  ngtcp2_conn* conn_ = nullptr;
  std::error_code end_error_;
  int pending_ = 0;
  ngtcp2_tstamp timer_at_ = UINT64_MAX;
  bool timer_armed_ = false;
  bool started_ = false;
  bool closed_ = false;
  bool released_ = false;
  bool in_io_ = false;
  bool need_write_ = false;
  bool flush_posted_ = false;
  bool close_pending_ = false;
  std::uint64_t close_code_ = 0x100;
  std::array<std::size_t, batch> lens_{};
  std::array<std::uint8_t, batch * slot> wbuf_{};
  std::array<std::uint8_t, batch * rslot> rbuf_{};
};

}  // namespace rproxy::net::quic
