// rproxy/flow/ws_settings.hpp: the WebSocket flow's policy names and bounds (flow/ws.hpp,
// flow/ws_connection.hpp), apart from the flow, so that its config block (ws_block.hpp) need
// not compile it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace rproxy::flow {

/// What a connection does when a data frame would overflow its send queue.
enum class slow_consumer : std::uint8_t { drop_oldest, drop_newest, close };

constexpr std::string_view to_string(slow_consumer p) noexcept {
  switch (p) {
    case slow_consumer::drop_oldest: return "drop_oldest";
    case slow_consumer::drop_newest: return "drop_newest";
    case slow_consumer::close: return "close";
  }
  return "?";
}

/// The largest send queue a connection keeps, in bytes (its byte counts are 32-bit).
inline constexpr std::size_t max_queue_bytes_limit = std::size_t{1} << 30;

/// What a rate-limit refusal of a message does.
enum class ws_over_limit : std::uint8_t { close, drop };

}  // namespace rproxy::flow
