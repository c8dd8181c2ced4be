// rproxy/codec/h2/server_session.hpp: the server side of one HTTP/2 connection, sans-I/O, on
// libnghttp2. Bytes in, per-stream events out; responses in, bytes out. No socket, no clock:
// the caller reads and writes (TCP after h2c prior knowledge, or TLS after ALPN "h2") and
// passes the time.
//
//     h2::server_session s{limits};
//     for (;;) {
//       auto n = read(sock, buf);                          // EOF: close
//       for (const auto& e : s.feed({buf, n}, now())) {    // views into buf (data)
//         switch (e.what) {
//           case h2::event_kind::request: start(s.request(e.stream_id)); break;  // a valid head
//           case h2::event_kind::data: forward(e.stream_id, e.data); break;      // then consume()
//           case h2::event_kind::end_stream: finish(e.stream_id); break;         // trailers() set
//           case h2::event_kind::reset: abort(e.stream_id); s.release(e.stream_id); break;
//           case h2::event_kind::closed: s.release(e.stream_id); break;          // all sent
//           case h2::event_kind::rejected: log(e.error); break;                  // answered by us
//           case h2::event_kind::goaway_received: break;       // no new requests from the client
//           case h2::event_kind::goaway_sent: break;           // write what is pending, then close
//         }
//       }
//       write(sock, s.pending_output()); s.consume_output(all);   // one write per turn
//       if (s.done()) close(sock);
//     }
//     // when the backend answers (any time, any order of streams):
//     s.submit_response(id, 200, fields);         // http1-style fields; hop-by-hop ones are dropped
//     s.send_data(id, bytes);                     // queued; s.queued(id) is the backpressure
//     s.end_stream(id, trailers);                 // trailers optional (gRPC status), or s.reset(id)
//     s.consume(id, n);                           // n request body bytes forwarded: window back
//     s.shutdown();                               // graceful: GOAWAY, in-flight streams finish
//     s.tick(now());                              // timeouts, at least every second while open
//
// Events of feed(), tick() and poll() are valid until the next of these calls; `data` views
// point into the bytes given to feed(). A delivered stream (one that had event::request) keeps
// its request() until release(id), which you call after its closed or reset event.
//
// Flow control (backpressure): the session does not give window back by itself
// (nghttp2_option_set_no_auto_window_update). consume(id, n) returns n bytes of window once the
// application has forwarded them, so a client can never send more than limits.stream_window
// per stream and limits.connection_window in all ahead of the backend. Bytes of refused or
// reset streams are given back by the session.
//
// Validation: nghttp2 enforces RFC 9113 §8 (pseudo-header fields present, known, once and
// first; no connection-specific fields; TE only "trailers"; lowercase names; no CR/LF/NUL;
// content-length equal to the DATA received; :protocol only when enabled) with RST_STREAM
// PROTOCOL_ERROR; the session adds what an HTTP/1.1 backend needs (valid field values, a
// request-target, Host equal to :authority) with 400, the header limits with 431 and body
// limits with 413. Such requests never become an event::request.
//
// Flood defences, per connection (limits.hpp), each ending the connection with GOAWAY
// ENHANCE_YOUR_CALM and a goaway_sent event naming it:
//   - rapid reset (CVE-2023-44487): client RST_STREAM frames per flood_window, counted with the
//     caller's clock, together with the resets the client provokes with malformed frames
//     ("MadeYouReset", CVE-2025-8671: content-length mismatch, bad trailers, ...). (Debian's nghttp2 1.52.0-1+deb12u1 has its own token bucket, burst 1000
//     and 33/s on the wall clock, answering INTERNAL_ERROR: set above ours, a second line.)
//   - SETTINGS / PING / PRIORITY floods: per flood_window; WINDOW_UPDATE: in proportion to the
//     DATA frames sent and the streams opened (a download brings them, and gRPC clients size
//     each new stream's window with one or two; a flood does not); a client that does
//     not read its ACKs: nghttp2's max_outbound_ack (it stops with NGHTTP2_ERR_FLOODED and
//     sends nothing; the session queues the GOAWAY);
//   - empty DATA (without END_STREAM), HEADERS and CONTINUATION frames: per flood_window;
//   - CONTINUATION floods (CVE-2024-27316 style): nghttp2 1.52.0-1+deb12u2 (CVE-2024-28182)
//     allows max_continuations per header block, then fails with a fatal error and sends
//     nothing; the session sends the GOAWAY. The block's bytes are bounded by
//     max_header_list_size (431), so memory stays bounded either way.
// tests/unit/codec/h2_flood_test.cpp writes each attack as raw frames.
#pragma once

