// rproxy/codec/h2/client_session.hpp: the client side of one HTTP/2 connection, sans-I/O, on
// libnghttp2 (the twin of server_session.hpp: same fields and body code, codec/h2/outbound.hpp).
// Requests in, bytes out; bytes in, per-stream response events out. No socket, no clock.
//
//     h2::client_session s{limits};                       // the preface and SETTINGS are queued
//     auto id = s.submit({"POST", "http", "api", "/x"}, fields, /*end_stream=*/false);
//     s.send_data(*id, bytes); s.end_stream(*id, trailers);  // body: s.queued(id) is the backpressure
//     write(sock, s.pending_output()); s.consume_output(n);
//     for (const auto& e : s.feed(read(sock))) {          // views into the bytes read (data)
//       switch (e.what) {
//         case client_event_kind::response: s.response(e.stream_id); break;  // status, headers
//         case client_event_kind::data: forward(e.data); break;               // then s.consume(id, n)
//         case client_event_kind::end_stream: s.response(id).trailers; break; // complete
//         case client_event_kind::reset: break;                               // e.code; no more events
//         case client_event_kind::goaway: break;                              // no new streams
//       }
//     }
//     s.release(id);                                       // after end_stream or reset
//
// Flow control: response bytes are given back to the server only by consume(id, n), so a
// stream holds at most limits.stream_window of them unread (the proxy's backpressure); the
// request body goes as the server's window allows (queued() grows otherwise).
// Bounds: a response header block (and a trailer block) of at most max_header_list_size bytes
// and max_header_count fields, else the stream is reset (PROTOCOL_ERROR) and reported as reset.
// nghttp2 checks the response (RFC 9113 §8: pseudo-header fields, content-length against the
// DATA received); interim (1xx) responses are skipped. Server push is disabled.
#pragma once

#include <nghttp2/nghttp2.h>
#include <sys/types.h>

#include <rproxy/codec/h2/error.hpp>
#include <rproxy/codec/h2/outbound.hpp>
#include <rproxy/core/result.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

