// rproxy/codec/http1/parser.hpp: a sans-I/O HTTP/1.1 request and response parser (RFC 9112).
//
// Feed it the unconsumed bytes of your receive buffer; each call returns one event and how
// many bytes to discard. It never copies: the head, trailers and body data are string_views
// into your buffer, valid until you discard those bytes.
//
//     http1::request_parser p;                  // or response_parser, see set_request_method()
//     for (;;) {
//       auto r = p.parse(buf.view());           // all unconsumed bytes, from the first one
//       switch (r.what) {
//         case http1::event::need_more: read_more_into(buf); break;   // EOF: p.finish()
//         case http1::event::head: route(p.head()); break;            // views into buf
//         case http1::event::body: forward(r.data); break;
//         case http1::event::message_complete: if (!p.keep_alive()) close(); break;
//         case http1::event::upgrade: switch_protocol(rest_of(buf)); return;  // after consume
//         case http1::event::error: send(make_error_response(status_for(r.error))); return;
//         case http1::event::end_of_stream: return;
//       }
//       buf.consume(r.consumed);                // after you are done with the views
//     }
//
// Contract: while a head, chunk-size line or trailer section is incomplete the parser answers
// need_more without consuming it; call again with those same bytes followed by new ones (it
// remembers how far it scanned, so feeding one byte at a time stays linear). Hence the
// buffer must hold a whole head (see limits.hpp). Pipelining: after message_complete the next
// call parses the next message. After event::upgrade the remaining bytes belong to the new
// protocol (101, CONNECT, or an accepted Upgrade request); a server that declines an Upgrade
// request calls resume() to go on parsing HTTP.
//
// Strictness (request smuggling defences), all errors: Content-Length together with
// Transfer-Encoding; several Content-Length fields, even identical ones; a Transfer-Encoding
// whose final coding is not chunked in a request (other codings before chunked: 501), chunked
// twice, or Transfer-Encoding in HTTP/1.0; obs-fold; bare CR or LF; whitespace before the
// colon; control characters; chunk sizes over 64 bits. Responses: TE without final chunked
// reads until close. No body for 1xx, 204, 304 and HEAD responses; 101 and 2xx to CONNECT
// end with event::upgrade.
#pragma once

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/detail/lines.hpp>
#include <rproxy/codec/http1/error.hpp>
#include <rproxy/codec/http1/limits.hpp>
#include <rproxy/codec/http1/message.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace rproxy::codec::http1 {

enum class event : std::uint8_t {
  need_more,         ///< feed more bytes (discard `consumed` first; it may be non-zero)
  head,              ///< head complete: head() and info() are valid
  body,              ///< body bytes in `data` (chunked framing removed)
  message_complete,  ///< end of the message; trailers() valid; next call parses the next one
  upgrade,           ///< end of the message, and the rest of the stream is another protocol
  end_of_stream,     ///< finish() at a message boundary: a clean close
  error,             ///< `error` says what; the parser stays failed until reset()
};

/// What one parse() or finish() call produced.
struct parse_result {
  event what = event::need_more;
  std::size_t consumed = 0;  ///< bytes of the input to discard once the event is handled
  std::string_view data{};   ///< event::body: the body bytes (inside the consumed range)
  http1::error error{};      ///< event::error: the reason

  friend bool operator==(const parse_result&, const parse_result&) = default;
};

enum class role : std::uint8_t { request, response };

/// Framing facts of the current message, valid from event::head until the next head.
struct message_info {
  http_version version = http_version::http11;
  bool keep_alive = true;       ///< the connection may carry another message afterwards
  bool upgrade = false;         ///< the message ends with event::upgrade
  bool chunked = false;         ///< Transfer-Encoding: chunked
  bool until_close = false;     ///< response body delimited by the connection close
  bool expect_continue = false; ///< request has Expect: 100-continue
  bool has_content_length = false;
  std::uint64_t content_length = 0;
};

namespace detail {

/// What the header fields said, gathered while the head is scanned.
struct head_scan {
  std::size_t cl_count = 0;
  std::uint64_t cl = 0;
  bool te = false;
  std::size_t te_chunked = 0;
  bool te_chunked_last = false;
  bool te_other = false;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
  bool upgrade = false;
  std::size_t host_count = 0;
  bool expect_continue = false;
};

/// Offsets of a field line within the unit being scanned (the buffer may move between calls).
struct field_ref {
  std::size_t name_off, name_len, value_off, value_len;
};

enum class method_kind : std::uint8_t { other, head, connect };

}  // namespace detail

template <role Role>
class basic_parser {
public:
  static constexpr bool is_request = Role == role::request;
  using head_type = std::conditional_t<is_request, request_head_view, response_head_view>;

  basic_parser() = default;
  explicit basic_parser(const http1::limits& l) : limits_(l) {}

  /// Parses from the first unconsumed byte; see the contract at the top of this file.
  parse_result parse(std::string_view in);
  template <std::size_t Extent>
  parse_result parse(std::span<const char, Extent> in) {
    return parse(std::string_view(in.data(), in.size()));
  }

  /// The peer closed the stream: ends a close-delimited body (message_complete), reports a
  /// clean close between messages (end_of_stream), or error::partial_message.
  parse_result finish() noexcept;

  /// Forgets everything but the limits (and the request method of a response parser).
  void reset() noexcept {
    state_ = state::head;
    error_ = {};
    info_ = {};
    head_ = {};
    trailers_ = {};
    body_bytes_ = remaining_ = 0;
    begin_head();
  }
  /// After event::upgrade: the upgrade was declined, go on parsing HTTP messages.
  void resume() noexcept {
    if (state_ == state::upgraded) state_ = state::head;
  }

