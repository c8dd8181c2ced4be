// An HTTP/3 client that resumes with 0-RTT, for the gateway's early-data e2e
// (h3_gateway_h3_0rtt_test.py). Built on the same stack as the gateway (ngtcp2 0.12 + GnuTLS +
// nghttp3 0.8) but not on rproxy's QUIC classes, which have no client-side resumption: one
// connection at a time, one UDP socket each, poll().
//
//   h3_0rtt_client --port N --ca cert.pem [--sni localhost] --method POST --path /x [--body TEXT] [--tries K]
//
// Each try: a full handshake with GET /ticket, kept until its response and a session ticket
// arrived (the ticket and the server's transport parameters are remembered), then a second
// connection that resumes with them and sends METHOD PATH at once, in 0-RTT packets when TLS
// allows early data. Tries stop at the first resumed connection whose early data the server
// accepted (or after K). Each connection prints one JSON line:
//   {"conn":"ticket"|"resumed","try":1,"resumed":true,"early_offered":true,"early_sent":312,
//    "early_accepted":true,"resent":false,"status":200,"body":"...","error":""}
// early_offered: GnuTLS offered early data in the ClientHello (the ticket allows it) and the
// 0-RTT key was installed; early_sent:
// request-stream bytes ngtcp2 wrote before the handshake completed, i.e. in 0-RTT packets;
// early_accepted: the server's EncryptedExtensions accepted early data
// (GNUTLS_SFLAGS_EARLY_DATA). A rejected attempt sends the request again after the handshake
// (resent), as RFC 9001 §4.6.2 requires of a client. Exit status 0 when every connection got a
// response, else 1.
//
//   h3_0rtt_client --port N --ca cert.pem --hold SECONDS [--bind IP] [--path /x]
//
// Hold mode, for the ban e2e (h3_gateway_ban_kick_test.py): one full connection, from source
// address IP if given, sends METHOD PATH, prints {"conn":"held","status":200,...} once the
// response is in, then keeps the connection open with no request (PINGs only) until the
// server closes it (or SECONDS pass), and prints {"conn":"closed","by_peer":true,
// "app_error":true,"code":267,"reason":"...","after_ms":12}: the server's CONNECTION_CLOSE,
// and how long after the first line it came. Exit status 0 when the server closed the
// connection within SECONDS.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

/// What a first connection leaves for the next: the TLS session (its ticket) and the server's
/// transport parameters (RFC 9000 §7.4.1: 0-RTT runs on them).
struct ticket {
  std::vector<unsigned char> session;
  ngtcp2_transport_params params{};
  bool have = false;
};

struct options {
  std::string host = "127.0.0.1", sni = "localhost", ca, method = "GET", path = "/", body;
  int port = 0, tries = 1;
  double timeout = 10;  // seconds per connection
  std::string bind;      // source address (empty: any)
  double hold = 0;       // hold mode: seconds to wait for the server to close (0: off)
};

std::string json_escape(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else o += c;
  }
  return o;
}

class client {
public:
  client(const options& o, gnutls_certificate_credentials_t creds, ticket* save, const ticket* resume)
      : o_(o), creds_(creds), save_(save), resume_(resume) {}
  ~client() {
    if (h3_) nghttp3_conn_del(h3_);
    if (conn_) ngtcp2_conn_del(conn_);
    if (tls_) gnutls_deinit(tls_);
    if (fd_ >= 0) ::close(fd_);
  }

  /// Runs the connection until the response (and, for a ticket connection, a ticket) arrived.
  bool run(const std::string& method, const std::string& path, const std::string& body) {
    method_ = method, path_ = path, body_ = body;
    if (!setup()) return false;
    const auto until = now_ns() + static_cast<std::uint64_t>(o_.timeout * 1e9);
    if (!write() || !pump([this] { return done(); }, until)) return false;
    close_conn();
    return error_.empty();
  }

