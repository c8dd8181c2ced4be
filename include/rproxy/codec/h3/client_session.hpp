// rproxy/codec/h3/client_session.hpp: the HTTP/3 client on nghttp3 0.8: requests out, responses
// in, many streams per connection, bodies streamed both ways with flow-control credit.
//
// It is the application of a QUIC connection: `Connection` is a template such that
// Connection<client_session> carries it (net::quic::connection, owned by a
// net::quic::client_connection, in the apps; a fake in tests and the fuzz target). It reaches
// the connection only through free functions found by argument-dependent lookup next to the
// connection type (open_bidi_stream, open_uni_stream, extend_credit, shutdown_stream*,
// schedule_write, end_error) and its app_done(): the codec includes nothing from net/.
//
//     using session = codec::h3::client_session<my_handler, net::quic::connection>;
//     net::quic::client_connection<session> c{ex, my_handler{...}};
//     auto sid = c.app().submit({.method = "GET", .authority = "api", .path = "/"}, request_tag);
//
// Handler hooks (S is the session; the tag is the caller's, given at submit):
//   void on_ready(S&)                                  requests may be submitted
//   void on_response_head(S&, uint64_t tag, response_head&)
//   void on_response_data(S&, uint64_t tag, const uint8_t*, size_t)     (credit: see submit)
//   void on_response_end(S&, uint64_t tag)             the whole response arrived
//   void on_stream_error(S&, uint64_t tag, error_code) the request failed; no more calls for it
//   void on_closed(S&, error_code)                     the connection ended (after the streams' errors)
// optional: on_stream_slots(S&) (the server allows more streams again), on_goaway(S&),
//   on_response_trailers(S&, uint64_t tag, std::vector<field>&)   the trailer section, just
//   before on_response_end (gRPC's grpc-status); without this hook trailers are dropped.
//
// Trailers are bounded like the head: at most client_limits::max_fields fields and
// max_field_bytes (names + values + 32 each); a larger section fails the stream
// (too_many_fields / fields_too_large, a reset), as the HTTP/2 client does.
//
// Submitting from inside a hook is allowed; the packets go out when the current read ends.
#pragma once

#include <nghttp3/nghttp3.h>
#include <ngtcp2/ngtcp2.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/codec/h3/client_error.hpp>
#include <rproxy/codec/h3/client_message.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::codec::h3 {

template <class Handler, template <class> class Connection>
class client_session {
public:
  using connection_type = Connection<client_session>;

  explicit client_session(Handler h, client_limits l = {}) : handler_(std::move(h)), limits_(l), fields_(l) {}
  client_session(client_session&& o) noexcept
      : handler_(std::move(o.handler_)), limits_(o.limits_), fields_(o.limits_) {}  // only before the connection starts
  client_session(const client_session&) = delete;
  client_session& operator=(const client_session&) = delete;
  client_session& operator=(client_session&&) = delete;
  ~client_session() {
    if (h3_) nghttp3_conn_del(h3_);
  }

  Handler& handler() noexcept { return handler_; }
  connection_type& connection() noexcept { return *conn_; }
  /// Requests may go (handshake done, no GOAWAY, not closed).
  bool ready() const noexcept { return ready_ && !going_away_ && !closed_; }
  bool going_away() const noexcept { return going_away_; }
  std::size_t open_streams() const noexcept { return by_id_.size(); }

  /// Submits a request; returns its stream id. With `has_body`, send the body with
  /// send_body(sid, ...) (the last call with fin). With `auto_credit` off, the handler gives the
  /// server credit for response bytes itself with consume(sid, n) once it has used them (a
  /// proxy does so as its client takes them), so a slow reader holds the stream back rather than
  /// the session buffering without bound.
  result<std::int64_t> submit(const request_head& head, std::uint64_t tag, bool has_body = false, bool auto_credit = true) {
    if (!ready()) return failure(make_error_code(client_error::not_ready));
    if (auto ec = fields_.build(head)) return failure(ec);
    auto st = take_stream();
    st->tag = tag;
    st->has_body = has_body;
    st->auto_credit = auto_credit;
    auto sid = open_bidi_stream(*conn_, static_cast<void*>(st.get()));
    if (!sid) {
      give_back(std::move(st));
      return failure(sid.error());
    }
    st->id = *sid;
    nghttp3_data_reader dr{&client_session::read_body};
    const auto nva = fields_.nva();
    if (nghttp3_conn_submit_request(h3_, *sid, nva.data(), nva.size(), has_body ? &dr : nullptr, st.get()) != 0) {
      shutdown_stream(*conn_, *sid, NGHTTP3_H3_INTERNAL_ERROR);
      give_back(std::move(st));
      return failure(make_error_code(client_error::internal));
    }
    by_id_.emplace(*sid, std::move(st));
    schedule_write(*conn_);
    return *sid;
  }

