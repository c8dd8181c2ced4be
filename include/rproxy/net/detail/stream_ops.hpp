// rproxy/net/detail/stream_ops.hpp: how the relay half-closes and closes any AsyncStream.
//
// Found by shape, so sockets, the test stream and layered streams work unchanged; a stream
// that needs something else (a TLS stream sending close_notify) specializes
// rproxy::net::stream_traits (relay.hpp) instead.
#pragma once

#include <asio/socket_base.hpp>

#include <system_error>

namespace rproxy::net::detail {

template <class S>
concept has_shutdown = requires(S& s, std::error_code& ec) {
  s.shutdown(asio::socket_base::shutdown_send, ec);
};
template <class S>
concept has_close_ec = requires(S& s, std::error_code& ec) { s.close(ec); };
template <class S>
concept has_close = requires(S& s) { s.close(); };
template <class S>
concept has_next_layer = requires(S& s) { s.next_layer(); };

/// Sends FIN: s.shutdown(shutdown_send, ec), else on next_layer(); a stream with neither
/// cannot half-close and is left as is.
template <class S>
void shutdown_send(S& s, std::error_code& ec) {
  ec = {};
  if constexpr (has_shutdown<S>) s.shutdown(asio::socket_base::shutdown_send, ec);
  else if constexpr (has_next_layer<S>) detail::shutdown_send(s.next_layer(), ec);
}

/// Closes, cancelling pending operations: s.close(ec), s.close(), else on next_layer().
template <class S>
void close(S& s) noexcept {
  if constexpr (has_close_ec<S>) {
    std::error_code ignored;
    s.close(ignored);
  } else if constexpr (has_close<S>) {
    try {
      s.close();
    } catch (...) {  // closing must not fail the relay; the stream is gone either way
    }
  } else if constexpr (has_next_layer<S>) {
    detail::close(s.next_layer());
  } else {
    static_assert(has_next_layer<S>,
                  "rproxy::net relay: the stream has no close(ec), close() or next_layer(); "
                  "specialize rproxy::net::stream_traits for it");
  }
}

}  // namespace rproxy::net::detail
