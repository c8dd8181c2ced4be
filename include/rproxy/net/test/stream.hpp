// rproxy/net/test/stream.hpp: an in-memory AsyncStream pair for tests (like Beast's test::stream).
//
// Two connected streams pass bytes through shared buffers; every operation completes
// asynchronously (posted, never inline). FIN and close reach the peer as eof after the bytes
// already sent; reset() reaches it as connection_reset. A fail_count makes the n-th read or write
// (counting from 0, over every stream that shares it) fail with a given error, so a test can loop
// n from 0 until the operation succeeds and so cover every error path:
//
//     for (std::size_t n = 0;; ++n) {
//       rproxy::net::test::fail_count fc{n};
//       auto [a, b] = rproxy::net::test::make_stream_pair(ioc.get_executor(), &fc);
//       ... run the code under test over `a`, drive `b` ...
//       if (!fc.triggered()) break;   // the n-th operation never happened: success path covered
//     }
//
// Single-threaded: use a stream and its peer from one thread (one io_context run by one thread).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/socket_base.hpp>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <rproxy/core/error.hpp>

namespace rproxy::net::test {

/// The error a fail_count injects unless told otherwise.
enum class error { test_failure = 1 };

namespace detail {
class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.net.test"; }
  std::string message(int) const override { return "injected test failure"; }
  condition source(int) const noexcept override { return condition::internal; }
};
}  // namespace detail

inline std::error_code make_error_code(error e) noexcept {
  static const detail::error_category cat;
  return {static_cast<int>(e), cat};
}

/// Makes the n-th operation (0-based) of the streams that share it fail with `ec`.
class fail_count {
public:
  explicit fail_count(std::size_t n, std::error_code ec = make_error_code(error::test_failure))
      : n_(n), ec_(ec) {}

  /// Counts one operation; true (and ec set) when it is the n-th.
  bool fail(std::error_code& ec) noexcept {
    if (i_++ != n_) return false;
    ec = ec_;
    return true;
  }
  std::size_t count() const noexcept { return i_; }    ///< operations counted so far
  bool triggered() const noexcept { return i_ > n_; }  ///< the failure was injected

private:
  std::size_t n_;
  std::size_t i_ = 0;
  std::error_code ec_;
};

class stream;

namespace detail {

struct endpoint_state;

struct read_op_base {
  virtual ~read_op_base() = default;
  /// Reports `ec`, or else moves what `s` holds (up to its read size) into the buffers; then posts
  /// the completion.
  virtual void complete(endpoint_state& s, const std::error_code& ec) = 0;
};

/// One direction's receiving end: what a stream has been sent and not yet read.
struct endpoint_state {
  std::string in;
  std::unique_ptr<read_op_base> pending;  // at most one read in flight
  std::error_code remote;                 // eof (peer sent FIN or closed) or connection_reset
  bool closed = false;                    // this end was closed: reads fail
  bool send_shut = false;                 // this end shut down sending: writes fail
  std::size_t read_max = std::numeric_limits<std::size_t>::max();
  std::size_t nread = 0;

  /// What a read would report now: data (empty code), an error, or nothing yet (false).
  bool ready(std::error_code& ec) const noexcept {
    if (closed) ec = asio::error::operation_aborted;
    else if (!in.empty()) ec = {};
    else if (remote) ec = remote;
    else return false;
    return true;
  }

  /// Completes the pending read if there is something to report.
  void wake() {
    std::error_code ec;
    if (pending && ready(ec)) std::exchange(pending, nullptr)->complete(*this, ec);
  }
};

template <class Handler, class Buffers>
class read_op final : public read_op_base {
public:
  read_op(Handler&& h, const Buffers& b, const asio::any_io_executor& ex)
      : h_(std::move(h)), b_(b), work_(asio::get_associated_executor(h_, ex)) {}

  void complete(endpoint_state& s, const std::error_code& ec) override {
    std::size_t n = 0;
    if (!ec) {
      n = asio::buffer_copy(b_, asio::buffer(s.in.data(), std::min(s.in.size(), s.read_max)));
      s.in.erase(0, n);
      s.nread += n;
    }
    asio::post(work_.get_executor(), [h = std::move(h_), ec, n]() mutable { std::move(h)(ec, n); });
    work_.reset();
  }

private:
  Handler h_;
  Buffers b_;
  asio::executor_work_guard<asio::associated_executor_t<Handler, asio::any_io_executor>> work_;
};

}  // namespace detail

class stream {
public:
  using executor_type = asio::any_io_executor;

  explicit stream(const executor_type& ex, fail_count* fc = nullptr)
      : ex_(ex), fc_(fc), self_(std::make_shared<detail::endpoint_state>()) {}
  explicit stream(asio::io_context& ioc, fail_count* fc = nullptr) : stream(ioc.get_executor(), fc) {}

