// rproxy/codec/h2/limits.hpp: the bounds of the HTTP/2 server session, per connection.
//
// Everything a client can make the session hold or do is bounded here: header bytes and
// fields, body bytes, concurrent streams, flow-control windows, frames that carry no request
// progress (the flood defences), and time. Time is never read by the session: the caller passes
// `now` to feed() and tick(), so a test is deterministic.
//
//     h2::limits lim;                    // defaults below
//     lim.max_concurrent_streams = 32;   // advertised in SETTINGS, enforced by nghttp2
//     lim.max_body_size = 1 << 20;       // 413 before the response, RST_STREAM after
//     h2::server_session s{lim};
//
// Flood budgets count frames per connection in fixed windows of `flood_window`: the window
// starts at the first counted frame and a new one starts once it has passed. Going over a
// budget ends the connection with GOAWAY ENHANCE_YOUR_CALM.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace rproxy::codec::h2 {

struct limits {
  /// SETTINGS_MAX_CONCURRENT_STREAMS: open client streams at once (nghttp2 refuses more).
  std::uint32_t max_concurrent_streams = 100;
  /// SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113 §6.5.2: name + value + 32 per field), advertised
  /// and enforced on every request header block (431) and trailer block (RST_STREAM).
  std::uint32_t max_header_list_size = 64 * 1024;
  /// Fields of one header block, pseudo-header fields included (431).
  std::size_t max_header_count = 100;
  /// Request body bytes per stream (413 before the response started, else RST_STREAM).
  std::uint64_t max_body_size = 8 * 1024 * 1024;
  /// SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a client may send on a stream before the
  /// application consumes them (server_session::consume). The backpressure per stream.
  std::uint32_t stream_window = 256 * 1024;
  /// The connection's receive window: body bytes not yet consumed, over all streams.
  std::uint32_t connection_window = 1024 * 1024;
  /// CONTINUATION frames after one HEADERS frame (nghttp2 ends the connection past this).
  std::size_t max_continuations = 8;
  /// SETTINGS and PING ACKs waiting to be written (a client that sends but does not read).
  std::size_t max_outbound_ack = 1000;
  /// Flood budgets, per flood_window (see the top of this file).
  std::chrono::milliseconds flood_window = std::chrono::seconds(10);
  std::uint32_t max_resets = 200;          ///< RST_STREAM from the client, or provoked by it (rapid reset)
  std::uint32_t max_control_frames = 500;  ///< SETTINGS, PING, PRIORITY frames
  /// WINDOW_UPDATE frames are progress while the server sends: a connection may receive
  /// max_window_updates + window_updates_per_data_frame per DATA frame sent +
  /// window_updates_per_stream per stream it opened, over its life (gRPC's client sends one or
  /// two per new stream before any response DATA: 50 concurrent calls brought 101).
  std::uint32_t max_window_updates = 100;
  std::uint32_t window_updates_per_data_frame = 4;
  std::uint32_t window_updates_per_stream = 4;
  std::uint32_t max_empty_frames = 100;    ///< empty DATA without END_STREAM, empty HEADERS/CONTINUATION
  /// From the connection's start to its first complete request head, and from a HEADERS
  /// frame to the end of its header block (slow headers tie up the whole connection).
  std::chrono::milliseconds header_timeout = std::chrono::seconds(10);
  /// No open stream for this long: the connection ends with GOAWAY NO_ERROR.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  /// Output bytes gathered per pending_output() call (more stays queued in nghttp2).
  std::size_t max_output_chunk = 256 * 1024;
  /// RFC 8441 extended CONNECT (WebSocket over HTTP/2): SETTINGS_ENABLE_CONNECT_PROTOCOL.
  bool enable_connect_protocol = false;

  friend bool operator==(const limits&, const limits&) = default;
};

}  // namespace rproxy::codec::h2