  /// Response parser: the method of the request this response answers (HEAD responses have
  /// no body, 2xx to CONNECT is a tunnel). Sticky: 1xx interim responses do not clear it.
  void set_request_method(std::string_view method) noexcept
    requires(!is_request)
  {
    method_ = method == "HEAD"      ? detail::method_kind::head
              : method == "CONNECT" ? detail::method_kind::connect
                                    : detail::method_kind::other;
  }

  void set_limits(const http1::limits& l) noexcept { limits_ = l; }
  const http1::limits& get_limits() const noexcept { return limits_; }

  /// The head, from event::head on, as long as the caller keeps its bytes.
  const head_type& head() const noexcept { return head_; }
  /// Trailer fields of a chunked message, at event::message_complete.
  const fields_view& trailers() const noexcept { return trailers_; }
  const message_info& info() const noexcept { return info_; }
  bool keep_alive() const noexcept { return info_.keep_alive; }
  bool upgrade() const noexcept { return info_.upgrade; }
  /// Body bytes of the current message so far.
  std::uint64_t body_bytes() const noexcept { return body_bytes_; }

  http1::error last_error() const noexcept { return error_; }
  /// The last error as a code: downstream for requests, upstream for responses.
  std::error_code error_code() const noexcept {
    if (error_ == http1::error{}) return {};
    return is_request ? make_error_code(error_) : make_upstream_error_code(error_);
  }

private:
  enum class state : std::uint8_t {
    head, body_length, body_until_close, chunk_size, chunk_data, chunk_data_end, trailers,
    complete, upgraded, closed, failed
  };
  enum class scan { line, more, bad };

  parse_result fail(http1::error e) noexcept {
    error_ = e;
    state_ = state::failed;
    return {event::error, 0, {}, e};
  }
  static parse_result more(std::size_t used) noexcept { return {event::need_more, used, {}, {}}; }

  void begin_head() noexcept {
    pos_ = scan_ = 0;
    start_done_ = pending_ = false;
    hs_ = {};
    refs_.clear();
  }

  /// Finds the next complete line of `s` at pos_ and sets `line` to it without its line
  /// ending. scan::bad flags a bare LF or CR in it; callers check the line's length first, so
  /// that any split of the input gives the same error (see partial_len()).
  scan next_line(std::string_view s, std::string_view& line) noexcept {
    scan_ = std::max(scan_, pos_);
    if (scan_ >= s.size()) return scan::more;
    const void* lf = std::memchr(s.data() + scan_, '\n', s.size() - scan_);
    if (lf == nullptr) {
      scan_ = s.size();
      return scan::more;
    }
    const auto end = static_cast<std::size_t>(static_cast<const char*>(lf) - s.data());
    const bool cr = end > pos_ && s[end - 1] == '\r';
    line = s.substr(pos_, end - pos_ - (cr ? 1 : 0));
    pos_ = scan_ = end + 1;
    if (!cr || (!line.empty() && std::memchr(line.data(), '\r', line.size()) != nullptr))
      return scan::bad;
    return scan::line;
  }
  /// Lower bound of the content length of the incomplete line at pos_.
  std::size_t partial_len(std::string_view s) const noexcept {
    const auto n = s.size() > pos_ ? s.size() - pos_ : 0;
    return n - (n > 0 && s.back() == '\r' ? 1 : 0);
  }
  static detail::field_ref ref_of(std::string_view base, const field_view& f) noexcept {
    return {static_cast<std::size_t>(f.name.data() - base.data()), f.name.size(),
            static_cast<std::size_t>(f.value.data() - base.data()), f.value.size()};
  }
  void build_views(std::string_view base, std::vector<field_view>& out) const {
    out.clear();
    for (const auto& r : refs_)
      out.push_back({base.substr(r.name_off, r.name_len), base.substr(r.value_off, r.value_len)});
  }

  parse_result parse_head(std::string_view in);
  parse_result finish_head(std::string_view in, std::size_t skip);
  http1::error on_header(const field_view& f) noexcept;
  http1::error decide_framing() noexcept;
  parse_result parse_trailers(std::string_view in, std::size_t used);

  parse_result complete(std::size_t used) noexcept {
    if (info_.upgrade) {
      state_ = state::upgraded;
      return {event::upgrade, used, {}, {}};
    }
    state_ = state::head;
    return {event::message_complete, used, {}, {}};
  }

  http1::limits limits_{};
  state state_ = state::head;
  http1::error error_{};
  detail::method_kind method_ = detail::method_kind::other;  // request method (response side)
  // scanning of the current unit (head, chunk-size line or trailer section)
  std::size_t pos_ = 0;          // end of the complete lines
  std::size_t scan_ = 0;         // bytes known to hold no LF past pos_
  std::size_t fields_start_ = 0; // head: end of the start line
  bool start_done_ = false;
  bool pending_ = false;         // head: unconsumed bytes seen
  std::size_t start_a_off_ = 0, start_a_len_ = 0, start_b_off_ = 0, start_b_len_ = 0;
  detail::head_scan hs_{};
  std::vector<detail::field_ref> refs_;
  // the current message
  head_type head_{};
  std::vector<field_view> head_fields_;
  std::vector<field_view> trailer_fields_;
  fields_view trailers_{};
  message_info info_{};
  std::uint64_t remaining_ = 0;
  std::uint64_t body_bytes_ = 0;
};

using request_parser = basic_parser<role::request>;
using response_parser = basic_parser<role::response>;

}  // namespace rproxy::codec::http1

#include <rproxy/codec/http1/detail/parser_impl.hpp>