  /// Reads, writes and handles timers until `stop()` or `until` (false: timed out or failed).
  template <class Stop>
  bool pump(Stop stop, std::uint64_t until) {
    while (!stop()) {
      if (!error_.empty()) return false;
      if (now_ns() > until) return fail("timed out");
      const auto expiry = ngtcp2_conn_get_expiry(conn_);
      const auto t = now_ns();
      int wait_ms = expiry <= t ? 0 : static_cast<int>(std::min<std::uint64_t>((expiry - t) / 1000000 + 1, 100));
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, wait_ms) > 0) {
        if (!read()) return false;
      } else if (ngtcp2_conn_get_expiry(conn_) <= now_ns()) {
        if (ngtcp2_conn_handle_expiry(conn_, now_ns()) != 0) return fail("idle or handshake timeout");
      }
      if (!write()) return false;
    }
    return true;
  }

  /// Hold mode (see the top): the request, then an idle connection until the server closes it.
  bool hold(const std::string& method, const std::string& path) {
    method_ = method, path_ = path;
    if (!setup()) return false;
    auto until = now_ns() + static_cast<std::uint64_t>(o_.timeout * 1e9);
    if (!write() || !pump([this] { return done(); }, until)) return false;
    std::printf("{\"conn\":\"held\",\"status\":%d,\"error\":\"%s\"}\n", status_, json_escape(error_).c_str());
    std::fflush(stdout);
    if (!error_.empty()) return false;
    // No more requests; PINGs keep the connection from idling out (10 s) while it waits.
    ngtcp2_conn_set_keep_alive_timeout(conn_, 2 * NGTCP2_SECONDS);
    const auto held_at = now_ns();
    until = held_at + static_cast<std::uint64_t>(o_.hold * 1e9);
    (void)pump([this] { return peer_closed_; }, until);
    ngtcp2_connection_close_error e;
    ngtcp2_connection_close_error_default(&e);
    if (peer_closed_) ngtcp2_conn_get_connection_close_error(conn_, &e);
    const std::string reason(reinterpret_cast<const char*>(e.reason), e.reason ? e.reasonlen : 0);
    std::printf("{\"conn\":\"closed\",\"by_peer\":%s,\"app_error\":%s,\"code\":%llu,\"reason\":\"%s\",\"after_ms\":%llu,\"error\":\"%s\"}\n",
                peer_closed_ ? "true" : "false",
                e.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION ? "true" : "false",
                static_cast<unsigned long long>(e.error_code), json_escape(reason).c_str(),
                static_cast<unsigned long long>((now_ns() - held_at) / 1000000), json_escape(error_).c_str());
    std::fflush(stdout);
    return peer_closed_;
  }

  std::string report(const char* kind, int attempt) const {
    std::string s = "{\"conn\":\"" + std::string(kind) + "\",\"try\":" + std::to_string(attempt);
    s += ",\"resumed\":" + std::string(resumed_ ? "true" : "false");
    s += ",\"early_offered\":" + std::string(early_offered_ ? "true" : "false");
    s += ",\"early_sent\":" + std::to_string(early_sent_);
    s += ",\"early_accepted\":" + std::string(early_accepted_ ? "true" : "false");
    s += ",\"resent\":" + std::string(resent_ ? "true" : "false");
    s += ",\"status\":" + std::to_string(status_);
    s += ",\"body\":\"" + json_escape(resp_body_) + "\",\"error\":\"" + json_escape(error_) + "\"}";
    return s;
  }
  bool early_accepted() const { return early_accepted_; }

