// rproxy/codec/h3/server_session.hpp: the server side of HTTP/3 on nghttp3, sans-I/O.
//
// QUIC delivers stream bytes and takes stream bytes; this session turns them into requests
// and back. It knows no socket and no ngtcp2: what QUIC must do for it comes back as
// `actions` (flow-control credit, stream shutdowns), and the write path is the shape
// net/quic/connection.hpp's stream_app asks for (writev / wrote / blocked / shut_wr / acked).
//
//     h3::server_session s(limits, max_streams);
//     s.bind(control_id, qpack_enc_id, qpack_dec_id);        // the 3 uni streams QUIC opened
//     for (auto& e : s.feed(stream_id, bytes, fin)) ...       // event::request, data, end_stream, reset, closed
//     s.submit_response(id, 200, fields); s.send_data(id, body); s.end_stream(id, trailers);
//     s.consume(id, n);                                       // body bytes forwarded: credit back
//     for (auto& a : s.take_actions()) ...                    // extend / shutdown for QUIC
//     s.shutdown();                                           // GOAWAY: in-flight requests finish
//
// Flow-control credit: nghttp3_conn_read_stream's return value counts framing bytes only; the
// DATA payload is credited when the application consumes it (consume()), so a stream holds
// at most QUIC's stream window of unforwarded body bytes. nghttp3 also reports framing bytes
// it consumed later (deferred_consume): credited at once.
//
// Response bodies are copied into per-stream chunks handed to nghttp3 by reference; a chunk
// is freed once QUIC reports its bytes acknowledged. queued(id) is the backpressure figure.
// Bounds: limits.hpp (field section size and count, body size); a malformed head gets a 4xx
// (no body) and never becomes an event.
#pragma once

#include <nghttp3/nghttp3.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/codec/h2/error.hpp>
#include <rproxy/codec/h3/limits.hpp>
#include <rproxy/codec/h3/request.hpp>
#include <rproxy/codec/http1/detail/chars.hpp>

namespace rproxy::codec::h3 {

/// HTTP/3 error codes (RFC 9114 §8.1) the session sends.
enum class code : std::uint64_t {
  no_error = 0x100,
  general_protocol_error = 0x101,
  internal_error = 0x102,
  request_rejected = 0x10b,
  request_cancelled = 0x10c,
  request_incomplete = 0x10d,
  message_error = 0x10e,
  excessive_load = 0x107,
};

enum class event_kind : std::uint8_t { request, data, end_stream, reset, closed };

struct event {
  event_kind what;
  std::int64_t stream_id;
  std::string_view data;  ///< data: body bytes (valid until the next call into the session)
};

/// What QUIC must do for the session.
enum class action_kind : std::uint8_t {
  extend,        ///< give `n` bytes of flow-control credit on the stream and the connection
  shutdown,      ///< reset the stream both ways (RESET_STREAM + STOP_SENDING) with `code`
  shutdown_read, ///< STOP_SENDING with `code` (we do not want the rest of the request)
  shutdown_write ///< RESET_STREAM with `code`
};
struct action {
  action_kind what;
  std::int64_t stream_id;
  std::uint64_t n;  ///< extend: bytes; else the error code
};

class server_session {
public:
  explicit server_session(const limits& l = {}, std::uint64_t max_streams = 100) : limits_(l) {
    nghttp3_callbacks cb{};
    cb.acked_stream_data = on_acked;
    cb.stream_close = on_stream_close;
    cb.recv_data = on_recv_data;
    cb.deferred_consume = on_deferred_consume;
    cb.begin_headers = on_begin_headers;
    cb.recv_header = on_recv_header;
    cb.end_headers = on_end_headers;
    cb.begin_trailers = on_begin_trailers;
    cb.recv_trailer = on_recv_trailer;
    cb.end_trailers = on_end_trailers;
    cb.stop_sending = on_stop_sending;
    cb.end_stream = on_end_stream;
    cb.reset_stream = on_reset_stream;
    nghttp3_settings s;
    nghttp3_settings_default(&s);
    s.max_field_section_size = l.max_field_section_size;
    s.qpack_max_dtable_capacity = l.qpack_max_dtable_capacity;
    s.qpack_blocked_streams = l.qpack_blocked_streams;
    nghttp3_conn* c = nullptr;
    if (nghttp3_conn_server_new(&c, &cb, &s, nullptr, this) != 0) throw std::bad_alloc();  // (its only failure)
    conn_.reset(c);
    nghttp3_conn_set_max_client_streams_bidi(c, max_streams);
  }
  server_session(const server_session&) = delete;
  server_session& operator=(const server_session&) = delete;