namespace rproxy::codec::h2 {

struct client_limits {
  std::uint32_t max_header_list_size = 64 * 1024;  ///< a response's header (or trailer) block
  std::size_t max_header_count = 100;              ///< fields of one block
  std::uint32_t stream_window = 256 * 1024;        ///< unread response bytes per stream
  std::uint32_t connection_window = 1024 * 1024;   ///< unread response bytes over all streams
  std::size_t max_output_chunk = 256 * 1024;       ///< bytes gathered per pending_output()
};

/// What a request looks like to submit(); the rest are `fields` (http1-style name/value).
struct request_line {
  std::string_view method, scheme, authority, path;
};

struct response_field {
  std::string name, value;
};
struct response {
  unsigned status = 0;
  std::vector<response_field> headers;   ///< lowercase names, as received
  std::vector<response_field> trailers;  ///< set at end_stream when the server sent some
  std::optional<std::uint64_t> content_length;
};

enum class client_event_kind : std::uint8_t {
  response,    ///< the final response head: response(stream_id)
  data,        ///< response body bytes in `data` (give them back with consume())
  end_stream,  ///< the response is complete (trailers in response(stream_id))
  reset,       ///< the stream ended before its response completed: `code`
  goaway,      ///< the server takes no new streams (`code`); streams above its last id are reset
};

struct client_event {
  client_event_kind what = client_event_kind::response;
  std::int32_t stream_id = 0;
  std::string_view data{};
  h2::code code = h2::code::no_error;
};

class client_session {
public:
  explicit client_session(const client_limits& l = {}) : limits_(l) {
    nghttp2_session_callbacks* cb = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0) throw std::bad_alloc();
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, &on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, &on_stream_close);
    nghttp2_option* opt = nullptr;
    if (nghttp2_option_new(&opt) != 0) {
      nghttp2_session_callbacks_del(cb);
      throw std::bad_alloc();
    }
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_session* s = nullptr;
    const int rv = nghttp2_session_client_new2(&s, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) throw std::bad_alloc();
    session_.reset(s);
    const nghttp2_settings_entry iv[]{
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits_.max_header_list_size},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.stream_window},
    };
    if (nghttp2_submit_settings(session_.get(), NGHTTP2_FLAG_NONE, iv, std::size(iv)) != 0)
      throw std::invalid_argument("h2::client_session: bad limits");
    if (limits_.connection_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
      nghttp2_session_set_local_window_size(session_.get(), NGHTTP2_FLAG_NONE, 0, static_cast<std::int32_t>(limits_.connection_window));
  }
  client_session(const client_session&) = delete;  // nghttp2 holds `this`
  client_session& operator=(const client_session&) = delete;

  /// Submits a request: the pseudo-header fields from `line`, then `fields` (lowercased;
  /// connection-specific ones left out, `te: trailers` kept). With end_stream it has no body;
  /// else send it with send_data() and end_stream(). Fails when the server takes no more
  /// streams (can_submit()) or a field is refused by nghttp2.
  template <class Fields>
  result<std::int32_t> submit(const request_line& line, const Fields& fields, bool end_stream) {
    if (!can_submit()) return failure(make_error_code(std::errc::resource_unavailable_try_again));
    nv_.clear(total_size(fields) + 16);
    nv_.push(":method", line.method);
    nv_.push(":scheme", line.scheme);
    if (!line.authority.empty()) nv_.push(":authority", line.authority);
    nv_.push(":path", line.path);
    nv_.append(fields, /*trailers=*/false, /*allow_te=*/true);
    auto st = std::make_unique<stream>();
    st->body.eof = end_stream;
    nghttp2_data_provider prd{};
    prd.read_callback = &read_data;
    const std::int32_t id = nghttp2_submit_request(session_.get(), nullptr, nv_.data(), nv_.size(), end_stream ? nullptr : &prd, nullptr);
    if (id < 0) return failure(make_error_code(std::errc::invalid_argument));
    st->id = id;
    streams_[id] = std::move(st);
    ++open_;
    return id;
  }

  /// Queues request body bytes (copied); sent as the server's window allows.
  std::error_code send_data(std::int32_t id, std::string_view bytes) {
    auto* st = find(id);
    if (st == nullptr || st->closed || st->body.eof) return make_error_code(std::errc::invalid_argument);
    st->body.append(bytes);
    st->body.resume(session_.get(), id);
    return {};
  }
  /// Ends the request body, with trailers or none.
  template <class Fields>
  std::error_code end_stream(std::int32_t id, const Fields& trailers) {
    auto* st = find(id);
    if (st == nullptr || st->closed || st->body.eof) return make_error_code(std::errc::invalid_argument);
    st->body.end(trailers);
    st->body.resume(session_.get(), id);
    return {};
  }
  std::error_code end_stream(std::int32_t id) { return end_stream(id, std::vector<response_field>{}); }
  /// Request body bytes not yet handed to nghttp2 (stop reading the client while this is large).
  std::size_t queued(std::int32_t id) const noexcept {
    const auto* st = find(id);
    return st == nullptr ? 0 : st->body.queued();
  }
  /// `n` response body bytes of stream `id` were used: the server may send as many more.
  void consume(std::int32_t id, std::size_t n) {
    auto* st = find(id);
    if (st == nullptr) return;
    n = std::min(n, st->unconsumed);
    if (n == 0) return;
    st->unconsumed -= n;
    // A precaution: nghttp2 adds no WINDOW_UPDATE while one is queued unsent, so what is
    // queued is gathered first. (The unit test of consume() calls in a row passes without it
    // too; the stall seen near the end of large responses was flow/h2_upstream.hpp's.)
    gather();
    if (st->closed) nghttp2_session_consume_connection(session_.get(), n);
    else nghttp2_session_consume(session_.get(), id, n);
  }
  /// Resets stream `id` (CANCEL: the proxy's client went away).
  void reset(std::int32_t id, h2::code c = h2::code::cancel) {
    auto* st = find(id);
    if (st == nullptr || st->closed) return;
    nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, id, static_cast<std::uint32_t>(c));
  }
  /// Forgets stream `id` (reset first when still open); its unread bytes go back to the connection.
  void release(std::int32_t id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    if (!it->second->closed) nghttp2_submit_rst_stream(session_.get(), NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    if (it->second->unconsumed > 0) nghttp2_session_consume_connection(session_.get(), it->second->unconsumed);
    streams_.erase(it);
  }
  const h2::response& response(std::int32_t id) const {
    const auto* st = find(id);
    if (st == nullptr) throw std::out_of_range("h2::client_session::response: no such stream");
    return st->resp;
  }

  /// Processes bytes from the server. Returns this turn's events (and earlier ones).
  std::span<const client_event> feed(std::string_view in) {
    if (!failed_ && !in.empty()) {
      const auto rv = nghttp2_session_mem_recv(session_.get(), reinterpret_cast<const std::uint8_t*>(in.data()), in.size());
      if (rv < 0) fail();
    }
    gather();
    // A connection error nghttp2 found (it queued GOAWAY; gathered above) or the server's
    // GOAWAY with nothing left open: nothing more will come.
    if (!failed_ && nghttp2_session_want_read(session_.get()) == 0) fail();
    return take_events();
  }
  std::span<const client_event> poll() {
    gather();
    return take_events();
  }
  /// The bytes to write to the server (the preface first).
  std::string_view pending_output() {
    gather();
    return std::string_view(out_).substr(out_off_);
  }
  void consume_output(std::size_t n) noexcept {
    out_off_ += std::min(n, out_.size() - out_off_);
    if (out_off_ == out_.size()) out_.clear(), out_off_ = 0;
  }
  bool want_write() const noexcept { return out_off_ < out_.size() || (!failed_ && nghttp2_session_want_write(session_.get()) != 0); }

  /// Streams open (submitted and not yet closed).
  std::size_t open_streams() const noexcept { return open_; }
  /// The server's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until its SETTINGS came: 100 assumed).
  std::uint32_t max_streams() const noexcept {
    return settings_received_ ? nghttp2_session_get_remote_settings(session_.get(), NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS) : 100;
  }
  /// A new stream may be opened now.
  bool can_submit() const noexcept {
    return !failed_ && !going_away_ && open_ < max_streams() &&
           nghttp2_session_get_next_stream_id(session_.get()) <= static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max());
  }
  bool going_away() const noexcept { return going_away_; }
  /// The connection cannot go on (a protocol error, or the server's GOAWAY with an error).
  bool failed() const noexcept { return failed_; }
  /// Graceful end: GOAWAY; open streams finish.
  void shutdown() {
    going_away_ = true;
    nghttp2_session_terminate_session(session_.get(), NGHTTP2_NO_ERROR);
  }
  /// Nothing more to read or write.
  bool done() const noexcept {
    return out_off_ == out_.size() &&
           (failed_ || (nghttp2_session_want_read(session_.get()) == 0 && nghttp2_session_want_write(session_.get()) == 0));
  }

