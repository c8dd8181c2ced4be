// rproxy/net/quic/connection.hpp: one QUIC connection (ngtcp2 + GnuTLS) on one worker's
// executor, server or client, with the application above QUIC's streams plugged in as a type.
//
//     struct my_app {                               // the stream_app contract (HTTP/3: codec/h3)
//       template <class C> int on_ready(C&);                                   // 1-RTT keys: open control streams
//       template <class C> int on_stream_data(C&, std::int64_t id, std::span<const std::uint8_t>, bool fin);
//       template <class C> int on_acked(C&, std::int64_t id, std::uint64_t n);
//       template <class C> int on_stream_close(C&, std::int64_t id, std::uint64_t code, bool app_code);
//       template <class C> int on_stream_reset(C&, std::int64_t id, std::uint64_t code);     // RESET_STREAM / STOP_SENDING
//       template <class C> int on_extend_stream(C&, std::int64_t id);                        // peer gave stream credit
//       template <class C> int on_extend_streams_bidi(C&, std::uint64_t max);
//       // the write loop asks for data, then reports what QUIC took:
//       std::ptrdiff_t writev(std::int64_t& id, bool& fin, std::span<ngtcp2_vec>);        // <0: fatal
//       int wrote(std::int64_t id, std::size_t n);   void blocked(std::int64_t id);   void shut_wr(std::int64_t id);
//       template <class C> void on_closed(C&);  // the transport is gone: end the streams, then c.app_done()
//     };
//     connection<my_app> c(ex, hooks, app_args...);   c.init_server(...) / c.init_client(...);
//     c.on_packet(path, bytes);                   // from the socket (the endpoint routes by CID)
//     c.schedule_write();                         // the app queued data: one write pass this turn
//
// The owner (the server endpoint, or a client's socket) gives `connection_hooks`: how packets
// leave, how connection IDs are made and (server) routed, and what to do once the connection is
// finished. What this file does for both sides:
//   - the ngtcp2 callbacks: the crypto ones from ngtcp2_crypto, random bytes from GnuTLS, the
//     stream ones forwarded to the app;
//   - the write loop (ngtcp2 docs + the pitfalls in docs/h3-gateway.md): stream data from the
//     app with NGTCP2_WRITE_STREAM_FLAG_MORE, packets of one size batched for GSO, pacing
//     (update_pkt_tx_time) only once the handshake is done: before the first RTT sample ngtcp2
//     paces at a 333 ms RTT and would hold the first request ~25 ms;
//   - one steady_timer per connection on ngtcp2's expiry (loss recovery, ACK delay, pacing,
//     idle and handshake timeouts);
//   - the end: CONNECTION_CLOSE (ours: an error or an application close), the draining period
//     (theirs), or a silent drop (idle, handshake timeout); then app.on_closed, and once the app
//     is done and no handler of ours is pending, hooks.finished: the owner destroys it.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/net/quic/cid.hpp>
#include <rproxy/net/quic/clock.hpp>
#include <rproxy/net/quic/tls.hpp>
#include <rproxy/net/quic/transport_settings.hpp>
#include <rproxy/net/quic/udp.hpp>

