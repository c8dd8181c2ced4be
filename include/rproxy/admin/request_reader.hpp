// rproxy/admin/request_reader.hpp: the admin endpoint's request loop without the socket.
//
// Bytes go in as they arrive; whole requests (owning head and body) come out, one at a time,
// pipelined ones included. So the loop can be tested with any split of the input, and fuzzed:
//
//     admin::request_reader rd(1 << 20);
//     rd.feed(bytes);
//     for (auto s = rd.next(); s.what == admin::request_reader::step::request; s = rd.next())
//       answer(rd.head(), rd.body(), rd.keep_alive());
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/status.hpp>

namespace rproxy::admin {

class request_reader {
public:
  enum class step {
    need_more,  ///< feed more bytes
    request,    ///< head(), body(), keep_alive() hold a whole request
    error,      ///< answer `status` and close
  };
  struct outcome {
    step what = step::need_more;
    unsigned status = 0;  ///< for step::error: 400, 413, 431, ...
  };

  explicit request_reader(std::size_t max_body) : max_body_(max_body) {}

  /// Appends received bytes.
  void feed(std::string_view bytes) {
    if (start_ > 0) {  // nothing points into the consumed part: drop it before growing
      buf_.erase(0, start_);
      start_ = 0;
    }
    buf_.append(bytes);
  }

  /// Parses what was fed: the next whole request, need_more, or an error (final).
  outcome next() {
    namespace http1 = codec::http1;
    if (failed_) return {step::error, failed_};
    if (upgraded_) return {step::need_more};  // nothing after an upgrade or CONNECT is HTTP
    for (;;) {
      const auto r = parser_.parse(std::string_view(buf_).substr(start_));
      start_ += r.consumed;  // need_more may consume too (a chunk's CRLF, a size line)
      switch (r.what) {
        case http1::event::need_more: return {step::need_more};
        case http1::event::head:
          head_ = http1::request_head::from(parser_.head());  // the views die with the buffer
          body_.clear();
          continue;
        case http1::event::body:
          if (body_.size() + r.data.size() > max_body_) return fail(413);
          body_.append(r.data);
          continue;
        case http1::event::message_complete:
        case http1::event::upgrade:
          keep_alive_ = r.what == http1::event::message_complete && parser_.info().keep_alive;
          upgraded_ = r.what == http1::event::upgrade;
          return {step::request};
        case http1::event::error: return fail(http1::status_for(r.error));
        case http1::event::end_of_stream: return {step::need_more};
      }
    }
  }

  const codec::http1::request_head& head() const noexcept { return head_; }
  std::string& body() noexcept { return body_; }
  /// The connection may carry another request after this one.
  bool keep_alive() const noexcept { return keep_alive_; }

private:
  outcome fail(unsigned status) {
    failed_ = status;
    return {step::error, status};
  }

  codec::http1::request_parser parser_;
  std::size_t max_body_;
  std::string buf_;
  std::size_t start_ = 0;  // first unconsumed byte of buf_
  bool upgraded_ = false;  // the last request was an upgrade or CONNECT: the reader is done
  codec::http1::request_head head_;
  std::string body_;
  bool keep_alive_ = false;
  unsigned failed_ = 0;
};

}  // namespace rproxy::admin