  /// Binds the control and QPACK streams (server-initiated uni streams QUIC opened).
  bool bind(std::int64_t control, std::int64_t qpack_encoder, std::int64_t qpack_decoder) {
    return nghttp3_conn_bind_control_stream(conn_.get(), control) == 0 &&
           nghttp3_conn_bind_qpack_streams(conn_.get(), qpack_encoder, qpack_decoder) == 0;
  }

  /// Bytes QUIC received on stream `id`. Events of this call (and earlier submit calls) are
  /// returned; a connection error (bad frames, QPACK) makes failed() true.
  std::span<const event> feed(std::int64_t id, std::span<const std::uint8_t> data, bool fin) {
    const auto n = nghttp3_conn_read_stream(conn_.get(), id, data.data(), data.size(), fin ? 1 : 0);
    if (n < 0) {
      failed_ = static_cast<int>(n);
    } else if (n > 0) {
      actions_.push_back({action_kind::extend, id, static_cast<std::uint64_t>(n)});
    }
    return take_events();
  }

  /// Events raised by calls other than feed (a response refused, ...).
  std::span<const event> poll() { return take_events(); }
  /// What QUIC must do now (taken: the next call starts empty).
  std::span<const action> take_actions() {
    done_actions_.swap(actions_);
    actions_.clear();
    return done_actions_;
  }

  /// A nghttp3 error code once the connection failed (an H3 connection error: close QUIC with
  /// nghttp3_err_infer_quic_app_error_code(failed())).
  int failed() const noexcept { return failed_; }
  std::uint64_t error_code() const noexcept { return nghttp3_err_infer_quic_app_error_code(failed_); }

  /// The request of stream `id` (from its request event until release).
  const h3::request& request(std::int64_t id) const { return *streams_.at(id)->req; }
  bool has(std::int64_t id) const noexcept { return streams_.contains(id); }

  /// Body bytes of stream `id` forwarded: their credit goes back to the client.
  void consume(std::int64_t id, std::size_t n) {
    if (n == 0) return;
    auto* st = find(id);
    if (st && st->gone) return;
    actions_.push_back({action_kind::extend, id, n});
  }

  /// Submits the response head (status + fields: any range of name/value records). Names are
  /// lowercased; connection-specific fields are left out. end_stream: no body.
  template <class Fields>
  int submit_response(std::int64_t id, unsigned status, const Fields& fields, bool end_stream = false) {
    auto* st = find(id);
    if (!st || st->gone || st->responded) return -1;
    st->responded = true;
    st->eof = end_stream;
    nv_.clear();
    names_.clear();
    status_ = std::to_string(status);
    names_.reserve(64);
    nv_.push_back(make_nv(":status", status_));
    for (const auto& f : fields) {
      std::string n(f.name);
      for (auto& ch : n) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
      if (connection_specific(n)) continue;
      names_.push_back(std::move(n));
    }
    std::size_t k = 0;
    for (const auto& f : fields) {
      std::string_view lower_probe(f.name);
      std::string n(lower_probe);
      for (auto& ch : n) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
      if (connection_specific(n)) continue;
      nv_.push_back(make_nv(names_[k++], f.value));
    }
    nghttp3_data_reader dr{on_read_data};
    const int rv = nghttp3_conn_submit_response(conn_.get(), id, nv_.data(), nv_.size(), end_stream ? nullptr : &dr);
    return rv;
  }

  /// Queues response body bytes (copied).
  int send_data(std::int64_t id, std::string_view bytes) {
    auto* st = find(id);
    if (!st || st->gone || st->eof || bytes.empty()) return st && !st->gone ? 0 : -1;
    st->chunks.emplace_back(bytes);
    st->queued += bytes.size();
    if (st->blocked_on_data) {
      st->blocked_on_data = false;
      (void)nghttp3_conn_resume_stream(conn_.get(), id);
    }
    return 0;
  }

  /// Ends the response body, with trailers (any range of name/value records) or none.
  template <class Fields>
  int end_stream(std::int64_t id, const Fields& trailers) {
    auto* st = find(id);
    if (!st || st->gone || st->eof) return -1;
    st->eof = true;
    for (const auto& f : trailers) {
      std::string n(f.name);
      for (auto& ch : n) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
      if (connection_specific(n)) continue;
      st->trailers.emplace_back(std::move(n), std::string(f.value));
    }
    if (st->blocked_on_data) {
      st->blocked_on_data = false;
      (void)nghttp3_conn_resume_stream(conn_.get(), id);
    }
    return 0;
  }
  int end_stream(std::int64_t id) { return end_stream(id, std::span<const field, 0>{}); }

