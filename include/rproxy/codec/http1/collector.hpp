// rproxy/codec/http1/collector.hpp: a buffered driver that turns bytes into whole owning
// messages. For tests, fuzzing, tools and small bodies (admin endpoint); the data path drives
// basic_parser itself and streams bodies.
//
//     http1::request_collector c;
//     c.feed("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
//     c.messages().size();           // 2 (pipelined)
//     c.messages()[1].head.target;   // "/b"
//     c.finish();                    // peer closed: ends a close-delimited response body
//
// It also shows how to drive the parser from a growing buffer: parse the unconsumed bytes,
// handle the event, then discard `consumed`.
#pragma once

#include <rproxy/codec/http1/error.hpp>
#include <rproxy/codec/http1/limits.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/parser.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace rproxy::codec::http1 {

/// One whole message, owning its head, body and trailers.
template <role Role>
struct basic_message {
  using head_type = std::conditional_t<Role == role::request, request_head, response_head>;
  head_type head{};
  std::string body{};
  fields trailers{};
  bool keep_alive = true;
  bool upgrade = false;  ///< the message ended with event::upgrade
  friend bool operator==(const basic_message&, const basic_message&) = default;
};
using request = basic_message<role::request>;
using response = basic_message<role::response>;

template <role Role>
class basic_collector {
public:
  using message_type = basic_message<Role>;
  using parser_type = basic_parser<Role>;

  basic_collector() = default;
  explicit basic_collector(const http1::limits& l) : parser_(l) {}

  /// The parser, e.g. for set_request_method() on a response collector.
  parser_type& parser() noexcept { return parser_; }

  /// Appends bytes and parses as far as they go. False once the stream is over (error,
  /// upgrade or end): later bytes are kept in rest() and not parsed.
  bool feed(std::string_view bytes) {
    buf_.append(bytes);
    if (!done_) drain();
    return !done_;
  }

  /// The peer closed the stream.
  bool finish() {
    if (done_) return false;
    handle(parser_.finish());
    done_ = true;
    return false;
  }

  const std::vector<message_type>& messages() const noexcept { return messages_; }
  /// Events seen, with consecutive body events merged into one (a split-independent record).
  const std::vector<event>& events() const noexcept { return events_; }
  http1::error last_error() const noexcept { return parser_.last_error(); }
  bool failed() const noexcept { return parser_.last_error() != http1::error{}; }
  bool upgraded() const noexcept { return upgraded_; }
  /// Bytes not consumed: after an upgrade, the start of the new protocol's stream.
  std::string_view rest() const noexcept { return std::string_view(buf_).substr(off_); }

private:
  void drain() {
    for (;;) {
      const auto r = parser_.parse(std::string_view(buf_).substr(off_));
      handle(r);
      off_ += r.consumed;
      if (r.what == event::need_more) {
        buf_.erase(0, off_);
        off_ = 0;
        return;
      }
      if (done_) return;
    }
  }

  void handle(const parse_result& r) {
    if (r.what != event::need_more && !(r.what == event::body && !events_.empty() &&
                                        events_.back() == event::body))
      events_.push_back(r.what);
    switch (r.what) {
      case event::need_more: break;
      case event::head:
        current_ = {};
        current_.head = message_type::head_type::from(parser_.head());
        break;
      case event::body: current_.body.append(r.data); break;
      case event::upgrade:
      case event::message_complete:
        current_.trailers = fields::from(parser_.trailers());
        current_.keep_alive = parser_.keep_alive();
        current_.upgrade = r.what == event::upgrade;
        messages_.push_back(std::move(current_));
        current_ = {};
        if (r.what == event::upgrade) upgraded_ = done_ = true;
        break;
      case event::end_of_stream:
      case event::error: done_ = true; break;
    }
  }

  parser_type parser_{};
  std::string buf_;
  std::size_t off_ = 0;
  bool done_ = false;
  bool upgraded_ = false;
  message_type current_{};
  std::vector<message_type> messages_;
  std::vector<event> events_;
};

using request_collector = basic_collector<role::request>;
using response_collector = basic_collector<role::response>;

}  // namespace rproxy::codec::http1