private:
  struct stream {
    std::int32_t id = 0;
    h2::response resp;
    h2::outbound body;  ///< the request body
    bool final_head = false, in_trailers = false, bad = false, ended = false, closed = false;
    std::size_t block_bytes = 0, block_fields = 0;
    std::size_t unconsumed = 0;
  };
  struct session_deleter {
    void operator()(nghttp2_session* s) const noexcept { nghttp2_session_del(s); }
  };
  static client_session& self(void* p) noexcept { return *static_cast<client_session*>(p); }
  stream* find(std::int32_t id) noexcept {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  const stream* find(std::int32_t id) const noexcept {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  void emit(client_event_kind k, std::int32_t id, h2::code c = code::no_error, std::string_view data = {}) {
    queue_.push_back({k, id, data, c});
  }
  std::span<const client_event> take_events() {
    batch_.swap(queue_);
    queue_.clear();
    return batch_;
  }
public:
  /// The transport ended (or failed): every open stream is reset (reset events, INTERNAL_ERROR).
  void fail() {
    if (failed_) return;
    failed_ = true;
    for (auto& [id, st] : streams_)
      if (!st->closed && !st->ended) {
        st->closed = true;
        emit(client_event_kind::reset, id, code::internal_error);
      }
    open_ = 0;
  }

private:
  void gather() {
    if (failed_) return;
    if (out_off_ > 0 && out_off_ == out_.size()) out_.clear(), out_off_ = 0;
    while (out_.size() - out_off_ < limits_.max_output_chunk) {
      const std::uint8_t* p = nullptr;
      const auto n = nghttp2_session_mem_send(session_.get(), &p);
      if (n < 0) {
        fail();
        break;
      }
      if (n == 0) break;
      out_.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
    }
  }

  // --- nghttp2 callbacks -------------------------------------------------------------------
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto* st = self(user).find(frame->hd.stream_id);
    if (st == nullptr) return 0;
    st->block_bytes = st->block_fields = 0;
    st->in_trailers = st->final_head;  // a second block after the final head: trailers
    return 0;
  }

  static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name, std::size_t namelen,
                       const std::uint8_t* value, std::size_t valuelen, std::uint8_t, void* user) {
    auto& s = self(user);
    auto* st = s.find(frame->hd.stream_id);
    if (st == nullptr || st->bad) return 0;
    st->block_bytes += namelen + valuelen + 32;
    if (++st->block_fields > s.limits_.max_header_count || st->block_bytes > s.limits_.max_header_list_size) {
      st->bad = true;
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
      return 0;
    }
    const std::string_view n(reinterpret_cast<const char*>(name), namelen), v(reinterpret_cast<const char*>(value), valuelen);
    if (st->in_trailers) {
      if (!n.empty() && n[0] != ':') st->resp.trailers.push_back({std::string(n), std::string(v)});
      return 0;
    }
    if (n == ":status") {
      unsigned status = 0;
      for (char c : v) status = status * 10 + static_cast<unsigned>(c - '0');  // nghttp2 checked: 3 digits
      st->resp.status = status;
      st->resp.headers.clear();
      st->resp.content_length.reset();
      return 0;
    }
    if (n == "content-length") {
      std::uint64_t len = 0;
      for (char c : v) len = len * 10 + static_cast<unsigned>(c - '0');  // nghttp2 checked: digits
      st->resp.content_length = len;
    }
    st->resp.headers.push_back({std::string(n), std::string(v)});
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& s = self(user);
    const auto id = frame->hd.stream_id;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) s.settings_received_ = true;
        break;
      case NGHTTP2_GOAWAY:
        s.going_away_ = true;
        s.emit(client_event_kind::goaway, 0, static_cast<h2::code>(frame->goaway.error_code));
        break;
      case NGHTTP2_HEADERS: {
        auto* st = s.find(id);
        if (st == nullptr || st->bad) break;
        if (!st->final_head) {
          if (st->resp.status < 200) break;  // interim: the next block is the head
          st->final_head = true;
          s.emit(client_event_kind::response, id);
        }
        if (end) {
          st->ended = true;
          s.emit(client_event_kind::end_stream, id);
        }
        break;
      }
      case NGHTTP2_DATA: {
        auto* st = s.find(id);
        if (st != nullptr && end && st->final_head && !st->bad) {
          st->ended = true;
          s.emit(client_event_kind::end_stream, id);
        }
        break;
      }
      default: break;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t id, const std::uint8_t* data, std::size_t len,
                           void* user) {
    auto& s = self(user);
    auto* st = s.find(id);
    if (st == nullptr || st->bad || !st->final_head) {
      nghttp2_session_consume(session, id, len);  // nobody reads it: window back at once
      return 0;
    }
    st->unconsumed += len;
    s.emit(client_event_kind::data, id, code::no_error, {reinterpret_cast<const char*>(data), len});
    return 0;
  }

  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t error_code, void* user) {
    auto& s = self(user);
    auto* st = s.find(id);
    if (st == nullptr || st->closed) return 0;
    st->closed = true;
    if (s.open_ > 0) --s.open_;
    if (!st->ended) s.emit(client_event_kind::reset, id, static_cast<h2::code>(error_code == 0 ? std::uint32_t{NGHTTP2_INTERNAL_ERROR} : error_code));
    return 0;
  }

  static ssize_t read_data(nghttp2_session* session, std::int32_t id, std::uint8_t* buf, std::size_t length, std::uint32_t* flags,
                           nghttp2_data_source*, void* user) {
    auto* st = self(user).find(id);
    if (st == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return st->body.read(session, id, buf, length, flags);
  }

  client_limits limits_;
  std::unique_ptr<nghttp2_session, session_deleter> session_;
  std::unordered_map<std::int32_t, std::unique_ptr<stream>> streams_;
  std::vector<client_event> queue_, batch_;
  std::string out_;
  std::size_t out_off_ = 0;
  h2::field_list nv_;
  std::size_t open_ = 0;
  bool settings_received_ = false, going_away_ = false, failed_ = false;
};

}  // namespace rproxy::codec::h2