private:
  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  bool done() const { return !error_.empty() || (ended_ && (!save_ || save_->have)); }

  bool setup() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    remote_.sin_family = AF_INET;
    remote_.sin_port = htons(static_cast<std::uint16_t>(o_.port));
    ::inet_pton(AF_INET, o_.host.c_str(), &remote_.sin_addr);
    if (fd_ >= 0 && !o_.bind.empty()) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      if (::inet_pton(AF_INET, o_.bind.c_str(), &src.sin_addr) != 1 || ::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0)
        return fail("cannot bind to " + o_.bind);
    }
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&remote_), sizeof remote_) != 0) return fail("socket");
    socklen_t len = sizeof local_;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local_), &len);
    path_obj_.local = {reinterpret_cast<sockaddr*>(&local_), sizeof local_};
    path_obj_.remote = {reinterpret_cast<sockaddr*>(&remote_), sizeof remote_};

    ngtcp2_callbacks cb{};
    cb.client_initial = [](ngtcp2_conn* c, void* ud) {
      if (ngtcp2_crypto_client_initial_cb(c, ud) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
      // The ClientHello is made: when GnuTLS offered early data (a ticket that allows it),
      // ngtcp2_crypto installed the 0-RTT key and its crypto context.
      auto& self = *static_cast<client*>(ud);
      self.early_offered_ = ngtcp2_conn_get_early_crypto_ctx(c)->aead.native_handle != nullptr;
      return 0;
    };
    cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.rand = [](std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) { (void)gnutls_rnd(GNUTLS_RND_RANDOM, dest, len); };
    cb.get_new_connection_id = [](ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token, std::size_t len, void*) {
      cid->datalen = len;
      if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, len) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
      return gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.handshake_completed = [](ngtcp2_conn* c, void* ud) {
      auto& self = *static_cast<client*>(ud);
      self.resumed_ = gnutls_session_is_resumed(self.tls_) != 0;
      self.early_accepted_ = (gnutls_session_get_flags(self.tls_) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
      if (self.resume_ && self.resume_->have && !self.early_accepted_) {
        // Rejected: ngtcp2 forgets the 0-RTT streams (early_data_rejected below drops the
        // HTTP/3 state); everything goes again on 1-RTT.
        if (ngtcp2_conn_early_data_rejected(c) != 0) return NGTCP2_ERR_CALLBACK_FAILURE;
        self.resent_ = true;
      }
      return 0;
    };
    cb.early_data_rejected = [](ngtcp2_conn*, void* ud) {
      auto& self = *static_cast<client*>(ud);
      nghttp3_conn_del(self.h3_);
      self.h3_ = nullptr;
      self.sid_ = -1;
      return 0;
    };
    cb.recv_rx_key = [](ngtcp2_conn*, ngtcp2_crypto_level level, void* ud) {
      auto& self = *static_cast<client*>(ud);
      if (level != NGTCP2_CRYPTO_LEVEL_APPLICATION || self.h3_) return 0;
      return self.start_h3() ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.recv_stream_data = [](ngtcp2_conn* c, std::uint32_t flags, std::int64_t id, std::uint64_t, const std::uint8_t* data, std::size_t len,
                             void* ud, void*) {
      auto& self = *static_cast<client*>(ud);
      if (!self.h3_) return 0;
      const auto n = nghttp3_conn_read_stream(self.h3_, id, data, len, (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0);
      if (n < 0) return NGTCP2_ERR_CALLBACK_FAILURE;
      ngtcp2_conn_extend_max_stream_offset(c, id, static_cast<std::uint64_t>(n));
      ngtcp2_conn_extend_max_offset(c, static_cast<std::uint64_t>(n));
      return 0;
    };
    cb.acked_stream_data_offset = [](ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t len, void* ud, void*) {
      auto& self = *static_cast<client*>(ud);
      return !self.h3_ || nghttp3_conn_add_ack_offset(self.h3_, id, len) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.stream_close = [](ngtcp2_conn*, std::uint32_t flags, std::int64_t id, std::uint64_t code, void* ud, void*) {
      auto& self = *static_cast<client*>(ud);
      if (!self.h3_) return 0;
      const int rv = nghttp3_conn_close_stream(self.h3_, id, (flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) ? code : NGHTTP3_H3_NO_ERROR);
      return rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };
    cb.stream_reset = [](ngtcp2_conn*, std::int64_t id, std::uint64_t, std::uint64_t, void* ud, void*) {
      auto& self = *static_cast<client*>(ud);
      if (id == self.sid_) self.fail("the server reset the request stream");
      return 0;
    };
    cb.extend_max_stream_data = [](ngtcp2_conn*, std::int64_t id, std::uint64_t, void* ud, void*) {
      auto& self = *static_cast<client*>(ud);
      return !self.h3_ || nghttp3_conn_unblock_stream(self.h3_, id) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
    };

    ngtcp2_settings settings;
    ngtcp2_settings_default(&settings);
    settings.initial_ts = now_ns();
    settings.max_tx_udp_payload_size = 1452;
    ngtcp2_transport_params params;
    ngtcp2_transport_params_default(&params);
    params.initial_max_data = 4u << 20;
    params.initial_max_stream_data_bidi_local = 1u << 20;
    params.initial_max_stream_data_uni = 256u << 10;
    params.initial_max_streams_uni = 16;
    params.max_idle_timeout = 10 * NGTCP2_SECONDS;
    params.active_connection_id_limit = 4;
    ngtcp2_cid dcid{}, scid{};
    dcid.datalen = scid.datalen = 18;
    (void)gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen);
    (void)gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen);
    if (ngtcp2_conn_client_new(&conn_, &dcid, &scid, &path_obj_, NGTCP2_PROTO_VER_V1, &cb, &settings, &params, nullptr, this) != 0)
      return fail("ngtcp2_conn_client_new");

    ref_.get_conn = [](ngtcp2_crypto_conn_ref* r) { return static_cast<client*>(r->user_data)->conn_; };
    ref_.user_data = this;
    if (gnutls_init(&tls_, GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA) != 0) return fail("gnutls_init");
    if (ngtcp2_crypto_gnutls_configure_client_session(tls_) != 0) return fail("configure_client_session");
    if (gnutls_priority_set_direct(tls_, "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:+AES-128-CCM",
                                   nullptr) != 0)
      return fail("priority");
    if (gnutls_credentials_set(tls_, GNUTLS_CRD_CERTIFICATE, creds_) != 0) return fail("credentials");
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>("h3")), 2};
    gnutls_alpn_set_protocols(tls_, &alpn, 1, 0);
    gnutls_server_name_set(tls_, GNUTLS_NAME_DNS, o_.sni.data(), o_.sni.size());
    gnutls_session_set_verify_cert(tls_, o_.sni.c_str(), 0);
    gnutls_session_set_ptr(tls_, &ref_);
    if (save_) {
      // A NewSessionTicket arrived (after the handshake): keep the session to resume.
      gnutls_handshake_set_hook_function(tls_, GNUTLS_HANDSHAKE_NEW_SESSION_TICKET, GNUTLS_HOOK_POST,
                                         [](gnutls_session_t s, unsigned, unsigned, unsigned, const gnutls_datum_t*) {
                                           auto* ref = static_cast<ngtcp2_crypto_conn_ref*>(gnutls_session_get_ptr(s));
                                           static_cast<client*>(ref->user_data)->keep_ticket();
                                           return 0;
                                         });
    }
    if (resume_ && resume_->have) {
      gnutls_datum_t d{const_cast<unsigned char*>(resume_->session.data()), static_cast<unsigned>(resume_->session.size())};
      if (gnutls_session_set_data(tls_, d.data, d.size) != 0) return fail("gnutls_session_set_data");
      ngtcp2_conn_set_early_remote_transport_params(conn_, &resume_->params);
    }
    ngtcp2_conn_set_tls_native_handle(conn_, tls_);
    // Resuming: the streams open and the request is queued before the first packet, so it goes
    // in 0-RTT packets if the 0-RTT key is there, else after the handshake.
    if (resume_ && resume_->have) return start_h3();
    return true;
  }

  void keep_ticket() {
    gnutls_datum_t d{};
    if (gnutls_session_get_data2(tls_, &d) != 0) return;
    save_->session.assign(d.data, d.data + d.size);
    gnutls_free(d.data);
    save_->params = *ngtcp2_conn_get_remote_transport_params(conn_);
    save_->have = true;
  }

  bool start_h3() {
    nghttp3_callbacks cb{};
    cb.recv_header = [](nghttp3_conn*, std::int64_t id, std::int32_t token, nghttp3_rcbuf* name, nghttp3_rcbuf* value, std::uint8_t, void* ud,
                        void*) {
      auto& self = *static_cast<client*>(ud);
      (void)name;
      if (id == self.sid_ && token == NGHTTP3_QPACK_TOKEN__STATUS) {
        const auto v = nghttp3_rcbuf_get_buf(value);
        self.status_ = std::atoi(std::string(reinterpret_cast<const char*>(v.base), v.len).c_str());
      }
      return 0;
    };
    cb.recv_data = [](nghttp3_conn*, std::int64_t id, const std::uint8_t* data, std::size_t len, void* ud, void*) {
      auto& self = *static_cast<client*>(ud);
      if (id == self.sid_) self.resp_body_.append(reinterpret_cast<const char*>(data), len);
      ngtcp2_conn_extend_max_stream_offset(self.conn_, id, len);
      ngtcp2_conn_extend_max_offset(self.conn_, len);
      return 0;
    };
    cb.deferred_consume = [](nghttp3_conn*, std::int64_t id, std::size_t n, void* ud, void*) {
      auto& self = *static_cast<client*>(ud);
      ngtcp2_conn_extend_max_stream_offset(self.conn_, id, n);
      ngtcp2_conn_extend_max_offset(self.conn_, n);
      return 0;
    };
    cb.end_stream = [](nghttp3_conn*, std::int64_t id, void* ud, void*) {
      auto& self = *static_cast<client*>(ud);
      if (id == self.sid_) self.ended_ = true;
      return 0;
    };
    cb.acked_stream_data = [](nghttp3_conn*, std::int64_t, std::uint64_t, void*, void*) { return 0; };
    nghttp3_settings s;
    nghttp3_settings_default(&s);
    if (nghttp3_conn_client_new(&h3_, &cb, &s, nullptr, this) != 0) return fail("nghttp3_conn_client_new");
    std::int64_t ctrl = -1, enc = -1, dec = -1;
    if (ngtcp2_conn_open_uni_stream(conn_, &ctrl, nullptr) != 0 || ngtcp2_conn_open_uni_stream(conn_, &enc, nullptr) != 0 ||
        ngtcp2_conn_open_uni_stream(conn_, &dec, nullptr) != 0)
      return fail("no uni streams");
    if (nghttp3_conn_bind_control_stream(h3_, ctrl) != 0 || nghttp3_conn_bind_qpack_streams(h3_, enc, dec) != 0) return fail("bind");
    return submit();
  }

  bool submit() {
    if (sid_ >= 0) return true;
    if (ngtcp2_conn_open_bidi_stream(conn_, &sid_, nullptr) != 0) return fail("no bidi stream");
    auto nv = [](std::string_view n, std::string_view v) {
      return nghttp3_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())), reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())),
                        n.size(), v.size(), NGHTTP3_NV_FLAG_NONE};
    };
    const std::string len = std::to_string(body_.size());
    std::vector<nghttp3_nv> nva{nv(":method", method_), nv(":scheme", "https"), nv(":authority", o_.sni), nv(":path", path_)};
    if (!body_.empty()) nva.push_back(nv("content-length", len));
    body_off_ = 0;
    nghttp3_data_reader dr{[](nghttp3_conn*, std::int64_t, nghttp3_vec* vec, std::size_t, std::uint32_t* flags, void* ud, void*) -> nghttp3_ssize {
      auto& self = *static_cast<client*>(ud);
      *flags |= NGHTTP3_DATA_FLAG_EOF;
      if (self.body_off_ >= self.body_.size()) return 0;
      vec[0] = {reinterpret_cast<std::uint8_t*>(self.body_.data()), self.body_.size()};
      self.body_off_ = self.body_.size();
      return 1;
    }};
    return nghttp3_conn_submit_request(h3_, sid_, nva.data(), nva.size(), body_.empty() ? nullptr : &dr, nullptr) == 0 || fail("submit");
  }

  bool read() {
    std::array<std::uint8_t, 65536> buf;
    for (;;) {
      const auto n = ::recv(fd_, buf.data(), buf.size(), 0);
      if (n < 0) return true;  // (EAGAIN; ICMP errors surface as a timeout)
      ngtcp2_pkt_info pi{};
      const int rv = ngtcp2_conn_read_pkt(conn_, &path_obj_, &pi, buf.data(), static_cast<std::size_t>(n), now_ns());
      if (rv == NGTCP2_ERR_DRAINING && o_.hold > 0) {  // the server's CONNECTION_CLOSE
        peer_closed_ = true;
        return true;
      }
      if (rv != 0) return fail(std::string("read_pkt: ") + ngtcp2_strerror(rv));
    }
  }

  bool write() {
    if (resent_ && !h3_ && !start_h3()) return false;  // early data rejected: all again on 1-RTT
    std::array<std::uint8_t, 1500> out;
    for (;;) {
      std::int64_t sid = -1;
      int fin = 0;
      std::array<nghttp3_vec, 16> vec{};
      nghttp3_ssize nvec = 0;
      if (h3_ && ngtcp2_conn_get_max_data_left(conn_) > 0) {
        nvec = nghttp3_conn_writev_stream(h3_, &sid, &fin, vec.data(), vec.size());
        if (nvec < 0) return fail("nghttp3_conn_writev_stream");
      }
      ngtcp2_ssize ndatalen = -1;
      ngtcp2_path_storage ps;
      ngtcp2_path_storage_zero(&ps);
      ngtcp2_pkt_info pi{};
      const std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE | (fin ? NGTCP2_WRITE_STREAM_FLAG_FIN : 0);
      const auto n = ngtcp2_conn_writev_stream(conn_, &ps.path, &pi, out.data(), out.size(), &ndatalen, flags, sid,
                                               reinterpret_cast<const ngtcp2_vec*>(vec.data()), static_cast<std::size_t>(nvec), now_ns());
      if (n < 0) {
        if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
          nghttp3_conn_block_stream(h3_, sid);
          continue;
        }
        if (n == NGTCP2_ERR_STREAM_SHUT_WR) {
          nghttp3_conn_shutdown_stream_write(h3_, sid);
          continue;
        }
        if (n == NGTCP2_ERR_WRITE_MORE) {
          wrote(sid, ndatalen);
          continue;
        }
        return fail(std::string("writev_stream: ") + ngtcp2_strerror(static_cast<int>(n)));
      }
      if (ndatalen >= 0 && sid >= 0) wrote(sid, ndatalen);
      if (n == 0) break;
      (void)::send(fd_, out.data(), static_cast<std::size_t>(n), 0);
    }
    // ngtcp2 0.12 paces with a 333 ms RTT before the first sample: not during the handshake.
    if (ngtcp2_conn_get_handshake_completed(conn_)) ngtcp2_conn_update_pkt_tx_time(conn_, now_ns());
    return true;
  }
  void wrote(std::int64_t sid, ngtcp2_ssize n) {
    if (h3_) nghttp3_conn_add_write_offset(h3_, sid, static_cast<std::size_t>(n));
    if (sid == sid_ && n > 0 && !ngtcp2_conn_get_handshake_completed(conn_)) early_sent_ += static_cast<std::size_t>(n);
  }

  void close_conn() {
    std::array<std::uint8_t, 1500> out;
    ngtcp2_path_storage ps;
    ngtcp2_path_storage_zero(&ps);
    ngtcp2_pkt_info pi{};
    ngtcp2_connection_close_error e;
    ngtcp2_connection_close_error_default(&e);
    ngtcp2_connection_close_error_set_application_error(&e, NGHTTP3_H3_NO_ERROR, nullptr, 0);
    const auto n = ngtcp2_conn_write_connection_close(conn_, &ps.path, &pi, out.data(), out.size(), &e, now_ns());
    if (n > 0) (void)::send(fd_, out.data(), static_cast<std::size_t>(n), 0);
  }

  const options& o_;
  gnutls_certificate_credentials_t creds_;
  ticket* save_;
  const ticket* resume_;
  int fd_ = -1;
  sockaddr_in local_{}, remote_{};
  ngtcp2_path path_obj_{};
  ngtcp2_conn* conn_ = nullptr;
  gnutls_session_t tls_ = nullptr;
  ngtcp2_crypto_conn_ref ref_{};
  nghttp3_conn* h3_ = nullptr;
  std::string method_, path_, body_;
  std::size_t body_off_ = 0;
  std::int64_t sid_ = -1;
  int status_ = 0;
  std::string resp_body_, error_;
  bool peer_closed_ = false;
  bool ended_ = false, resumed_ = false, early_offered_ = false, early_accepted_ = false, resent_ = false;
  std::size_t early_sent_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view k = argv[i];
    const std::string v = argv[i + 1];
    if (k == "--host") o.host = v;
    else if (k == "--port") o.port = std::atoi(v.c_str());
    else if (k == "--sni") o.sni = v;
    else if (k == "--ca") o.ca = v;
    else if (k == "--method") o.method = v;
    else if (k == "--path") o.path = v;
    else if (k == "--body") o.body = v;
    else if (k == "--tries") o.tries = std::atoi(v.c_str());
    else if (k == "--timeout") o.timeout = std::atof(v.c_str());
    else if (k == "--bind") o.bind = v;
    else if (k == "--hold") o.hold = std::atof(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (o.port <= 0 || o.ca.empty() || o.tries <= 0) {
    std::fprintf(stderr, "usage: %s --port N --ca CERT.pem [--host IP] [--sni NAME] [--method M] [--path P] [--body B] [--tries K]\n", argv[0]);
    return 2;
  }
  gnutls_certificate_credentials_t creds = nullptr;
  gnutls_certificate_allocate_credentials(&creds);
  if (gnutls_certificate_set_x509_trust_file(creds, o.ca.c_str(), GNUTLS_X509_FMT_PEM) <= 0) {
    std::fprintf(stderr, "cannot read trust anchors from %s\n", o.ca.c_str());
    return 2;
  }
  if (o.hold > 0) {
    bool closed = false;
    {
      client c(o, creds, nullptr, nullptr);
      closed = c.hold(o.method, o.path);
    }
    gnutls_certificate_free_credentials(creds);
    return closed ? 0 : 1;
  }
  bool ok = true;
  for (int attempt = 1; attempt <= o.tries; ++attempt) {
    ticket t;
    {
      client first(o, creds, &t, nullptr);
      ok &= first.run("GET", "/ticket", "");
      std::printf("%s\n", first.report("ticket", attempt).c_str());
      std::fflush(stdout);
    }
    if (!t.have) continue;
    client again(o, creds, nullptr, &t);
    ok &= again.run(o.method, o.path, o.body);
    std::printf("%s\n", again.report("resumed", attempt).c_str());
    std::fflush(stdout);
    if (again.early_accepted()) break;
  }
  gnutls_certificate_free_credentials(creds);
  return ok ? 0 : 1;
}