#include <nghttp2/nghttp2.h>
#include <sys/types.h>

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/h2/error.hpp>
#include <rproxy/codec/h2/limits.hpp>
#include <rproxy/codec/h2/outbound.hpp>
#include <rproxy/codec/h2/request.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace rproxy::codec::h2 {

enum class event_kind : std::uint8_t {
  request,          ///< a valid request head: request(stream_id)
  data,             ///< request body bytes in `data` (give them back with consume())
  end_stream,       ///< the request is complete; request(stream_id).trailers() if it had some
  reset,            ///< a delivered stream ended before its exchange completed: `code`, `error`
  closed,           ///< a delivered stream completed both ways (call release())
  rejected,         ///< a request refused before delivery (answered 4xx or reset): `error`
  goaway_received,  ///< the client sends no new requests (`code`: its error code)
  goaway_sent,      ///< the session ends the connection: `error` says why, `code` was sent
};

struct event {
  event_kind what = event_kind::request;
  std::int32_t stream_id = 0;
  std::string_view data{};
  h2::error error{};
  h2::code code = h2::code::no_error;
};

using clock = std::chrono::steady_clock;

class server_session {
public:
  explicit server_session(const h2::limits& l = {}) : limits_(l) {
    nghttp2_session_callbacks* cb = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0) throw std::bad_alloc();
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, &on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, &on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, &on_frame_send);
    nghttp2_option* opt = nullptr;
    if (nghttp2_option_new(&opt) != 0) {
      nghttp2_session_callbacks_del(cb);
      throw std::bad_alloc();
    }
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, limits_.max_outbound_ack);
    nghttp2_option_set_max_continuations(opt, limits_.max_continuations);
    nghttp2_option_set_no_closed_streams(opt, 1);
    // nghttp2's own RST_STREAM limiter reads the wall clock: left at a bound above ours
    // (ours counts with the caller's time), so it only acts if ours is configured away.
    nghttp2_option_set_stream_reset_rate_limit(opt, std::max<std::uint64_t>(1000, 2ull * limits_.max_resets), 33);
    nghttp2_session* s = nullptr;
    const int rv = nghttp2_session_server_new2(&s, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) throw std::bad_alloc();
    session_.reset(s);

    std::vector<nghttp2_settings_entry> iv{
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits_.max_header_list_size},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.stream_window},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (limits_.enable_connect_protocol) iv.push_back({NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1});
    if (nghttp2_submit_settings(session_.get(), NGHTTP2_FLAG_NONE, iv.data(), iv.size()) != 0)
      throw std::invalid_argument("h2::server_session: bad limits");
    // The connection window starts at 65535 (RFC 9113 §6.9.2): raise it once.
    if (limits_.connection_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
      nghttp2_session_set_local_window_size(session_.get(), NGHTTP2_FLAG_NONE, 0,
                                            static_cast<std::int32_t>(limits_.connection_window));
  }
  server_session(const server_session&) = delete;  // nghttp2 holds `this`
  server_session& operator=(const server_session&) = delete;

  const h2::limits& get_limits() const noexcept { return limits_; }

  /// Processes bytes from the client (the connection preface first). Returns the events of
  /// this turn and of earlier submit/output calls; output is gathered too (pending_output()).
  std::span<const event> feed(std::string_view in, clock::time_point now) {
    now_ = now;
    start(now);
    if (!failed_ && !in.empty()) {
      const auto rv = nghttp2_session_mem_recv(session_.get(), reinterpret_cast<const std::uint8_t*>(in.data()), in.size());
      if (rv < 0 && !failed_) on_fatal(static_cast<int>(rv));
    }
    gather();
    return take_events();
  }

  /// Timeouts: the header timeout (the first request, or a header block in progress) and
  /// the idle timeout (no open stream). Call it regularly (every second or so).
  std::span<const event> tick(clock::time_point now) {
    now_ = now;
    start(now);
    if (!failed_ && !closing_) {
      bool slow = false;  // a header block in progress ties up the connection
      for (const auto& [id, st] : streams_)
        if (st->in_headers && now - st->headers_since > limits_.header_timeout) slow = true;
      if (slow) terminate(error::header_timeout, code::enhance_your_calm);
      else if (!any_request_ && now - start_ > limits_.header_timeout) terminate(error::header_timeout, code::no_error);
      else if (open_ == 0 && any_request_ && now - last_activity_ > limits_.idle_timeout)
        terminate(error::idle_timeout, code::no_error);
    }
    gather();
    return take_events();
  }

  /// Events raised since the last feed/tick/poll by submit and output calls (streams closed
  /// once their response was sent).
  std::span<const event> poll() {
    gather();
    return take_events();
  }

  /// The bytes to write to the client: everything nghttp2 has to send, gathered into one
  /// buffer (at most about limits.max_output_chunk per call; call again after writing).
  std::string_view pending_output() {
    gather();
    return std::string_view(out_).substr(out_off_);
  }
  /// `n` bytes of pending_output() were written.
  void consume_output(std::size_t n) noexcept {
    out_off_ += std::min(n, out_.size() - out_off_);
    if (out_off_ == out_.size()) out_.clear(), out_off_ = 0;
  }
  bool want_write() const noexcept { return out_off_ < out_.size() || nghttp2_session_want_write(session_.get()) != 0; }
  /// Nothing more to read or write: close the connection.
  bool done() const noexcept {
    return out_off_ == out_.size() &&
           (failed_fatal_ || (nghttp2_session_want_read(session_.get()) == 0 && nghttp2_session_want_write(session_.get()) == 0));
  }

  /// The request of a delivered stream (from event::request until release()).
  const h2::request& request(std::int32_t id) const {
    const auto* st = find(id);
    if (st == nullptr || !st->delivered) throw std::out_of_range("h2::server_session::request: no such stream");
    return st->req;
  }
  bool has_stream(std::int32_t id) const noexcept { return find(id) != nullptr; }
  /// Forgets a delivered stream after its closed or reset event (its request goes too); a
  /// stream still open is reset first (CANCEL).
  void release(std::int32_t id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    if (!it->second->closed) {
      nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
      it->second->released = true;
      return;
    }
    streams_.erase(it);
  }
  /// Streams the session holds (delivered ones until release(), others until they close).
  std::size_t streams() const noexcept { return streams_.size(); }

  /// Gives back `n` bytes of request body window on stream `id` (they were forwarded).
  void consume(std::int32_t id, std::size_t n) {
    auto* st = find(id);
    if (st == nullptr) return;
    n = std::min<std::size_t>(n, st->unconsumed);
    if (n == 0) return;
    st->unconsumed -= n;
    if (st->closed) nghttp2_session_consume_connection(session_.get(), n);
    else nghttp2_session_consume(session_.get(), id, n);
  }

  /// Submits the response head: `status` and `fields` (any range of name/value records:
  /// http1::fields, fields_view). Names are lowercased; connection-specific fields and
  /// invalid ones are left out. With end_stream the response has no body.
  template <class Fields>
  std::error_code submit_response(std::int32_t id, unsigned status, const Fields& fields, bool end_stream = false) {
    auto* st = find(id);
    if (st == nullptr || st->closed || st->response_started || status < 200 || status > 999)
      return make_error_code(std::errc::invalid_argument);
    const std::string code = std::to_string(status);
    nv_.clear(total_size(fields) + 16);
    nv_.push(":status", code);
    nv_.append(fields, /*trailers=*/false);
    nghttp2_data_provider prd{};
    prd.read_callback = &read_data;
    const int rv = nghttp2_submit_response(session_.get(), id, nv_.data(), nv_.size(), end_stream ? nullptr : &prd);
    if (rv != 0) return make_error_code(std::errc::invalid_argument);
    st->response_started = true;
    st->response_body.eof = end_stream;
    return {};
  }
  std::error_code submit_response(std::int32_t id, unsigned status, bool end_stream = false) {
    return submit_response(id, status, http1::fields{}, end_stream);
  }

  /// Queues response body bytes (copied) for stream `id`; sent as the client's window allows.
  std::error_code send_data(std::int32_t id, std::string_view bytes) {
    auto* st = find(id);
    if (st == nullptr || st->closed || !st->response_started || st->response_body.eof) return make_error_code(std::errc::invalid_argument);
    st->response_body.append(bytes);
    resume(*st);
    return {};
  }
  /// Ends the response of stream `id`, with trailers (gRPC's grpc-status) or none.
  template <class Fields>
  std::error_code end_stream(std::int32_t id, const Fields& trailers) {
    auto* st = find(id);
    if (st == nullptr || st->closed || !st->response_started || st->response_body.eof) return make_error_code(std::errc::invalid_argument);
    st->response_body.end(trailers);
    resume(*st);
    return {};
  }
  std::error_code end_stream(std::int32_t id) { return end_stream(id, http1::fields{}); }
  /// Response body bytes queued for stream `id` and not yet handed to nghttp2 (backpressure:
  /// stop reading the backend while this is large).
  std::size_t queued(std::int32_t id) const noexcept {
    const auto* st = find(id);
    return st == nullptr ? 0 : st->response_body.queued();
  }
  /// Resets stream `id` (the backend failed mid-response: INTERNAL_ERROR; gave up: CANCEL).
  void reset(std::int32_t id, h2::code c = h2::code::internal_error) {
    auto* st = find(id);
    if (st == nullptr || st->closed) return;
    nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, id, static_cast<std::uint32_t>(c));
  }

  /// Graceful shutdown: GOAWAY NO_ERROR with the last stream id received; those streams
  /// finish, newer ones are refused, then done() becomes true.
  void shutdown() {
    if (closing_ || failed_) return;
    closing_ = true;
    nghttp2_submit_goaway(session_.get(), NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_.get()),
                          NGHTTP2_NO_ERROR, nullptr, 0);
    gather();  // sent now: streams the client opens from here on are refused
  }

  /// The connection was ended by the session (a goaway_sent event), or failed.
  bool failed() const noexcept { return failed_; }
  h2::error failure() const noexcept { return failure_; }