namespace rproxy::net::quic {

/// What a connection needs from its owner (function pointers over the owner: no allocation,
/// no virtual call).
struct connection_hooks {
  void* owner = nullptr;
  /// Sends `data` on `path` (several packets of `segment` bytes when segment > 0).
  void (*send)(void* owner, const ngtcp2_path& path, std::span<const std::uint8_t> data, std::size_t segment) = nullptr;
  /// Makes a new connection ID of `len` bytes and its stateless-reset token (16 bytes) for
  /// the connection `conn`; a server routes it to `conn` from now on. Non-zero: failed.
  int (*new_cid)(void* owner, void* conn, ngtcp2_cid* cid, std::uint8_t* token, std::size_t len) = nullptr;
  /// The connection retired `cid` (a server stops routing it).
  void (*cid_retired)(void* owner, void* conn, const ngtcp2_cid& cid) = nullptr;
  /// The connection is over and nothing of it runs: destroy it (from a fresh handler).
  void (*finished)(void* owner, void* conn) = nullptr;
  /// The handshake completed (metrics).
  void (*handshake_done)(void* owner, void* conn) = nullptr;
  /// `n` (> 0) packets that carried data of a stream now closing were declared lost (metrics).
  /// ngtcp2 0.12 has no connection-wide loss count, only one per stream
  /// (ngtcp2_conn_get_stream_loss_count), read here as each stream closes: a lost packet with
  /// frames of two streams counts twice, and losses of packets with no stream data (handshake,
  /// ACK-only) or on streams still open at the end are not seen.
  void (*packets_lost)(void* owner, void* conn, std::uint64_t n) = nullptr;
};

/// Why a connection ended (for logs and metrics).
enum class close_reason : std::uint8_t { none, idle, handshake_timeout, peer_closed, local_close, error };

template <class App>
class connection {
public:
  template <class... Args>
  connection(const asio::any_io_executor& ex, connection_hooks hooks, Args&&... args)
      : ex_(ex), hooks_(hooks), timer_(ex), app_(std::forward<Args>(args)...) {
    ref_.get_conn = [](ngtcp2_crypto_conn_ref* r) { return static_cast<connection*>(r->user_data)->conn_.get(); };
    ref_.user_data = this;
  }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // --- setup ---------------------------------------------------------------------------------
  /// A server connection for a client's first Initial `hd` (from ngtcp2_accept) on `path`:
  /// `scid` ours, `odcid` the DCID of the client's very first Initial (hd.dcid, or the one a
  /// Retry token carried), `retry_scid` set when the client came back after our Retry.
  /// `reset_token`: the stateless-reset token of `scid`. Errors are logged by the caller.
  std::error_code init_server(const ngtcp2_pkt_hd& hd, const ngtcp2_path& path, const connection_id& scid, const connection_id& odcid,
                              const connection_id* retry_scid, const std::array<std::uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN>& reset_token,
                              const transport_settings& ts, const tls_credentials& creds) {
    path_.assign(path);
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    apply(settings, ts);
    settings.token = hd.token;  // (an address-validated client: its Retry token)
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    apply(params, ts);
    params.original_dcid = odcid.to_ngtcp2();
    if (retry_scid != nullptr) {
      params.retry_scid = retry_scid->to_ngtcp2();
      params.retry_scid_present = 1;
    }
    params.stateless_reset_token_present = 1;
    std::copy(reset_token.begin(), reset_token.end(), params.stateless_reset_token);
    const auto s = scid.to_ngtcp2();
    ngtcp2_conn* raw = nullptr;
    auto cb = callbacks(true);
    if (int rv = ngtcp2_conn_server_new(&raw, &hd.scid, &s, &path_.path, hd.version, &cb, &settings, &params, nullptr, this); rv != 0)
      return make_error_code(std::errc::protocol_error);
    conn_.reset(raw);
    auto tls = make_server_session(creds, &ref_, {"h3"}, ts.early_data);
    if (!tls) return make_error_code(std::errc::protocol_error);
    tls_ = std::move(*tls);
    ngtcp2_conn_set_tls_native_handle(raw, tls_.get());
    return {};
  }

  /// A client connection to `path.remote` (a random DCID and our `scid`), verifying the server
  /// as `creds` say, SNI `server_name`.
  std::error_code init_client(const ngtcp2_path& path, const connection_id& scid, const transport_settings& ts, const tls_credentials& creds,
                              std::string_view server_name, std::initializer_list<std::string_view> alpn = {"h3"}) {
    path_.assign(path);
    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    apply(settings, ts);
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    apply(params, ts);
    connection_id dcid;
    dcid.size = cid_length;
    random_bytes(std::span(dcid.bytes).first(cid_length));
    const auto d = dcid.to_ngtcp2();
    const auto s = scid.to_ngtcp2();
    ngtcp2_conn* raw = nullptr;
    auto cb = callbacks(false);
    if (int rv = ngtcp2_conn_client_new(&raw, &d, &s, &path_.path, NGTCP2_PROTO_VER_V1, &cb, &settings, &params, nullptr, this); rv != 0)
      return make_error_code(std::errc::protocol_error);
    conn_.reset(raw);
    auto tls = make_client_session(creds, &ref_, server_name, alpn);
    if (!tls) return make_error_code(std::errc::protocol_error);
    tls_ = std::move(*tls);
    ngtcp2_conn_set_tls_native_handle(raw, tls_.get());
    return {};
  }

