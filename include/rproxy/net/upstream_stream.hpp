// rproxy/net/upstream_stream.hpp: a connection to a backend, plain TCP or TLS over TCP, decided
// per connection at run time (a group's backends may speak TLS, another's not), behind one
// AsyncStream type: a branch per operation, no virtual call, no allocation on plain TCP.
//
//     rproxy::net::upstream_stream s(std::move(tcp_socket));          // plain
//     s.start_tls(tls_ctx.context());                                  // then: its handshake
//     co_await rproxy::net::async_client_handshake(s.tls(), tls_ctx, "api.internal", addr, 2s);
//     co_await asio::async_write(s, buffers, asio::use_awaitable);     // either way
//
// next_layer() is the TCP socket (shutdown, close, cancel, its descriptor), so the flow's and
// the relay's stream helpers (tcp_of, net::stream_traits) work on it unchanged. A TLS stream is
// closed without close_notify (the TCP close ends it; HTTP framing says where a message ends).
#pragma once

#include <rproxy/net/tls_stream.hpp>

#include <asio/any_io_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>

#include <cstddef>
#include <memory>
#include <system_error>
#include <utility>

namespace rproxy::net {

class upstream_stream {
public:
  using executor_type = asio::ip::tcp::socket::executor_type;
  using lowest_layer_type = asio::ip::tcp::socket;
  using next_layer_type = asio::ip::tcp::socket;

  explicit upstream_stream(asio::ip::tcp::socket s) : plain_(std::move(s)) {}
  /// A closed socket on `ex`, made in place (g++ -O3 warns of a moved-from temporary here).
  explicit upstream_stream(const executor_type& ex) : plain_(ex) {}

  /// Wraps the TCP socket in TLS with `ctx` (the client handshake is the caller's next step).
  void start_tls(asio::ssl::context& ctx) { tls_ = std::make_unique<tls_stream>(std::move(plain_), ctx); }

  bool is_tls() const noexcept { return tls_ != nullptr; }
  tls_stream& tls() noexcept { return *tls_; }

  asio::ip::tcp::socket& next_layer() noexcept { return tls_ ? tls_->next_layer() : plain_; }
  const asio::ip::tcp::socket& next_layer() const noexcept { return tls_ ? tls_->next_layer() : plain_; }
  asio::ip::tcp::socket& lowest_layer() noexcept { return next_layer(); }
  executor_type get_executor() noexcept { return plain_.get_executor(); }

  bool is_open() const noexcept { return next_layer().is_open(); }
  void cancel(std::error_code& ec) { next_layer().cancel(ec); }
  void close(std::error_code& ec) { next_layer().close(ec); }
  void shutdown(asio::ip::tcp::socket::shutdown_type what, std::error_code& ec) { next_layer().shutdown(what, ec); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& b, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& buffers) {
          if (tls_) tls_->async_read_some(buffers, std::move(handler));
          else plain_.async_read_some(buffers, std::move(handler));
        },
        token, b);
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& b, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& buffers) {
          if (tls_) tls_->async_write_some(buffers, std::move(handler));
          else plain_.async_write_some(buffers, std::move(handler));
        },
        token, b);
  }

private:
  asio::ip::tcp::socket plain_;        ///< the socket while plain; moved into tls_ by start_tls (its executor stays)
  std::unique_ptr<tls_stream> tls_{};  ///< the TLS stream over it (a stable address for OpenSSL)
};

}  // namespace rproxy::net