  /// Queues request body bytes (copied) on a stream submitted with has_body; `fin` ends it,
  /// with `trailers` (a request trailer section, gRPC's or any client's) sent after the body as
  /// a trailing HEADERS frame. The trailers are checked as a head's fields are (names
  /// lowercased, connection-specific fields left out, bounded by client_limits); a bad section
  /// is an error and nothing is queued.
  std::error_code send_body(std::int64_t sid, std::string_view bytes, bool fin, std::span<const field> trailers = {}) {
    auto* st = find(sid);
    if (!st || !st->has_body || st->body_fin) return make_error_code(client_error::stream_reset);
    if (fin && !trailers.empty())
      if (auto ec = trailer_fields(trailers, st->send_trailers, limits_)) return ec;
    if (!bytes.empty()) st->chunks.emplace_back(bytes);
    st->body_fin = fin;
    nghttp3_conn_resume_stream(h3_, sid);
    schedule_write(*conn_);
    return {};
  }
  /// Request body bytes queued and not yet acknowledged by the server.
  std::size_t body_buffered(std::int64_t sid) const {
    auto it = by_id_.find(sid);
    if (it == by_id_.end()) return 0;
    std::size_t n = 0;
    for (const auto& c : it->second->chunks) n += c.size();
    return n - it->second->acked;
  }

  /// Gives the server credit for `n` response bytes the handler has used (auto_credit off).
  void consume(std::int64_t sid, std::size_t n) {
    if (conn_ && !closed_) {
      extend_credit(*conn_, sid, n);
      schedule_write(*conn_);
    }
  }

  /// Cancels a request (H3_REQUEST_CANCELLED both ways); no more hooks for it.
  void cancel(std::int64_t sid) {
    if (auto* st = find(sid)) {
      st->done = true;
      shutdown_stream(*conn_, sid, NGHTTP3_H3_REQUEST_CANCELLED);
      schedule_write(*conn_);
    }
  }

  // --- the QUIC connection's hooks -------------------------------------------------------------