  // --- I/O -----------------------------------------------------------------------------------
  /// A datagram for this connection arrived on `path`.
  void on_packet(const ngtcp2_path& path, std::span<const std::uint8_t> data) {
    if (over_ || !conn_) return;
    if (closing_) {  // in the closing period: answer with our CONNECTION_CLOSE again
      if (!close_packet_.empty()) hooks_.send(hooks_.owner, path_.path, close_packet_, 0);
      return;
    }
    if (draining_) return;
    ngtcp2_pkt_info pi{};
    const int rv = ngtcp2_conn_read_pkt(conn_.get(), &path, &pi, data.data(), data.size(), now());
    if (rv != 0) return on_error(rv);
    write();
  }

  /// One write pass later this turn (coalesces the app's calls).
  void schedule_write() {
    if (write_posted_ || over_) return;
    write_posted_ = true;
    asio::post(ex_, [this] {
      write_posted_ = false;
      if (!over_) write();
      maybe_finish();
    });
  }

  /// Writes what ngtcp2 and the app have to send now, then re-arms the timer.
  void write() {
    if (over_ || closing_ || draining_ || !conn_) return;
    auto* c = conn_.get();
    const auto ts = now();
    const std::size_t max_pkt = ngtcp2_conn_get_max_tx_udp_payload_size(c);
    const std::size_t batch = 10;
    if (txbuf_.size() < max_pkt * batch) txbuf_.resize(max_pkt * batch);
    std::size_t used = 0, segment = 0, packets = 0;
    auto flush = [&] {
      if (used > 0) hooks_.send(hooks_.owner, sent_path_.path, std::span<const std::uint8_t>(txbuf_.data(), used), packets > 1 ? segment : 0);
      used = segment = packets = 0;
    };
    path_storage ps;
    std::array<ngtcp2_vec, 16> vecs;
    for (;;) {
      std::int64_t sid = -1;
      bool fin = false;
      std::ptrdiff_t nvec = 0;
      if (ready_ && ngtcp2_conn_get_max_data_left(c) > 0) {
        nvec = app_.writev(sid, fin, std::span<ngtcp2_vec>(vecs));
        if (nvec < 0) return close_with(NGTCP2_ERR_CALLBACK_FAILURE, true);
      }
      std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
      if (fin) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
      ngtcp2_ssize ndatalen = -1;
      ngtcp2_pkt_info pi{};
      const auto n = ngtcp2_conn_writev_stream(c, &ps.path, &pi, txbuf_.data() + used, max_pkt, &ndatalen, flags, sid, vecs.data(),
                                               static_cast<std::size_t>(nvec), ts);
      if (n < 0) {
        switch (n) {
          case NGTCP2_ERR_STREAM_DATA_BLOCKED: app_.blocked(sid); continue;
          case NGTCP2_ERR_STREAM_SHUT_WR: app_.shut_wr(sid); continue;
          case NGTCP2_ERR_WRITE_MORE:
            if (app_.wrote(sid, static_cast<std::size_t>(ndatalen)) != 0) return close_with(NGTCP2_ERR_CALLBACK_FAILURE, true);
            continue;
          default: flush(); return close_with(static_cast<int>(n), false);
        }
      }
      if (ndatalen >= 0 && sid >= 0)
        if (app_.wrote(sid, static_cast<std::size_t>(ndatalen)) != 0) return close_with(NGTCP2_ERR_CALLBACK_FAILURE, true);
      if (n == 0) break;
      // A packet: batch it with the previous ones while they are of one size on one path (GSO).
      const auto len = static_cast<std::size_t>(n);
      if (packets > 0 && (len > segment || !same_remote(ps.path.remote, sent_path_.path.remote))) {
        const auto at = used;  // this packet: send the batch before it, then move it to the front
        flush();
        std::memmove(txbuf_.data(), txbuf_.data() + at, len);
      }
      if (packets == 0) {
        segment = len;
        sent_path_.assign(ps.path);
      }
      used += len;
      ++packets;
      if (len < segment || packets >= batch) flush();  // a short packet ends a GSO batch
    }
    flush();
    if (ngtcp2_conn_get_handshake_completed(c)) ngtcp2_conn_update_pkt_tx_time(c, ts);
    arm_timer();
  }