  stream(stream&&) noexcept = default;
  stream& operator=(stream&&) = delete;
  ~stream() {
    if (self_) close();
  }

  /// Connects two fresh streams to each other.
  void connect(stream& remote) {
    peer_ = remote.self_;
    remote.peer_ = self_;
  }

  executor_type get_executor() const noexcept { return ex_; }

  /// Caps the bytes one read_some / write_some moves (to exercise partial operations).
  void read_size(std::size_t n) noexcept { self_->read_max = std::max<std::size_t>(n, 1); }
  void write_size(std::size_t n) noexcept { write_max_ = std::max<std::size_t>(n, 1); }

  /// Bytes received and not read yet.
  std::string_view pending_input() const noexcept { return self_->in; }
  /// Puts bytes into this stream's input, as if the peer had sent them.
  void append(std::string_view s) {
    self_->in.append(s);
    self_->wake();
  }
  std::size_t bytes_read() const noexcept { return self_->nread; }
  std::size_t bytes_written() const noexcept { return nwritten_; }

  /// Closes this end: its pending read completes with operation_aborted, the peer reads eof after
  /// what was already sent, the peer's writes fail with connection_reset.
  void close() {
    if (self_->closed) return;
    self_->closed = true;
    self_->wake();
    if (auto p = peer_.lock()) {
      if (!p->remote) p->remote = asio::error::eof;
      p->wake();
    }
  }

  /// Like a socket: shutdown_send sends FIN (the peer reads eof after the data, our writes fail),
  /// shutdown_receive is accepted and does nothing.
  void shutdown(asio::socket_base::shutdown_type what, std::error_code& ec) {
    ec = {};
    if (self_->closed) {
      ec = asio::error::bad_descriptor;
      return;
    }
    if (what == asio::socket_base::shutdown_receive) return;
    self_->send_shut = true;
    if (auto p = peer_.lock()) {
      if (!p->remote) p->remote = asio::error::eof;
      p->wake();
    }
  }

  /// Aborts like a TCP RST: closes this end, the peer's reads and writes fail with
  /// connection_reset (data not yet read is lost).
  void reset() {
    if (auto p = peer_.lock()) {
      p->in.clear();
      p->remote = asio::error::connection_reset;
      p->wake();
    }
    close();
  }

  bool is_open() const noexcept { return !self_->closed; }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const MutableBufferSequence& b) {
          using op_t = detail::read_op<decltype(handler), MutableBufferSequence>;
          auto op = std::make_unique<op_t>(std::move(handler), b, ex_);
          std::error_code ec;
          if (fc_ && fc_->fail(ec)) return op->complete(*self_, ec);
          if (self_->pending) return op->complete(*self_, asio::error::in_progress);
          if (self_->closed) return op->complete(*self_, asio::error::bad_descriptor);
          if (asio::buffer_size(b) == 0) return op->complete(*self_, {});
          if (self_->ready(ec)) return op->complete(*self_, ec);
          self_->pending = std::move(op);  // completes when the peer writes, shuts down or closes
        },
        token, buffers);
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          std::error_code ec;
          std::size_t n = 0;
          if (fc_ && fc_->fail(ec)) {
          } else if (self_->closed) {
            ec = asio::error::bad_descriptor;
          } else if (self_->send_shut) {
            ec = asio::error::broken_pipe;
          } else if (auto p = peer_.lock(); !p || p->closed) {
            ec = asio::error::connection_reset;
          } else if (p->remote == asio::error::connection_reset) {
            ec = asio::error::connection_reset;
          } else {
            n = std::min(asio::buffer_size(b), write_max_);
            const std::size_t at = p->in.size();
            p->in.resize(at + n);
            asio::buffer_copy(asio::buffer(p->in.data() + at, n), b);
            nwritten_ += n;
            p->wake();
          }
          auto hex = asio::get_associated_executor(handler, ex_);
          asio::post(hex, [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
        },
        token, buffers);
  }

private:
  executor_type ex_;
  fail_count* fc_;
  std::shared_ptr<detail::endpoint_state> self_;
  std::weak_ptr<detail::endpoint_state> peer_;
  std::size_t write_max_ = std::numeric_limits<std::size_t>::max();
  std::size_t nwritten_ = 0;
};

/// Two connected streams on `ex`; both count their operations on `fc` (if given).
inline std::pair<stream, stream> make_stream_pair(const asio::any_io_executor& ex,
                                                  fail_count* fc = nullptr) {
  std::pair<stream, stream> p{stream(ex, fc), stream(ex, fc)};
  p.first.connect(p.second);
  return p;
}

}  // namespace rproxy::net::test

template <>
struct std::is_error_code_enum<rproxy::net::test::error> : std::true_type {};