  /// 1-RTT keys: the control and QPACK streams.
  int on_ready(connection_type& c) {
    conn_ = &c;
    nghttp3_callbacks cb{};
    cb.acked_stream_data = [](nghttp3_conn*, std::int64_t, std::uint64_t n, void*, void* sud) {
      if (auto* st = static_cast<stream*>(sud)) st->ack(n);
      return 0;
    };
    cb.stream_close = [](nghttp3_conn*, std::int64_t sid, std::uint64_t code, void* ud, void*) {
      static_cast<client_session*>(ud)->on_stream_closed(sid, code);
      return 0;
    };
    cb.recv_data = [](nghttp3_conn*, std::int64_t sid, const std::uint8_t* data, std::size_t len, void* ud, void* sud) {
      auto& s = *static_cast<client_session*>(ud);
      auto* st = static_cast<stream*>(sud);
      if (!st || st->done || st->auto_credit) extend_credit(*s.conn_, sid, len);
      if (st && !st->done) s.handler_.on_response_data(s, st->tag, data, len);
      return 0;
    };
    cb.deferred_consume = [](nghttp3_conn*, std::int64_t sid, std::size_t n, void* ud, void*) {
      extend_credit(*static_cast<client_session*>(ud)->conn_, sid, n);
      return 0;
    };
    cb.begin_headers = [](nghttp3_conn*, std::int64_t, void*, void* sud) {
      if (auto* st = static_cast<stream*>(sud)) st->response.begin();
      return 0;
    };
    cb.recv_header = [](nghttp3_conn*, std::int64_t sid, std::int32_t, nghttp3_rcbuf* name, nghttp3_rcbuf* value, std::uint8_t,
                        void* ud, void* sud) {
      auto* st = static_cast<stream*>(sud);
      if (!st || st->done) return 0;
      const auto n = nghttp3_rcbuf_get_buf(name);
      const auto v = nghttp3_rcbuf_get_buf(value);
      if (auto ec = st->response.add({reinterpret_cast<const char*>(n.base), n.len}, {reinterpret_cast<const char*>(v.base), v.len}))
        static_cast<client_session*>(ud)->fail(sid, *st, ec);
      return 0;
    };
    cb.end_headers = [](nghttp3_conn*, std::int64_t sid, int, void* ud, void* sud) {
      auto& s = *static_cast<client_session*>(ud);
      auto* st = static_cast<stream*>(sud);
      if (!st || st->done) return 0;
      if (auto ec = st->response.finish()) {
        s.fail(sid, *st, ec);
        return 0;
      }
      if (st->response.interim()) return 0;  // 1xx: the final head follows
      st->head_seen = true;
      s.handler_.on_response_head(s, st->tag, st->response.head());
      return 0;
    };
    cb.begin_trailers = [](nghttp3_conn*, std::int64_t, void*, void* sud) {
      if (auto* st = static_cast<stream*>(sud)) {
        st->trailers.clear();
        st->trailer_bytes = 0;
      }
      return 0;
    };
    cb.recv_trailer = [](nghttp3_conn*, std::int64_t sid, std::int32_t, nghttp3_rcbuf* name, nghttp3_rcbuf* value, std::uint8_t,
                         void* ud, void* sud) {
      auto& s = *static_cast<client_session*>(ud);
      auto* st = static_cast<stream*>(sud);
      if (!st || st->done) return 0;
      const auto n = nghttp3_rcbuf_get_buf(name);
      const auto v = nghttp3_rcbuf_get_buf(value);
      st->trailer_bytes += n.len + v.len + 32;
      if (st->trailers.size() >= s.limits_.max_fields) s.fail(sid, *st, make_error_code(client_error::too_many_fields));
      else if (st->trailer_bytes > s.limits_.max_field_bytes) s.fail(sid, *st, make_error_code(client_error::fields_too_large));
      else if (n.len > 0 && n.base[0] != ':')  // (nghttp3 refuses pseudo-headers in trailers itself)
        st->trailers.push_back({std::string(reinterpret_cast<const char*>(n.base), n.len), std::string(reinterpret_cast<const char*>(v.base), v.len)});
      return 0;
    };
    cb.end_stream = [](nghttp3_conn*, std::int64_t sid, void* ud, void* sud) {
      auto& s = *static_cast<client_session*>(ud);
      auto* st = static_cast<stream*>(sud);
      if (!st || st->done) return 0;
      if (!st->head_seen) {
        s.fail(sid, *st, make_error_code(client_error::bad_status));
        return 0;
      }
      st->done = true;
      if constexpr (requires { s.handler_.on_response_trailers(s, st->tag, st->trailers); })
        if (!st->trailers.empty()) s.handler_.on_response_trailers(s, st->tag, st->trailers);
      s.handler_.on_response_end(s, st->tag);
      return 0;
    };
    cb.stop_sending = [](nghttp3_conn*, std::int64_t sid, std::uint64_t code, void* ud, void*) {
      shutdown_stream_read(*static_cast<client_session*>(ud)->conn_, sid, code);
      return 0;
    };
    cb.reset_stream = [](nghttp3_conn*, std::int64_t sid, std::uint64_t code, void* ud, void*) {
      shutdown_stream_write(*static_cast<client_session*>(ud)->conn_, sid, code);
      return 0;
    };
    cb.shutdown = [](nghttp3_conn*, std::int64_t, void* ud) {
      auto& s = *static_cast<client_session*>(ud);
      s.going_away_ = true;
      if constexpr (requires { s.handler_.on_goaway(s); }) s.handler_.on_goaway(s);
      return 0;
    };
    nghttp3_settings settings;
    nghttp3_settings_default(&settings);
    settings.max_field_section_size = limits_.max_field_bytes;
    settings.qpack_max_dtable_capacity = 4096;
    settings.qpack_blocked_streams = 100;
    if (nghttp3_conn_client_new(&h3_, &cb, &settings, nullptr, this) != 0) return -1;
    auto ctrl = open_uni_stream(c);
    auto qenc = open_uni_stream(c);
    auto qdec = open_uni_stream(c);
    if (!ctrl || !qenc || !qdec) return -1;
    if (nghttp3_conn_bind_control_stream(h3_, *ctrl) != 0) return -1;
    if (nghttp3_conn_bind_qpack_streams(h3_, *qenc, *qdec) != 0) return -1;
    return 0;
  }

