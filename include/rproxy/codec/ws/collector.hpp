// rproxy/codec/ws/collector.hpp: a parser with its own buffer that collects whole messages and
// control frames, for tests, fuzzing and simple clients (like http1/collector.hpp). A server
// with many connections drives parser.hpp directly and keeps no message buffer.
//
//     ws::collector c{{.side = ws::role::client}};
//     c.feed(bytes_from_the_socket);           // any split
//     for (const auto& m : c.received)         // messages, pings, pongs, close, error (last)
//       if (m.what == ws::event::data) use(m.op, m.data);
//     if (c.failed()) send_close(c.received.back().code);
#pragma once

#include <rproxy/codec/ws/deflate.hpp>
#include <rproxy/codec/ws/parser.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace rproxy::codec::ws {

/// One thing received: a whole message (event::data), a ping, pong or close, or the error
/// that ended parsing.
struct received_item {
  event what = event::data;
  opcode op = opcode::text;  ///< event::data
  std::string data;          ///< message, control payload or close reason
  std::uint16_t code = 0;    ///< close: the peer's code; error: the code to send
  ws::error error{};
  friend bool operator==(const received_item&, const received_item&) = default;
};

class collector {
public:
  explicit collector(const parser_options& o = {}, const std::optional<deflate_params>& d = {}) : opt_(o), p_(opt_) {
    if (d) p_.set_deflate(*d);
  }
  collector(const collector&) = delete;  // the parser points to opt_
  collector& operator=(const collector&) = delete;

  /// Appends bytes and parses as far as they go.
  void feed(std::string_view bytes) {
    if (failed()) return;
    buf_.append(bytes);
    while (true) {
      auto r = p_.parse(std::span<char>(buf_.data(), buf_.size()));
      switch (r.what) {
        case event::need_more: break;
        case event::data:
          msg_.append(r.data);
          if (r.last) {
            received.push_back({event::data, r.op, std::move(msg_), 0, {}});
            msg_.clear();
          }
          break;
        case event::ping:
        case event::pong:
        case event::close: received.push_back({r.what, opcode::text, std::string(r.data), r.code, {}}); break;
        case event::error: received.push_back({event::error, opcode::text, {}, r.code, r.error}); break;
      }
      buf_.erase(0, r.consumed);
      if (r.what == event::need_more || r.what == event::error) return;
    }
  }

  bool failed() const noexcept { return !received.empty() && received.back().what == event::error; }
  /// Bytes held back (an incomplete header or control frame).
  std::size_t buffered() const noexcept { return buf_.size(); }
  /// Bytes of the message being received so far.
  std::size_t partial_message() const noexcept { return msg_.size(); }
  const ws::parser& parser() const noexcept { return p_; }

  std::vector<received_item> received;

private:
  parser_options opt_;  ///< the parser's options (it keeps a pointer to them)
  ws::parser p_;
  std::string buf_;
  std::string msg_;
};

}  // namespace rproxy::codec::ws