  /// Closes with an application error (HTTP/3: H3_NO_ERROR on a graceful end) and enters the
  /// closing period. `reason`: the phrase the peer is given (cut to 128 bytes).
  void close_application(std::uint64_t code, std::string_view reason = {}) {
    if (over_ || closing_ || draining_ || !conn_) return;
    ngtcp2_connection_close_error e;
    ngtcp2_connection_close_error_default(&e);
    reason = reason.substr(0, 128);
    ngtcp2_connection_close_error_set_application_error(&e, code, reinterpret_cast<const std::uint8_t*>(reason.data()), reason.size());
    send_close(e);
  }

  /// Drops the connection at once, sending nothing (the owner is shutting down).
  void abandon() {
    if (over_) return;
    reason_ = close_reason::local_close;
    end();
  }

  /// The app has ended everything that refers to this connection (after on_closed).
  void app_done() {
    app_done_ = true;
    maybe_finish();
  }

  // --- for the app ---------------------------------------------------------------------------
  ngtcp2_conn* get() const noexcept { return conn_.get(); }
  App& app() noexcept { return app_; }
  const tls_session& tls() const noexcept { return tls_; }
  const path_storage& path() const noexcept { return path_; }
  bool over() const noexcept { return over_; }
  bool handshake_completed() const noexcept { return conn_ && ngtcp2_conn_get_handshake_completed(conn_.get()); }
  /// Inside app.on_stream_data: some or all of this data came in 0-RTT packets and the
  /// handshake is not done (NGTCP2_STREAM_DATA_FLAG_EARLY): the client's identity is not
  /// confirmed and the bytes may be a replay.
  bool receiving_early_data() const noexcept { return rx_early_; }
  /// The smoothed RTT (RFC 9002 §5.3); none before the first RTT sample.
  std::optional<std::chrono::nanoseconds> smoothed_rtt() const noexcept {
    if (!conn_) return std::nullopt;
    ngtcp2_conn_stat st;
    ngtcp2_conn_get_conn_stat(conn_.get(), &st);
    if (st.first_rtt_sample_ts == UINT64_MAX) return std::nullopt;
    return std::chrono::nanoseconds(st.smoothed_rtt);  // ngtcp2_duration: nanoseconds
  }
  close_reason reason() const noexcept { return reason_; }
  const asio::any_io_executor& get_executor() const noexcept { return ex_; }
  /// Gives the peer `n` more bytes of credit on stream `id` and on the connection (body bytes
  /// consumed by the app).
  void extend(std::int64_t id, std::uint64_t n) {
    if (!conn_ || over_ || n == 0) return;
    ngtcp2_conn_extend_max_stream_offset(conn_.get(), id, n);
    ngtcp2_conn_extend_max_offset(conn_.get(), n);
  }

private:
  struct conn_del {
    void operator()(ngtcp2_conn* c) const noexcept { ngtcp2_conn_del(c); }
  };

  static bool same_remote(const ngtcp2_addr& a, const ngtcp2_addr& b) noexcept {
    return a.addrlen == b.addrlen && std::memcmp(a.addr, b.addr, static_cast<std::size_t>(a.addrlen)) == 0;
  }

  static void apply(ngtcp2_settings& s, const transport_settings& ts) {
    s.initial_ts = now();
    s.max_tx_udp_payload_size = ts.max_udp_payload;
    s.handshake_timeout = to_duration(ts.handshake_timeout);
    s.max_window = ts.max_data * 4;
    s.max_stream_window = ts.max_stream_data_bidi * 4;
  }
  static void apply(ngtcp2_transport_params& p, const transport_settings& ts) {
    p.initial_max_data = ts.max_data;
    p.initial_max_stream_data_bidi_local = ts.max_stream_data_bidi;
    p.initial_max_stream_data_bidi_remote = ts.max_stream_data_bidi;
    p.initial_max_stream_data_uni = ts.max_stream_data_uni;
    p.initial_max_streams_bidi = ts.max_streams_bidi;
    p.initial_max_streams_uni = ts.max_streams_uni;
    p.max_idle_timeout = to_duration(ts.idle_timeout);
    p.active_connection_id_limit = 4;
  }