private:
  struct stream {
    std::int32_t id = 0;
    h2::request req;
    bool in_headers = false, delivered = false, rejected = false, closed = false, released = false;
    bool in_trailers = false, request_ended = false;
    bool response_started = false, response_ended = false;
    bool stop_after_response = false;  // RST_STREAM NO_ERROR once the response is sent
    h2::error fail{};
    clock::time_point headers_since{};
    std::uint64_t body = 0;
    std::size_t unconsumed = 0;
    h2::outbound response_body;
  };
  struct session_deleter {
    void operator()(nghttp2_session* s) const noexcept { nghttp2_session_del(s); }
  };
  struct budget {
    clock::time_point since{};
    std::uint32_t count = 0;
    bool take(clock::time_point now, std::chrono::milliseconds window, std::uint32_t max) noexcept {
      if (count == 0 || now - since >= window) since = now, count = 0;
      return ++count <= max;
    }
  };

  static server_session& self(void* p) noexcept { return *static_cast<server_session*>(p); }
  stream* find(std::int32_t id) noexcept {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  const stream* find(std::int32_t id) const noexcept {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  void start(clock::time_point now) noexcept {
    if (started_) return;
    started_ = true;
    start_ = last_activity_ = now;
  }
  void emit(event_kind k, std::int32_t id, h2::error e = {}, h2::code c = code::no_error, std::string_view data = {}) {
    queue_.push_back({k, id, data, e, c});
  }
  std::span<const event> take_events() {
    batch_.swap(queue_);
    queue_.clear();
    return batch_;
  }

  /// Ends the connection: GOAWAY with `c`; nothing more is read.
  void terminate(h2::error e, h2::code c) {
    if (failed_) return;
    failed_ = true;
    failure_ = e;
    nghttp2_session_terminate_session(session_.get(), static_cast<std::uint32_t>(c));
    emit(event_kind::goaway_sent, 0, e, c);
  }
  void on_fatal(int rv) {
    if (rv == NGHTTP2_ERR_FLOODED) {
      // nghttp2 stops reading when too many ACKs wait; it queues no GOAWAY: we do.
      terminate(error::ack_flood, code::enhance_your_calm);
      return;
    }
    if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
      // nghttp2 (CVE-2024-28182 fix) stops reading past max_continuations, and sends nothing.
      terminate(error::continuation_flood, code::enhance_your_calm);
      return;
    }
    if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC && rv != NGHTTP2_ERR_NOMEM) {
      terminate(error::protocol, code::protocol_error);
      return;
    }
    // not HTTP/2 at all (a bad connection preface), or out of memory: nothing can be said.
    failed_ = true;
    failed_fatal_ = true;
    failure_ = error::protocol;
    emit(event_kind::goaway_sent, 0, error::protocol, code::protocol_error);
  }

  void gather() {
    if (failed_fatal_) return;
    if (out_off_ > 0 && out_off_ == out_.size()) out_.clear(), out_off_ = 0;
    while (out_.size() - out_off_ < limits_.max_output_chunk) {
      const std::uint8_t* p = nullptr;
      const auto n = nghttp2_session_mem_send(session_.get(), &p);
      if (n < 0) {
        failed_ = failed_fatal_ = true;
        if (failure_ == error{}) failure_ = error::protocol;
        break;
      }
      if (n == 0) break;
      out_.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    }
  }

  void resume(stream& st) { st.response_body.resume(session_.get(), st.id); }

  // --- nghttp2 callbacks -------------------------------------------------------------------
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
    auto& s = self(user);
    if (s.failed_) return NGHTTP2_ERR_CALLBACK_FAILURE;
    const auto& l = s.limits_;
    bool ok = true;
    h2::error why{};
    switch (hd->type) {
      case NGHTTP2_RST_STREAM:
        ok = s.resets_.take(s.now_, l.flood_window, l.max_resets);
        why = error::rapid_reset;
        break;
      case NGHTTP2_SETTINGS:
      case NGHTTP2_PING:
      case NGHTTP2_PRIORITY:
        ok = s.control_.take(s.now_, l.flood_window, l.max_control_frames);
        why = error::control_flood;
        break;
      case NGHTTP2_WINDOW_UPDATE:
        // a bulk download legitimately brings one per few DATA frames sent, and a client that
        // sizes each stream's window (gRPC: one or two per stream before any DATA) some per stream
        ++s.window_updates_;
        ok = s.window_updates_ <= l.max_window_updates + std::uint64_t{l.window_updates_per_data_frame} * s.data_frames_sent_ +
                                      std::uint64_t{l.window_updates_per_stream} * s.streams_opened_;
        why = error::control_flood;
        break;
      case NGHTTP2_DATA:
        if (hd->length == 0 && (hd->flags & NGHTTP2_FLAG_END_STREAM) == 0) {
          ok = s.empty_.take(s.now_, l.flood_window, l.max_empty_frames);
          why = error::empty_frame_flood;
        }
        break;
      case NGHTTP2_HEADERS:
      case NGHTTP2_CONTINUATION:
        if (hd->length == 0) {
          ok = s.empty_.take(s.now_, l.flood_window, l.max_empty_frames);
          why = error::empty_frame_flood;
        }
        break;
      default: break;
    }
    if (ok) return 0;
    s.terminate(why, code::enhance_your_calm);
    return NGHTTP2_ERR_CALLBACK_FAILURE;  // stop reading: the rest of the input is dropped
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& s = self(user);
    if (s.failed_) return NGHTTP2_ERR_CALLBACK_FAILURE;
    const auto id = frame->hd.stream_id;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto st = std::make_unique<stream>();
      st->id = id;
      st->in_headers = true;
      st->headers_since = s.now_;
      st->req.head_block_.reset(s.limits_.max_header_list_size, s.limits_.max_header_count);
      s.streams_[id] = std::move(st);
      ++s.open_;
      ++s.streams_opened_;
      return 0;
    }
    if (auto* st = s.find(id); st != nullptr && frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
      st->in_headers = st->in_trailers = true;
      st->headers_since = s.now_;
      st->req.trailer_block_.reset(s.limits_.max_header_list_size, s.limits_.max_header_count);
    }
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                       const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* user) {
    auto& s = self(user);
    if (s.failed_) return NGHTTP2_ERR_CALLBACK_FAILURE;
    auto* st = s.find(frame->hd.stream_id);
    if (st == nullptr || !st->in_headers) return 0;
    auto& block = st->in_trailers ? st->req.trailer_block_ : st->req.head_block_;
    block.add({reinterpret_cast<const char*>(name), namelen}, {reinterpret_cast<const char*>(value), valuelen});
    return 0;
  }

  static int on_frame_recv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    auto& s = self(user);
    if (s.failed_) return NGHTTP2_ERR_CALLBACK_FAILURE;
    const auto id = frame->hd.stream_id;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        auto* st = s.find(id);
        if (st == nullptr) return 0;
        st->in_headers = false;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          s.any_request_ = true;
          s.last_activity_ = s.now_;
          h2::error e = st->req.take_head(id);
          if (e == error{} && st->req.content_length() && *st->req.content_length() > s.limits_.max_body_size)
            e = error::body_too_large;
          if (e != error{}) return s.reject(session, *st, e, end);
          st->delivered = true;
          s.emit(event_kind::request, id);
          if (end) s.request_end(*st);
          return 0;
        }
        if (st->in_trailers && !st->rejected) {
          st->in_trailers = false;
          const h2::error e = st->req.take_trailers();
          if (e != error{}) return s.fail_stream(session, *st, e, code::protocol_error);
          if (end && st->delivered) s.request_end(*st);
        }
        return 0;
      }
      case NGHTTP2_DATA: {
        auto* st = s.find(id);
        if (st != nullptr && end && st->delivered && !st->rejected) s.request_end(*st);
        return 0;
      }
      case NGHTTP2_GOAWAY:
        s.emit(event_kind::goaway_received, 0, frame->goaway.error_code == NGHTTP2_NO_ERROR ? error{} : error::peer_goaway,
               static_cast<code>(frame->goaway.error_code));
        return 0;
      default: return 0;
    }
  }

  void request_end(stream& st) {
    st.request_ended = true;
    last_activity_ = now_;
    emit(event_kind::end_stream, st.id);
  }

  /// Refuses a request head: its 4xx (no body) when it has one, else RST_STREAM.
  int reject(nghttp2_session* session, stream& st, h2::error e, bool request_ended) {
    st.rejected = true;
    emit(event_kind::rejected, st.id, e);
    const unsigned status = status_for(e);
    if (status == 0) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_PROTOCOL_ERROR);
      return 0;
    }
    answer_status(session, st, status, request_ended);
    return 0;
  }
  void answer_status(nghttp2_session* session, stream& st, unsigned status, bool request_ended) {
    const std::string code = std::to_string(status);
    nghttp2_nv nv[] = {{const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(":status")),
                        const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(code.data())), 7, code.size(),
                        NGHTTP2_NV_FLAG_NONE}};
    nghttp2_submit_response(session, st.id, nv, 1, nullptr);
    st.response_started = st.response_body.eof = true;
    // RFC 9113 §8.1: a complete response before the request ended; then RST_STREAM NO_ERROR
    // stops the rest of it (once the response is sent: an RST queued now would go first).
    st.stop_after_response = !request_ended;
  }
  /// A delivered stream fails (body or trailers over a limit, bad trailers): 413 while no
  /// response started, else RST_STREAM `c`. The stream's reset event follows when it closes.
  int fail_stream(nghttp2_session* session, stream& st, h2::error e, h2::code c) {
    if (st.rejected) return 0;
    st.rejected = true;
    st.fail = e;
    if (!st.delivered) {
      emit(event_kind::rejected, st.id, e);
    }
    if (!st.response_started && status_for(e) != 0) answer_status(session, st, status_for(e), st.request_ended);
    else nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st.id, static_cast<std::uint32_t>(c));
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len,
                           void* user) {
    auto& s = self(user);
    if (s.failed_) return NGHTTP2_ERR_CALLBACK_FAILURE;
    auto* st = s.find(id);
    if (st == nullptr || !st->delivered || st->rejected) {
      nghttp2_session_consume(session, id, len);  // nobody reads it: window back at once
      return 0;
    }
    st->body += len;
    if (st->body > s.limits_.max_body_size) {
      nghttp2_session_consume(session, id, len);
      return s.fail_stream(session, *st, error::body_too_large, code::cancel);
    }
    st->unconsumed += len;
    s.last_activity_ = s.now_;
    s.emit(event_kind::data, id, {}, code::no_error, {reinterpret_cast<const char*>(data), len});
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t error_code, void* user) {
    auto& s = self(user);
    auto* st = s.find(id);
    if (st == nullptr) return 0;
    st->closed = true;
    --s.open_;
    s.last_activity_ = s.now_;
    if (st->unconsumed > 0) {
      nghttp2_session_consume_connection(s.session_.get(), st->unconsumed);
      st->unconsumed = 0;
    }
    const auto c = static_cast<code>(error_code);
    if (st->delivered) {
      const bool complete = st->request_ended && st->response_ended && !st->rejected && c == code::no_error;
      if (!st->released) {
        if (complete) s.emit(event_kind::closed, id);
        else
          s.emit(event_kind::reset, id,
                 st->fail != error{}                ? st->fail
                 : c == code::refused_stream        ? error::refused
                 : c == code::protocol_error        ? error::malformed  // nghttp2: content-length vs DATA
                                                    : error::cancelled,
                 c);
        return 0;
      }
    } else if (!st->rejected) {
      // nghttp2 refused it (malformed, over the stream limit) before its head was whole.
      s.emit(event_kind::rejected, id, c == code::refused_stream ? error::refused : error::malformed, c);
    }
    s.streams_.erase(id);
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& s = self(user);
    if (frame->hd.type == NGHTTP2_RST_STREAM && client_caused(frame->rst_stream.error_code) && !s.failed_ &&
        !s.resets_.take(s.now_, s.limits_.flood_window, s.limits_.max_resets)) {
      // "MadeYouReset" (CVE-2025-8671): malformed frames make the server reset streams whose
      // work may have started; they count with the client's own resets.
      s.terminate(error::rapid_reset, code::enhance_your_calm);
      return 0;
    }
    if (frame->hd.type == NGHTTP2_DATA) ++s.data_frames_sent_;
    if (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)
      if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0)
        if (auto* st = s.find(frame->hd.stream_id)) {
          st->response_ended = true;
          if (st->stop_after_response && !st->request_ended)
            nghttp2_submit_rst_stream(s.session_.get(), NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        }
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR && !s.failed_) {
      // nghttp2 ended the connection itself (a protocol error, a CONTINUATION flood, ...).
      s.failed_ = true;
      const auto c = static_cast<code>(frame->goaway.error_code);
      s.failure_ = c == code::enhance_your_calm ? error::continuation_flood : error::protocol;
      s.emit(event_kind::goaway_sent, 0, s.failure_, c);
    }
    return 0;
  }

  /// RST_STREAM codes the server sends because of what the client sent (not the application's
  /// own resets: INTERNAL_ERROR, CANCEL; nor NO_ERROR after a complete early response).
  static bool client_caused(std::uint32_t c) noexcept {
    return c == NGHTTP2_PROTOCOL_ERROR || c == NGHTTP2_FLOW_CONTROL_ERROR || c == NGHTTP2_STREAM_CLOSED ||
           c == NGHTTP2_FRAME_SIZE_ERROR || c == NGHTTP2_REFUSED_STREAM || c == NGHTTP2_COMPRESSION_ERROR;
  }

  static ssize_t read_data(nghttp2_session* session, std::int32_t id, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source*, void* user) {
    auto* st = self(user).find(id);
    if (st == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return st->response_body.read(session, id, buf, length, flags);
  }

  h2::limits limits_;
  std::unique_ptr<nghttp2_session, session_deleter> session_;
  std::unordered_map<std::int32_t, std::unique_ptr<stream>> streams_;
  std::vector<event> queue_, batch_;
  std::string out_;
  std::size_t out_off_ = 0;
  h2::field_list nv_;
  clock::time_point now_{}, start_{}, last_activity_{};
  budget resets_, control_, empty_;
  std::uint64_t window_updates_ = 0, data_frames_sent_ = 0, streams_opened_ = 0;
  std::size_t open_ = 0;
  bool started_ = false, any_request_ = false, closing_ = false;
  bool failed_ = false, failed_fatal_ = false;
  h2::error failure_{};
};

}  // namespace rproxy::codec::h2
