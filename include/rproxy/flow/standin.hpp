// rproxy/flow/standin.hpp: the HTTP/1.1 side of a loopback stand-in, shared by the stand-ins for
// HTTP/2 and HTTP/3 backends (flow/h2_upstream.hpp, flow/h3_upstream.hpp). The flow driver
// connects to a stand-in in place of such a backend (flow/upstream_redirect.hpp) and speaks
// HTTP/1.1 to it; the stand-in carries each request over the backend's protocol and writes the
// response back as it arrives.
//
//     standin::listener l(io); l.open();          // l.local(): where the flow driver connects
//     l.accept([self](asio::ip::tcp::socket s) { co_spawn(io, self->serve(self, std::move(s)), detached); });
//     standin::reader in(sock);
//     while (co_await in.next_head("the HTTP/2 stand-in")) {   // false: closed, or answered 502
//       ... in.parser().head() ... in.parse() / in.consume() / co_await in.read_more() for a body
//       auto end = co_await standin::write_body(sock, std::move(head), chunked, source);
//     }
//
// write_body's source is the request's state, which the backend connection's events fill while
// the stand-in writes: a write that is under way when the last bytes or the end arrive must not
// miss them (it looks again before it waits), and an end that arrives during a write ends the
// response only after the bytes that came before it.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/socket_base.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/core/json.hpp>

namespace rproxy::flow::standin {

inline constexpr auto tuple = asio::experimental::as_tuple(asio::use_awaitable);

/// The stand-in's loopback listener: 127.0.0.1, a port of the kernel's choice (local(), the
/// redirect target), on the worker's io_context.
class listener {
public:
  explicit listener(asio::io_context& io) : acceptor_(io) {}

  std::error_code open() {
    std::error_code ec;
    const asio::ip::tcp::endpoint ep(asio::ip::make_address_v4("127.0.0.1"), 0);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) local_ = acceptor_.local_endpoint(ec);
    return ec;
  }
  const asio::ip::tcp::endpoint& local() const noexcept { return local_; }

  /// Accepts until close(), on the worker: each connection (TCP_NODELAY set) to `serve(socket)`.
  /// `serve` keeps this listener's owner alive (it holds the owner's shared_ptr).
  template <class Serve>
  void accept(Serve serve) {
    if (closed_) return;
    acceptor_.async_accept([this, serve = std::move(serve)](std::error_code ec, asio::ip::tcp::socket s) mutable {
      if (ec == asio::error::operation_aborted || closed_) return;
      if (!ec) {
        std::error_code ignored;
        s.set_option(asio::ip::tcp::no_delay(true), ignored);
        serve(std::move(s));
      }
      accept(std::move(serve));
    });
  }
  void close() {
    closed_ = true;
    std::error_code ignored;
    acceptor_.close(ignored);
  }

private:
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::endpoint local_;
  bool closed_ = false;
};

/// A complete answer of the stand-in itself (the connection closes after it): the gateway's
/// JSON error body, {"error":cause,"message":text}, with the causes its own 502 and 504 use.
inline std::string simple_response(unsigned status, std::string_view text) {
  std::string body = "{\"error\":";
  json::append_string(body, status == 504 ? "backend_timeout" : status == 503 ? "backend_busy" : "backend_failed");
  body += ",\"message\":";
  json::append_string(body, text);
  body += "}";
  std::string r = "HTTP/1.1 " + std::to_string(status) +
                  (status == 504 ? " Gateway Timeout" : status == 503 ? " Service Unavailable" : " Bad Gateway");
  r += "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  r += body;
  return r;
}

/// The gateway's requests on one stand-in connection, read as the parser needs them.
class reader {
public:
  explicit reader(asio::ip::tcp::socket& s) : s_(s), parser_(codec::http1::limits{}) {}

  codec::http1::request_parser& parser() noexcept { return parser_; }
  codec::http1::parse_result parse() { return parser_.parse(view()); }
  void consume(std::size_t n) {
    off_ += n;
    if (off_ > 64 * 1024 && off_ * 2 > in_.size()) {
      in_.erase(0, off_);
      off_ = 0;
    }
  }
  /// false: the gateway closed the connection.
  asio::awaitable<bool> read_more() {
    const auto old = in_.size();
    in_.resize(old + 16 * 1024);
    auto [ec, n] = co_await s_.async_read_some(asio::buffer(in_.data() + old, 16 * 1024), tuple);
    in_.resize(old + (ec ? 0 : n));
    co_return !ec && n > 0;
  }
  /// Reads up to the next request head (parser().head() and info() are then valid; call
  /// consume_head() when done with them). false: the gateway closed, or sent something that is
  /// not a request, which was answered with a 502 naming `who`.
  asio::awaitable<bool> next_head(std::string_view who) {
    for (;;) {
      auto pr = parse();
      if (pr.what == codec::http1::event::head) {
        head_size_ = pr.consumed;
        co_return true;
      }
      if (pr.what != codec::http1::event::need_more) {
        (void)co_await asio::async_write(s_, asio::buffer(simple_response(502, "bad request to " + std::string(who))), tuple);
        co_return false;
      }
      consume(pr.consumed);
      if (!co_await read_more()) co_return false;
    }
  }
  void consume_head() { consume(std::exchange(head_size_, 0)); }

private:
  std::string_view view() const { return std::string_view(in_).substr(off_); }

  asio::ip::tcp::socket& s_;
  codec::http1::request_parser parser_;
  std::string in_;
  std::size_t off_ = 0, head_size_ = 0;
};

enum class body_end {
  complete,      ///< the whole response went out
  gateway_gone,  ///< the write failed: the gateway closed
  cut,           ///< the backend failed mid-body, or no progress in time: the caller closes
};

/// Writes `out` (the response head) and the body as the backend delivers it: chunked (then the
/// trailers after the last chunk) or as is. `src` is the request's state:
///   std::string& body()        bytes received and not yet written (write_body empties it)
///   bool ended(), failed()     the backend's stream ended / failed
///   void credit(std::size_t)   bytes written on: the backend may send that many more
///   void trailers(std::string&) appends the trailer fields, "name: value\r\n" each
///   asio::awaitable<bool> wait() until the state changes; false: timed out
template <class Source>
asio::awaitable<body_end> write_body(asio::ip::tcp::socket& s, std::string out, bool chunked, Source& src) {
  for (;;) {
    const bool last = src.ended();  // read before the bytes: all of them are in body() by now
    auto& body = src.body();
    const auto n = body.size();
    if (n > 0) {
      if (chunked) {
        char size[24];
        const int k = std::snprintf(size, sizeof size, "%zx\r\n", n);
        out.append(size, static_cast<std::size_t>(k));
        out += body;
        out += "\r\n";
      } else {
        out += body;
      }
      body.clear();
    }
    if (last && chunked) {
      out += "0\r\n";
      src.trailers(out);
      out += "\r\n";
    }
    if (!out.empty()) {
      auto [ec, written] = co_await asio::async_write(s, asio::buffer(out), tuple);
      out.clear();
      if (ec) co_return body_end::gateway_gone;
      if (n > 0) src.credit(n);
    }
    if (last) co_return body_end::complete;
    if (src.failed()) co_return body_end::cut;
    // What arrived during the write is handled without waiting: its wake-up went to no one.
    if (src.body().empty() && !src.ended() && !co_await src.wait()) co_return body_end::cut;
  }
}

}  // namespace rproxy::flow::standin