  void on_handshake_completed(connection_type& c) {
    conn_ = &c;
    ready_ = true;
    handler_.on_ready(*this);
  }

  int on_stream_data(connection_type& c, std::int64_t sid, std::span<const std::uint8_t> data, bool fin) {
    if (!h3_) return -1;
    const auto n = nghttp3_conn_read_stream(h3_, sid, data.data(), data.size(), fin ? 1 : 0);
    if (n < 0) return -1;  // nghttp3 treats what it cannot read as a connection error
    extend_credit(c, sid, static_cast<std::size_t>(n));  // DATA payload is credited in recv_data / deferred_consume
    return 0;
  }
  int on_acked(connection_type&, std::int64_t sid, std::uint64_t n) { return h3_ && nghttp3_conn_add_ack_offset(h3_, sid, n) != 0 ? -1 : 0; }
  int on_stream_close(connection_type&, std::int64_t sid, std::uint64_t code, bool app_code) {
    if (!h3_) return 0;
    const int rv = nghttp3_conn_close_stream(h3_, sid, app_code ? code : NGHTTP3_H3_NO_ERROR);
    return rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND ? 0 : -1;
  }
  int on_stream_reset(connection_type&, std::int64_t sid, std::uint64_t code) {
    if (!h3_) return 0;
    if (auto* st = find(sid); st && !st->done)
      fail(sid, *st, make_error_code(code == NGHTTP3_H3_REQUEST_REJECTED ? client_error::request_rejected : client_error::stream_reset));
    const int rv = nghttp3_conn_shutdown_stream_read(h3_, sid);
    return rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND ? 0 : -1;
  }
  int on_extend_stream(connection_type&, std::int64_t sid) {
    const int rv = h3_ ? nghttp3_conn_unblock_stream(h3_, sid) : 0;
    return rv == 0 || rv == NGHTTP3_ERR_STREAM_NOT_FOUND ? 0 : -1;
  }
  int on_extend_streams_bidi(connection_type&, std::uint64_t) { return 0; }  // (the server opens none)
  void on_streams_available(connection_type&) {
    if constexpr (requires { handler_.on_stream_slots(*this); })
      if (ready()) handler_.on_stream_slots(*this);
  }
  std::ptrdiff_t writev(std::int64_t& sid, bool& fin, std::span<ngtcp2_vec> vec) {
    if (!h3_) return 0;
    static_assert(sizeof(ngtcp2_vec) == sizeof(nghttp3_vec));
    int f = 0;
    const auto r = nghttp3_conn_writev_stream(h3_, &sid, &f, reinterpret_cast<nghttp3_vec*>(vec.data()), vec.size());
    fin = f != 0;
    return r < 0 ? -1 : r;
  }
  int wrote(std::int64_t sid, std::size_t n) { return h3_ && nghttp3_conn_add_write_offset(h3_, sid, n) != 0 ? -1 : 0; }
  void blocked(std::int64_t sid) {
    if (h3_) nghttp3_conn_block_stream(h3_, sid);
  }
  void shut_wr(std::int64_t sid) {
    if (h3_) nghttp3_conn_shutdown_stream_write(h3_, sid);
  }
  void on_closed(connection_type& c) {
    conn_ = &c;
    closed_ = true;
    const auto ec = end_error(c);
    // Every open request fails first: the server may have processed it (not retry-safe), unless
    // the handshake never finished (then nothing was sent).
    const auto stream_ec = ready_ ? make_error_code(client_error::connection_lost) : make_error_code(client_error::not_ready);
    auto open = std::move(by_id_);
    by_id_.clear();
    for (auto& [sid, st] : open)
      if (!st->done) {
        st->done = true;
        handler_.on_stream_error(*this, st->tag, stream_ec);
      }
    handler_.on_closed(*this, ec);
    c.app_done();
  }

private:
  struct stream {
    std::int64_t id = -1;
    std::uint64_t tag = 0;
    bool has_body = false, body_fin = false, auto_credit = true, head_seen = false, done = false;
    std::deque<std::string> chunks;  // request body: handed to nghttp3 up to `given`, freed as acked
    std::size_t given = 0;
    std::size_t acked = 0;  // bytes of chunks.front() acknowledged
    response_builder response;
    std::vector<field> trailers;  // the response's trailer section, passed on at its end
    std::size_t trailer_bytes = 0;
    std::vector<field> send_trailers;  // the request's trailer section, sent after its body
    std::vector<nghttp3_nv> send_trailer_nv;
    explicit stream(client_limits l) : response(l) {}
    void ack(std::uint64_t n) {
      acked += static_cast<std::size_t>(n);
      while (!chunks.empty() && given > 0 && acked >= chunks.front().size()) {
        acked -= chunks.front().size();
        chunks.pop_front();
        --given;
      }
    }
    void reset() {
      id = -1;
      has_body = body_fin = head_seen = done = false;
      auto_credit = true;
      chunks.clear();
      given = acked = 0;
      trailers.clear();
      trailer_bytes = 0;
      send_trailers.clear();
      send_trailer_nv.clear();
    }
  };

