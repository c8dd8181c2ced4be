// rproxy/flow/ws_block.hpp: the YAML block of the WebSocket adapter's bounds and policies,
// declared once.
//
//     websocket:
//       max_message: 64KiB
//       send_queue: { max_messages: 256, max_bytes: 1MiB, policy: drop_oldest }
//       idle_timeout: 60s        # then a ping; no answer within as long: close 1001
//       over_limit: close        # a rate-limited message: close (1008) or drop
//
//     rproxy::flow::ws_block websocket{};           // in the app's config struct
//     c.websocket.apply(adapter, options);          // flow::ws_adapter (flow/ws.hpp), flow::options
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/duration.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/flow/ws_settings.hpp>

namespace rproxy::flow {

constexpr auto config_enum_names(slow_consumer) {
  namespace cfg = rproxy::config;
  return std::array{cfg::enum_name{"drop_oldest", slow_consumer::drop_oldest}, cfg::enum_name{"drop_newest", slow_consumer::drop_newest},
                    cfg::enum_name{"close", slow_consumer::close}};
}
constexpr auto config_enum_names(ws_over_limit) {
  namespace cfg = rproxy::config;
  return std::array{cfg::enum_name{"close", ws_over_limit::close}, cfg::enum_name{"drop", ws_over_limit::drop}};
}

/// `send_queue:` one connection's bounded send queue.
struct ws_send_queue_block {
  std::uint32_t max_messages = 256;
  config::byte_size max_bytes = config::byte_size::mib(1);
  flow::slow_consumer policy = flow::slow_consumer::drop_oldest;
  std::chrono::milliseconds write_timeout{10'000};

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&ws_send_queue_block::max_messages>("messages queued per connection"),
                       cfg::doc<&ws_send_queue_block::max_bytes>("their bytes"),
                       cfg::doc<&ws_send_queue_block::policy>(
                           "when full: drop_oldest, drop_newest, or close (1013, the client reconnects and asks for history)"),
                       cfg::doc<&ws_send_queue_block::write_timeout>("a write without progress this long ends the connection"));
  }
  void validate(config::validator& v) const {
    if (max_messages == 0) v.at(&ws_send_queue_block::max_messages).error("must be at least 1");
    if (max_bytes.bytes == 0) v.at(&ws_send_queue_block::max_bytes).error("must be at least 1");
    else if (max_bytes.bytes > max_queue_bytes_limit) v.at(&ws_send_queue_block::max_bytes).error("must be at most 1GiB");
  }
};

struct ws_block {
  config::byte_size max_message = config::byte_size::kib(64);
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds close_timeout{5'000};
  ws_send_queue_block send_queue{};
  ws_over_limit over_limit = ws_over_limit::close;
  bool deflate = true;
  std::vector<std::string> subprotocols;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&ws_block::max_message>("largest message (and frame) from a client, after decompression (1009 beyond)"),
        cfg::doc<&ws_block::handshake_timeout>("the upgrade request must arrive whole within this"),
        cfg::doc<&ws_block::idle_timeout>("no bytes from a client this long: a ping; none within as long again: close 1001"),
        cfg::doc<&ws_block::close_timeout>("after our close frame, wait this long for the client's"),
        cfg::doc<&ws_block::send_queue>("per-connection send queue and its slow-consumer policy"),
        cfg::doc<&ws_block::over_limit>("a message over a rate limit: close (1008) or drop"),
        cfg::doc<&ws_block::deflate>("accept permessage-deflate (client messages inflated; server messages sent uncompressed)"),
        cfg::doc<&ws_block::subprotocols>("subprotocols spoken, most preferred first"));
  }
  void validate(config::validator& v) const {
    if (max_message.bytes < 125 || max_message.bytes > (64u << 20)) v.at(&ws_block::max_message).error("must be between 125 and 64MiB");
    if (idle_timeout.count() <= 0) v.at(&ws_block::idle_timeout).error("must be positive");
  }

  /// Sets the adapter's bounds (`a`: a flow::ws_adapter, flow/ws.hpp) and the driver's
  /// handshake timeout (`o`: flow::options) from this block. The adapter's subprotocol views
  /// point into this block: keep it alive as long as the adapter. (A template over both, so
  /// that this header does not include the flow.)
  template <class Adapter, class Options>
  void apply(Adapter& a, Options& o) const {
    a.frames.max_frame_size = a.frames.max_message_size = max_message.bytes;
    a.idle_timeout = idle_timeout;
    a.send.max_queue_messages = send_queue.max_messages;
    a.send.max_queue_bytes = send_queue.max_bytes.bytes;
    a.send.policy = send_queue.policy;
    a.send.write_timeout = send_queue.write_timeout;
    a.send.close_timeout = close_timeout;
    a.over_limit = over_limit;
    a.deflate.enabled = deflate;
    a.subprotocols.assign(subprotocols.begin(), subprotocols.end());
    o.hello_timeout = handshake_timeout;
  }
};

}  // namespace rproxy::flow
