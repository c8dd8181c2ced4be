// rproxy/codec/h2/error.hpp: why the HTTP/2 server session refused a request or a connection,
// and the HTTP/2 error codes (RFC 9113 §7) it sends or receives.
//
// A refused request (a stream) carries an `h2::error` in its event::rejected or event::reset;
// a failed connection carries one in event::connection_error, next to the GOAWAY code sent:
//
//     for (const auto& e : session.feed(bytes, now)) {
//       if (e.what == h2::event_kind::connection_error)
//         log(make_error_code(e.error).message(), h2::to_string(e.code));  // "rapid reset", "ENHANCE_YOUR_CALM"
//     }
//
// Every code here is a downstream error (the client sent it); none is retry safe.
#pragma once

#include <rproxy/core/error.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace rproxy::codec::h2 {

enum class error {
  // requests (one stream; the connection goes on)
  malformed = 1,         ///< RFC 9113 §8.1.1 malformed request, found by nghttp2 (RST_STREAM PROTOCOL_ERROR)
  bad_field,             ///< a field name or value an HTTP/1.1 backend would not accept (400)
  bad_authority,         ///< :authority invalid, or a Host field that differs from it (400)
  bad_target,            ///< :path with characters that are not a request-target's (400)
  header_too_large,      ///< header list bytes over max_header_list_size (431)
  too_many_headers,      ///< more fields than max_header_count (431)
  trailer_too_large,     ///< trailer section over the header limits (RST_STREAM)
  body_too_large,        ///< body over max_body_size (413, or RST_STREAM once answered)
  refused,               ///< stream refused: over the concurrency limit or after GOAWAY
  cancelled,             ///< the client reset the stream
  // connections (GOAWAY, then close)
  protocol,              ///< a connection error nghttp2 found (bad frame, HPACK, flow control)
  rapid_reset,           ///< too many RST_STREAM from the client in a window (CVE-2023-44487)
  control_flood,         ///< too many SETTINGS / PING / PRIORITY / WINDOW_UPDATE frames in a window
  empty_frame_flood,     ///< too many empty DATA, HEADERS or CONTINUATION frames in a window
  continuation_flood,    ///< too many CONTINUATION frames for one header block (CVE-2024-27316)
  ack_flood,             ///< the client does not read our SETTINGS / PING ACKs (nghttp2 max_outbound_ack)
  header_timeout,        ///< a header block, or the connection preface, not whole in time
  idle_timeout,          ///< no stream for idle_timeout (a clean GOAWAY NO_ERROR)
  peer_goaway,           ///< the client sent GOAWAY with an error code
};

/// HTTP/2 error codes (RFC 9113 §7), as sent in RST_STREAM and GOAWAY.
enum class code : std::uint32_t {
  no_error = 0x0,
  protocol_error = 0x1,
  internal_error = 0x2,
  flow_control_error = 0x3,
  settings_timeout = 0x4,
  stream_closed = 0x5,
  frame_size_error = 0x6,
  refused_stream = 0x7,
  cancel = 0x8,
  compression_error = 0x9,
  connect_error = 0xa,
  enhance_your_calm = 0xb,
  inadequate_security = 0xc,
  http_1_1_required = 0xd,
};

constexpr std::string_view to_string(code c) noexcept {
  switch (c) {
    case code::no_error: return "NO_ERROR";
    case code::protocol_error: return "PROTOCOL_ERROR";
    case code::internal_error: return "INTERNAL_ERROR";
    case code::flow_control_error: return "FLOW_CONTROL_ERROR";
    case code::settings_timeout: return "SETTINGS_TIMEOUT";
    case code::stream_closed: return "STREAM_CLOSED";
    case code::frame_size_error: return "FRAME_SIZE_ERROR";
    case code::refused_stream: return "REFUSED_STREAM";
    case code::cancel: return "CANCEL";
    case code::compression_error: return "COMPRESSION_ERROR";
    case code::connect_error: return "CONNECT_ERROR";
    case code::enhance_your_calm: return "ENHANCE_YOUR_CALM";
    case code::inadequate_security: return "INADEQUATE_SECURITY";
    case code::http_1_1_required: return "HTTP_1_1_REQUIRED";
  }
  return "UNKNOWN";
}

}  // namespace rproxy::codec::h2

template <>
struct std::is_error_code_enum<rproxy::codec::h2::error> : std::true_type {};

namespace rproxy::codec::h2 {

constexpr std::string_view to_string(error e) noexcept {
  switch (e) {
    case error::malformed: return "malformed request";
    case error::bad_field: return "bad field name or value";
    case error::bad_authority: return "bad :authority or Host";
    case error::bad_target: return "bad :path";
    case error::header_too_large: return "header list too large";
    case error::too_many_headers: return "too many header fields";
    case error::trailer_too_large: return "trailer section too large";
    case error::body_too_large: return "body too large";
    case error::refused: return "stream refused";
    case error::cancelled: return "stream cancelled by the client";
    case error::protocol: return "HTTP/2 protocol error";
    case error::rapid_reset: return "rapid reset flood";
    case error::control_flood: return "control frame flood";
    case error::empty_frame_flood: return "empty frame flood";
    case error::continuation_flood: return "CONTINUATION flood";
    case error::ack_flood: return "SETTINGS/PING acknowledgement flood";
    case error::header_timeout: return "header timeout";
    case error::idle_timeout: return "idle timeout";
    case error::peer_goaway: return "client sent GOAWAY with an error";
  }
  return "unknown h2 error";
}

namespace detail {

class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.h2"; }
  std::string message(int c) const override { return std::string(to_string(static_cast<error>(c))); }
  condition source(int /*code*/) const noexcept override { return condition::downstream; }
};

}  // namespace detail

inline const rproxy::error_category& category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), category()}; }

/// The status a server answers to a request refused with `e` before its response started
/// (0: no response, the stream is reset).
constexpr unsigned status_for(error e) noexcept {
  switch (e) {
    case error::bad_field:
    case error::bad_authority:
    case error::bad_target: return 400;
    case error::header_too_large:
    case error::too_many_headers: return 431;
    case error::body_too_large: return 413;
    default: return 0;
  }
}

}  // namespace rproxy::codec::h2