  /// A name/value record (for callers without a fields type of their own).
  struct field {
    std::string_view name, value;
  };

  /// Response bytes held for stream `id` (not yet acknowledged by the client).
  std::size_t queued(std::int64_t id) const noexcept {
    auto it = streams_.find(id);
    return it == streams_.end() ? 0 : it->second->queued;
  }

  /// Resets stream `id` both ways (the backend failed mid-response: INTERNAL_ERROR).
  void reset(std::int64_t id, code c = code::internal_error) {
    auto* st = find(id);
    if (!st || st->gone) return;
    st->gone = true;
    actions_.push_back({action_kind::shutdown, id, static_cast<std::uint64_t>(c)});
    (void)nghttp3_conn_shutdown_stream_read(conn_.get(), id);
  }

  /// Forgets a stream after its closed (or reset) event and its flow's end.
  void release(std::int64_t id) { streams_.erase(id); }

  /// Graceful shutdown: GOAWAY (nghttp3 sends the last stream id it accepted); those
  /// requests finish, newer ones are refused.
  void shutdown() {
    if (shutting_down_) return;
    shutting_down_ = true;
    (void)nghttp3_conn_shutdown(conn_.get());
  }
  bool shutting_down() const noexcept { return shutting_down_; }
  /// Request streams the session holds.
  std::size_t streams() const noexcept { return streams_.size(); }

  // --- the QUIC write path (net/quic stream_app) ---------------------------------------------
  /// Stream data to send: `id` and `fin` are set; returns the number of vecs (0: nothing).
  template <class Vec>
  std::ptrdiff_t writev(std::int64_t& id, bool& fin, std::span<Vec> vecs) {
    static_assert(sizeof(Vec) == sizeof(nghttp3_vec), "ngtcp2_vec and nghttp3_vec share a layout");
    int f = 0;
    const auto n = nghttp3_conn_writev_stream(conn_.get(), &id, &f, reinterpret_cast<nghttp3_vec*>(vecs.data()), vecs.size());
    if (n < 0) {
      failed_ = static_cast<int>(n);
      return -1;
    }
    fin = f != 0;
    return n;
  }
  int wrote(std::int64_t id, std::size_t n) { return nghttp3_conn_add_write_offset(conn_.get(), id, n) == 0 ? 0 : -1; }
  void blocked(std::int64_t id) { (void)nghttp3_conn_block_stream(conn_.get(), id); }
  void shut_wr(std::int64_t id) { (void)nghttp3_conn_shutdown_stream_write(conn_.get(), id); }
  void unblocked(std::int64_t id) { (void)nghttp3_conn_unblock_stream(conn_.get(), id); }
  int acked(std::int64_t id, std::uint64_t n) { return nghttp3_conn_add_ack_offset(conn_.get(), id, n) == 0 ? 0 : -1; }
  /// QUIC closed stream `id` (app_code: the code the peer or we gave, else none).
  int stream_closed(std::int64_t id, std::uint64_t app_code, bool has_code) {
    const int rv = nghttp3_conn_close_stream(conn_.get(), id, has_code ? app_code : NGHTTP3_H3_NO_ERROR);
    return rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND ? 0 : -1;
  }
  /// The client reset stream `id`, or asked us to stop sending on it.
  int stream_reset(std::int64_t id) {
    if (auto* st = find(id); st && !st->gone) emit(event_kind::reset, id);
    const int rv = nghttp3_conn_shutdown_stream_read(conn_.get(), id);
    return rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND ? 0 : -1;
  }
  void set_max_client_streams(std::uint64_t n) { nghttp3_conn_set_max_client_streams_bidi(conn_.get(), n); }

private:
  struct stream {
    std::unique_ptr<h3::request> req;
    std::deque<std::string> chunks;  ///< response body: chunks.front() from `acked_in_front`
    std::size_t handed = 0;          ///< chunks handed to nghttp3 (from the front)
    std::size_t acked_in_front = 0;  ///< bytes of chunks.front() acknowledged
    std::size_t queued = 0;
    std::uint64_t body = 0;
    std::vector<std::pair<std::string, std::string>> trailers;
    std::vector<nghttp3_nv> trailer_nv;
    bool delivered = false, in_trailers = false, responded = false, eof = false, gone = false, blocked_on_data = false;
  };

  struct conn_del {
    void operator()(nghttp3_conn* c) const noexcept { nghttp3_conn_del(c); }
  };

