// rproxy/rooms/ws_decoder.hpp: the rooms protocol as the WebSocket flow's message decoder
// (flow/ws.hpp): each text message is parsed once (protocol.hpp) before the pipeline sees it,
// so a rate limiter counts it by operation ("message", "join", "private_message", ...:
// operation()) and the rooms stage (rooms/stage.hpp) executes it without parsing again.
//
//     flow::ws_adapter<rooms::ws_decoder> a{.decoder = {&registry.limits()}, .hub = &hub};
//
// It reads the current limits (config/versioned.hpp) for each message, so a reload that changes
// max_request_bytes, max_name_bytes or max_message_bytes applies to the next message.
#pragma once

#include <optional>
#include <string_view>

#include <rproxy/codec/ws/frame.hpp>
#include <rproxy/config/versioned.hpp>
#include <rproxy/rooms/protocol.hpp>
#include <rproxy/rooms/rooms_block.hpp>

namespace rproxy::rooms {

/// One WebSocket message of the rooms protocol: the parsed request, or why it is unreadable.
struct ws_request {
  request req;
  std::optional<failure> error;
  /// What a rate limiter counts: the op's name, "invalid" for an unreadable request.
  std::string_view operation() const noexcept { return req.operation(); }
};

struct ws_decoder {
  using message = ws_request;
  const rproxy::config::versioned<rooms_block>* limits = nullptr;

  message decode(codec::ws::opcode op, std::string_view data) const {
    message m;
    if (op != codec::ws::opcode::text) m.error = failure{errc::bad_request, "requests are JSON text messages"};
    else m.error = parse_request(data, limits->get(), m.req);
    return m;
  }
};

}  // namespace rproxy::rooms