  static nghttp3_ssize read_body(nghttp3_conn* h3, std::int64_t sid, nghttp3_vec* vec, std::size_t n, std::uint32_t* flags, void*, void* sud) {
    auto* st = static_cast<stream*>(sud);
    std::size_t k = 0;
    while (k < n && st->given < st->chunks.size()) {
      auto& c = st->chunks[st->given++];
      vec[k++] = {reinterpret_cast<std::uint8_t*>(c.data()), c.size()};
    }
    if (st->given == st->chunks.size() && st->body_fin) {
      *flags |= NGHTTP3_DATA_FLAG_EOF;
      if (!st->send_trailers.empty() && st->send_trailer_nv.empty()) {
        // The body ends here but the stream does not: the trailer section closes it.
        *flags |= NGHTTP3_DATA_FLAG_NO_END_STREAM;
        for (const auto& f : st->send_trailers) st->send_trailer_nv.push_back(detail::make_nv(f.name, f.value));
        if (nghttp3_conn_submit_trailers(h3, sid, st->send_trailer_nv.data(), st->send_trailer_nv.size()) != 0) return NGHTTP3_ERR_CALLBACK_FAILURE;
      }
    } else if (k == 0) return NGHTTP3_ERR_WOULDBLOCK;
    return static_cast<nghttp3_ssize>(k);
  }

  stream* find(std::int64_t sid) {
    auto it = by_id_.find(sid);
    return it == by_id_.end() ? nullptr : it->second.get();
  }
  std::unique_ptr<stream> take_stream() {
    if (free_.empty()) return std::make_unique<stream>(limits_);
    auto st = std::move(free_.back());
    free_.pop_back();
    return st;
  }
  void give_back(std::unique_ptr<stream> st) {
    st->reset();
    if (free_.size() < 256) free_.push_back(std::move(st));
  }

  void fail(std::int64_t sid, stream& st, std::error_code ec) {
    if (st.done) return;
    st.done = true;
    shutdown_stream(*conn_, sid, ec == client_error::stream_reset || ec == client_error::request_rejected ? NGHTTP3_H3_REQUEST_CANCELLED
                                                                                                           : NGHTTP3_H3_MESSAGE_ERROR);
    handler_.on_stream_error(*this, st.tag, ec);
  }

  void on_stream_closed(std::int64_t sid, std::uint64_t code) {
    auto it = by_id_.find(sid);
    if (it == by_id_.end()) return;
    auto st = std::move(it->second);
    by_id_.erase(it);
    if (!st->done) {
      st->done = true;
      handler_.on_stream_error(*this, st->tag,
                               make_error_code(code == NGHTTP3_H3_REQUEST_REJECTED ? client_error::request_rejected : client_error::stream_reset));
    }
    give_back(std::move(st));
  }

  Handler handler_;
  client_limits limits_;
  request_fields fields_;
  nghttp3_conn* h3_ = nullptr;
  connection_type* conn_ = nullptr;
  std::unordered_map<std::int64_t, std::unique_ptr<stream>> by_id_;
  std::vector<std::unique_ptr<stream>> free_;
  bool ready_ = false;
  bool going_away_ = false;
  bool closed_ = false;
};

}  // namespace rproxy::codec::h3