  static server_session& self(void* ud) noexcept { return *static_cast<server_session*>(ud); }
  stream* find(std::int64_t id) noexcept {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  void emit(event_kind k, std::int64_t id, std::string_view data = {}) { events_.push_back({k, id, data}); }
  std::span<const event> take_events() {
    done_events_.swap(events_);
    events_.clear();
    return done_events_;
  }

  static nghttp3_nv make_nv(std::string_view n, std::string_view v) noexcept {
    return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())), reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())),
            n.size(), v.size(), NGHTTP3_NV_FLAG_NONE};
  }
  static bool connection_specific(std::string_view n) noexcept {
    return n.empty() || n.front() == ':' || n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "transfer-encoding" ||
           n == "upgrade" || n == "te";
  }

  /// A refused request: its status, no body, and the rest of the request is not read.
  void answer_status(std::int64_t id, unsigned status) {
    auto* st = find(id);
    if (st == nullptr) return;
    st->responded = st->eof = true;
    status_ = std::to_string(status);
    nghttp3_nv nv[] = {make_nv(":status", status_)};
    (void)nghttp3_conn_submit_response(conn_.get(), id, nv, 1, nullptr);
    st->gone = true;
    actions_.push_back({action_kind::shutdown_read, id, static_cast<std::uint64_t>(code::no_error)});
  }

  static unsigned status_of(h2::error e) noexcept {
    switch (e) {
      case h2::error::header_too_large:
      case h2::error::too_many_headers: return 431;
      case h2::error::body_too_large: return 413;
      default: return 400;
    }
  }

  // --- nghttp3 callbacks ---------------------------------------------------------------------
  static int on_begin_headers(nghttp3_conn* c, std::int64_t id, void* ud, void*) {
    auto& s = self(ud);
    auto st = std::make_unique<stream>();
    st->req = std::make_unique<h3::request>(s.limits_.max_field_section_size, s.limits_.max_header_count);
    auto* raw = st.get();
    s.streams_[id] = std::move(st);
    (void)nghttp3_conn_set_stream_user_data(c, id, raw);
    return 0;
  }
  static int on_recv_header(nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* name, nghttp3_rcbuf* value, std::uint8_t, void* ud,
                            void*) {
    auto* st = self(ud).find(id);
    if (!st) return 0;
    const auto n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
    st->req->add({reinterpret_cast<const char*>(n.base), n.len}, {reinterpret_cast<const char*>(v.base), v.len});
    return 0;
  }
  static int on_end_headers(nghttp3_conn*, std::int64_t id, int, void* ud, void*) {
    auto& s = self(ud);
    auto* st = s.find(id);
    if (!st) return 0;
    if (const auto e = st->req->finish_head(id); e != h2::error{}) {
      s.answer_status(id, status_of(e));
      return 0;
    }
    if (const auto cl = st->req->content_length(); cl && *cl > s.limits_.max_body_size) {
      s.answer_status(id, 413);
      return 0;
    }
    st->delivered = true;
    s.emit(event_kind::request, id);
    return 0;
  }
  static int on_begin_trailers(nghttp3_conn*, std::int64_t id, void* ud, void*) {
    if (auto* st = self(ud).find(id)) st->in_trailers = true;
    return 0;
  }
  static int on_recv_trailer(nghttp3_conn*, std::int64_t id, std::int32_t, nghttp3_rcbuf* name, nghttp3_rcbuf* value, std::uint8_t, void* ud,
                             void*) {
    auto* st = self(ud).find(id);
    if (!st) return 0;
    const auto n = nghttp3_rcbuf_get_buf(name), v = nghttp3_rcbuf_get_buf(value);
    st->req->add_trailer({reinterpret_cast<const char*>(n.base), n.len}, {reinterpret_cast<const char*>(v.base), v.len});
    return 0;
  }
  static int on_end_trailers(nghttp3_conn*, std::int64_t id, int, void* ud, void*) {
    auto& s = self(ud);
    auto* st = s.find(id);
    if (!st || st->gone) return 0;
    if (st->req->finish_trailers() != h2::error{}) s.reset(id, code::message_error);
    return 0;
  }
  static int on_recv_data(nghttp3_conn*, std::int64_t id, const std::uint8_t* data, std::size_t len, void* ud, void*) {
    auto& s = self(ud);
    auto* st = s.find(id);
    if (!st || !st->delivered || st->gone) {  // not wanted: its credit goes back at once
      s.actions_.push_back({action_kind::extend, id, len});
      return 0;
    }
    st->body += len;
    if (st->body > s.limits_.max_body_size || (st->req->content_length() && st->body > *st->req->content_length())) {
      s.actions_.push_back({action_kind::extend, id, len});
      if (!st->responded) s.answer_status(id, 413);
      else s.reset(id, code::message_error);
      s.emit(event_kind::reset, id);
      return 0;
    }
    s.emit(event_kind::data, id, {reinterpret_cast<const char*>(data), len});
    return 0;
  }
  static int on_deferred_consume(nghttp3_conn*, std::int64_t id, std::size_t n, void* ud, void*) {
    self(ud).actions_.push_back({action_kind::extend, id, n});
    return 0;
  }
  static int on_end_stream(nghttp3_conn*, std::int64_t id, void* ud, void*) {
    auto& s = self(ud);
    auto* st = s.find(id);
    if (!st || !st->delivered || st->gone) return 0;
    if (const auto cl = st->req->content_length(); cl && st->body != *cl) {  // RFC 9114 §4.1.2: malformed
      if (!st->responded) s.answer_status(id, 400);
      else s.reset(id, code::message_error);
      s.emit(event_kind::reset, id);
      return 0;
    }
    s.emit(event_kind::end_stream, id);
    return 0;
  }
  static int on_stop_sending(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud, void*) {
    self(ud).actions_.push_back({action_kind::shutdown_read, id, code});
    return 0;
  }
  static int on_reset_stream(nghttp3_conn*, std::int64_t id, std::uint64_t code, void* ud, void*) {
    self(ud).actions_.push_back({action_kind::shutdown_write, id, code});
    return 0;
  }
  static int on_stream_close(nghttp3_conn*, std::int64_t id, std::uint64_t, void* ud, void*) {
    auto& s = self(ud);
    auto* st = s.find(id);
    if (!st) return 0;
    if (!st->delivered) {
      s.streams_.erase(id);  // never an event: nobody will release it
      return 0;
    }
    s.emit(event_kind::closed, id);
    return 0;
  }
  static int on_acked(nghttp3_conn*, std::int64_t id, std::uint64_t n, void* ud, void*) {
    auto* st = self(ud).find(id);
    if (!st) return 0;
    st->queued -= std::min<std::uint64_t>(st->queued, n);
    while (n > 0 && !st->chunks.empty() && st->handed > 0) {
      auto& front = st->chunks.front();
      const auto left = front.size() - st->acked_in_front;
      if (n < left) {
        st->acked_in_front += n;
        break;
      }
      n -= left;
      st->chunks.pop_front();
      --st->handed;
      st->acked_in_front = 0;
    }
    return 0;
  }
  static nghttp3_ssize on_read_data(nghttp3_conn* c, std::int64_t id, nghttp3_vec* vec, std::size_t veccnt, std::uint32_t* flags, void* ud,
                                    void*) {
    auto& s = self(ud);
    auto* st = s.find(id);
    if (!st) {
      *flags |= NGHTTP3_DATA_FLAG_EOF;
      return 0;
    }
    std::size_t k = 0;
    while (k < veccnt && st->handed < st->chunks.size()) {
      auto& ch = st->chunks[st->handed++];
      vec[k++] = {reinterpret_cast<std::uint8_t*>(ch.data()), ch.size()};
    }
    if (st->handed == st->chunks.size() && st->eof) {
      *flags |= NGHTTP3_DATA_FLAG_EOF;
      if (!st->trailers.empty()) {
        *flags |= NGHTTP3_DATA_FLAG_NO_END_STREAM;
        st->trailer_nv.clear();
        for (const auto& [n, v] : st->trailers) st->trailer_nv.push_back(make_nv(n, v));
        (void)nghttp3_conn_submit_trailers(c, id, st->trailer_nv.data(), st->trailer_nv.size());
      }
      return static_cast<nghttp3_ssize>(k);
    }
    if (k == 0) {
      st->blocked_on_data = true;
      return NGHTTP3_ERR_WOULDBLOCK;
    }
    return static_cast<nghttp3_ssize>(k);
  }

  limits limits_;
  std::unique_ptr<nghttp3_conn, conn_del> conn_;
  std::unordered_map<std::int64_t, std::unique_ptr<stream>> streams_;
  std::vector<event> events_, done_events_;
  std::vector<action> actions_, done_actions_;
  std::vector<nghttp3_nv> nv_;
  std::vector<std::string> names_;
  std::string status_;
  int failed_ = 0;
  bool shutting_down_ = false;
};

}  // namespace rproxy::codec::h3
