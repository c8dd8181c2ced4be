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
  /// false: the caller closes both streams as soon as the relay succeeds, so when the second
  /// direction ends the relay leaves that stream's half-close to the close (which sends the
  /// FIN itself: one system call less per flow). TCP sockets only; other streams always get it.
  bool shutdown_last = true;
};

}  // namespace rproxy::net