  // --- ngtcp2 callbacks ----------------------------------------------------------------------
  static connection& self(void* ud) noexcept { return *static_cast<connection*>(ud); }

  ngtcp2_callbacks callbacks(bool server) {
    ngtcp2_callbacks cb{};
    if (server) {
      cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    } else {
      cb.client_initial = ngtcp2_crypto_client_initial_cb;
      cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
    }
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.rand = [](std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) { random_bytes(std::span(dest, len)); };
    cb.get_new_connection_id = [](ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t len, void* ud) {
      auto& c = self(ud);
      return c.hooks_.new_cid(c.hooks_.owner, &c, cid, token, len) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.remove_connection_id = [](ngtcp2_conn*, const ngtcp2_cid* cid, void* ud) {
      auto& c = self(ud);
      if (c.hooks_.cid_retired) c.hooks_.cid_retired(c.hooks_.owner, &c, *cid);
      return 0;
    };
    cb.handshake_completed = [](ngtcp2_conn*, void* ud) {
      auto& c = self(ud);
      if (c.hooks_.handshake_done) c.hooks_.handshake_done(c.hooks_.owner, &c);
      return 0;
    };
    // HTTP/3 starts on 1-RTT keys: the server's tx key, the client's rx key.
    if (server)
      cb.recv_tx_key = [](ngtcp2_conn*, ngtcp2_crypto_level level, void* ud) { return self(ud).ready(level); };
    else
      cb.recv_rx_key = [](ngtcp2_conn*, ngtcp2_crypto_level level, void* ud) { return self(ud).ready(level); };
    cb.recv_stream_data = [](ngtcp2_conn*, std::uint32_t flags, std::int64_t id, std::uint64_t, const std::uint8_t* data, std::size_t len,
                             void* ud, void*) {
      auto& c = self(ud);
      c.rx_early_ = (flags & NGTCP2_STREAM_DATA_FLAG_EARLY) != 0;
      const int rv = c.app_.on_stream_data(c, id, std::span<const std::uint8_t>(data, len), (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
      c.rx_early_ = false;
      return rv == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.acked_stream_data_offset = [](ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t len, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.on_acked(c, id, len) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.stream_close = [](ngtcp2_conn* conn, std::uint32_t flags, std::int64_t id, std::uint64_t code, void* ud, void*) {
      auto& c = self(ud);
      if (c.hooks_.packets_lost)  // (the stream is still known to ngtcp2 in this callback)
        if (const auto n = ngtcp2_conn_get_stream_loss_count(conn, id); n > 0) c.hooks_.packets_lost(c.hooks_.owner, &c, n);
      return c.app_.on_stream_close(c, id, code, (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) != 0) == 0 ? 0
                                                                                                              : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.stream_reset = [](ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t code, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.on_stream_reset(c, id, code) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.stream_stop_sending = [](ngtcp2_conn*, std::int64_t id, std::uint64_t code, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.on_stream_reset(c, id, code) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.extend_max_stream_data = [](ngtcp2_conn*, std::int64_t id, std::uint64_t, void* ud, void*) {
      auto& c = self(ud);
      return c.app_.on_extend_stream(c, id) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.extend_max_remote_streams_bidi = [](ngtcp2_conn*, std::uint64_t max, void* ud) {
      auto& c = self(ud);
      return c.app_.on_extend_streams_bidi(c, max) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    return cb;
  }

  int ready(ngtcp2_crypto_level level) {
    if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION || ready_) return 0;
    ready_ = true;
    return app_.on_ready(*this) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
  }

  // --- the end -------------------------------------------------------------------------------
  void on_error(int rv) {
    switch (rv) {
      case NGTCP2_ERR_DRAINING:  // the peer closed: wait out the draining period quietly
        reason_ = close_reason::peer_closed;
        draining_ = true;
        arm_end_timer();
        return;
      case NGTCP2_ERR_DROP_CONN:
        reason_ = close_reason::error;
        return end();
      case NGTCP2_ERR_RETRY:  // (servers only: the endpoint handles Retry before a connection exists)
        reason_ = close_reason::error;
        return end();
      default: return close_with(rv, false);
    }
  }

  /// Sends CONNECTION_CLOSE for library error `rv` (a TLS alert for a crypto failure).
  void close_with(int rv, bool internal) {
    if (over_ || closing_ || draining_) return;
    ngtcp2_connection_close_error e;
    ngtcp2_connection_close_error_default(&e);
    if (rv == NGTCP2_ERR_CRYPTO) ngtcp2_connection_close_error_set_transport_error_tls_alert(&e, ngtcp2_conn_get_tls_alert(conn_.get()), nullptr, 0);
    else ngtcp2_connection_close_error_set_transport_error_liberr(&e, internal ? NGTCP2_ERR_INTERNAL : rv, nullptr, 0);
    reason_ = close_reason::error;
    send_close(e);
  }

  void send_close(const ngtcp2_connection_close_error& e) {
    if (reason_ == close_reason::none) reason_ = close_reason::local_close;
    closing_ = true;
    auto* c = conn_.get();
    if (ngtcp2_conn_is_in_closing_period(c) || ngtcp2_conn_is_in_draining_period(c)) {
      arm_end_timer();
      return;
    }
    close_packet_.resize(NGTCP2_MAX_UDP_PAYLOAD_SIZE);
    path_storage ps;
    ngtcp2_pkt_info pi{};
    const auto n = ngtcp2_conn_write_connection_close(c, &ps.path, &pi, close_packet_.data(), close_packet_.size(), &e, now());
    if (n > 0) {
      close_packet_.resize(static_cast<std::size_t>(n));
      hooks_.send(hooks_.owner, ps.path, close_packet_, 0);
    } else {
      close_packet_.clear();
    }
    arm_end_timer();
  }

  /// The closing or draining period: three PTOs (RFC 9000 §10.2), then the end.
  void arm_end_timer() {
    const auto pto = std::chrono::nanoseconds(ngtcp2_conn_get_pto(conn_.get()));
    timer_.expires_after(std::chrono::duration_cast<clock::duration>(pto * 3));
    start_timer();
  }

  void arm_timer() {
    if (over_ || closing_ || draining_) return;
    timer_.expires_at(to_time_point(ngtcp2_conn_get_expiry(conn_.get())));
    start_timer();
  }

  void start_timer() {
    ++timer_waits_;
    timer_.async_wait([this](const std::error_code& ec) {
      --timer_waits_;
      if (!ec) on_timer();
      maybe_finish();
    });
  }

  void on_timer() {
    if (over_) return;
    if (closing_ || draining_) return end();
    if (timer_.expiry() > clock::now()) return arm_timer();  // re-armed since: wait again
    const int rv = ngtcp2_conn_handle_expiry(conn_.get(), now());
    if (rv != 0) {  // idle or handshake timeout: silent close (RFC 9000 §10.1)
      reason_ = rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT ? close_reason::handshake_timeout : close_reason::idle;
      if (rv != NGTCP2_ERR_IDLE_CLOSE && rv != NGTCP2_ERR_HANDSHAKE_TIMEOUT) reason_ = close_reason::error;
      return end();
    }
    write();
  }

  /// The transport is over: the app ends its streams; the owner destroys us once all is done.
  void end() {
    if (over_) return;
    over_ = true;
    timer_.cancel();
    app_.on_closed(*this);
    maybe_finish();
  }

  void maybe_finish() {
    if (!over_ || !app_done_ || timer_waits_ > 0 || write_posted_ || finished_) return;
    finished_ = true;
    hooks_.finished(hooks_.owner, this);
  }

  asio::any_io_executor ex_;
  connection_hooks hooks_;
  asio::steady_timer timer_;
  ngtcp2_crypto_conn_ref ref_{};
  std::unique_ptr<ngtcp2_conn, conn_del> conn_;
  tls_session tls_;  // ngtcp2 does not own the session; it goes before the connection
  path_storage path_, sent_path_;
  std::vector<std::uint8_t> txbuf_, close_packet_;
  unsigned timer_waits_ = 0;
  bool rx_early_ = false;  // during on_stream_data: the data came (partly) in 0-RTT
  bool ready_ = false, closing_ = false, draining_ = false, over_ = false, app_done_ = false, write_posted_ = false, finished_ = false;
  close_reason reason_ = close_reason::none;
  App app_;
};

}  // namespace rproxy::net::quic
