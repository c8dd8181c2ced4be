// rproxy/net/relay_options.hpp: the relay's settings (net/relay.hpp), in a header of their own
// so that config code can hold them without the relay's machinery.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace rproxy::net {

struct relay_options {
  std::size_t buffer_size = 64 * 1024;  ///< per direction: user buffer or pipe capacity
  /// No byte either way for this long ends the relay (error::idle_timeout); zero disables.
  std::chrono::steady_clock::duration idle_timeout = std::chrono::minutes(5);
  bool splice = true;  ///< use splice(2) when both streams are TCP sockets (Linux)
  /// Written to the backend before any client byte (a replayed handshake, a PROXY header).
  /// Not counted in the stats.
  std::string initial_to_backend;
  /// The relay closes both streams when it ends, well or not (for a caller that would close
  /// them at once, as a spawned flow does). Then, between two TCP sockets:
  /// - the last direction to end leaves its half-close to the close (which sends the FIN
  ///   itself: one system call less per flow);
  /// - on an io_context run by one thread, the relay watches both sockets straight from the
  ///   reactor's epoll set (detail/epoll_watch.hpp: two EPOLL_CTL_MODs at the start) rather
  ///   than through asio's state per socket and an operation per wait: an idle relay holds
  ///   about 500 bytes less, and a wait costs no allocation.
  /// false: the streams are left open (half-closed) for the caller after a relay that succeeded.
  bool close_at_end = false;
};

}  // namespace rproxy::net
