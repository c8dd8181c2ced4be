// rproxy/codec/http1/error.hpp: errors of the HTTP/1.1 parser, and the status a server answers.
//
// Every parse error is one `http1::error`. A request parser reports it as a downstream error
// (the client sent it), a response parser as an upstream one (the backend did):
//
//     auto r = parser.parse(buf);
//     if (r.what == http1::event::error) {
//       send(http1::make_error_response(http1::status_for(r.error)));   // 400, 413, 414, ...
//       log(parser.error_code().message());    // == rproxy::condition::downstream for requests
//     }
//
// `need_more` is not an error: it is an ordinary parser event (see parser.hpp).
#pragma once

#include <rproxy/core/error.hpp>

#include <string>
#include <system_error>

namespace rproxy::codec::http1 {

enum class error {
  // start line
  bad_method = 1,         ///< method is not a token
  bad_target,             ///< request-target has invalid characters or the wrong form
  bad_version,            ///< not "HTTP/" DIGIT "." DIGIT
  version_not_supported,  ///< well formed, but not HTTP/1.0 or HTTP/1.1 (505)
  bad_status,             ///< status line: status code is not 3 digits in 100..599
  bad_reason,             ///< status line: reason phrase has a control character
  // lines and fields
  bad_line_ending,      ///< bare LF or bare CR: every line must end with CRLF
  bad_field_name,       ///< field name empty, missing colon, or not a token
  space_before_colon,   ///< whitespace between field name and colon (RFC 9112 §5.1)
  bad_field_value,      ///< control character (NUL, DEL, ...) in a field value
  obs_fold,             ///< line folding: a field line starting with SP or HTAB
  bad_host,             ///< HTTP/1.1 request without Host, several Host fields, or invalid Host
  // body framing (RFC 9112 §6)
  bad_content_length,                     ///< Content-Length not 1*DIGIT, or overflows
  multiple_content_length,                ///< several Content-Length fields or list values
  content_length_with_transfer_encoding,  ///< both framings at once: a smuggling vector
  bad_transfer_encoding,          ///< chunked missing, not final, repeated, or on HTTP/1.0
  unsupported_transfer_encoding,  ///< request coding other than chunked (501)
  bad_chunk,                      ///< malformed chunk-size line, extension, or chunk end
  chunk_size_overflow,            ///< chunk size does not fit 64 bits
  // limits (see limits.hpp)
  start_line_too_long,  ///< request line (414) or status line longer than the limit
  header_too_large,     ///< field section bytes over the limit (431)
  too_many_headers,     ///< more field lines than the limit (431)
  chunk_line_too_long,  ///< chunk-size line (with extensions) over the limit
  body_too_large,       ///< body over the limit (413)
  trailer_too_large,    ///< trailer section bytes or count over the limit (431)
  // stream
  partial_message,  ///< the stream ended in the middle of a message
};

}  // namespace rproxy::codec::http1

template <>
struct std::is_error_code_enum<rproxy::codec::http1::error> : std::true_type {};

namespace rproxy::codec::http1 {

namespace detail {

inline const char* error_message(error e) noexcept {
  switch (e) {
    case error::bad_method: return "bad method";
    case error::bad_target: return "bad request-target";
    case error::bad_version: return "bad HTTP version";
    case error::version_not_supported: return "HTTP version not supported";
    case error::bad_status: return "bad status code";
    case error::bad_reason: return "bad reason phrase";
    case error::bad_line_ending: return "bare CR or LF (lines must end with CRLF)";
    case error::bad_field_name: return "bad field name";
    case error::space_before_colon: return "whitespace between field name and colon";
    case error::bad_field_value: return "bad field value";
    case error::obs_fold: return "obsolete line folding";
    case error::bad_host: return "missing, repeated or invalid Host";
    case error::bad_content_length: return "bad Content-Length";
    case error::multiple_content_length: return "multiple Content-Length values";
    case error::content_length_with_transfer_encoding:
      return "both Content-Length and Transfer-Encoding";
    case error::bad_transfer_encoding: return "bad Transfer-Encoding";
    case error::unsupported_transfer_encoding: return "unsupported transfer coding";
    case error::bad_chunk: return "bad chunk framing";
    case error::chunk_size_overflow: return "chunk size overflow";
    case error::start_line_too_long: return "start line too long";
    case error::header_too_large: return "header section too large";
    case error::too_many_headers: return "too many header fields";
    case error::chunk_line_too_long: return "chunk-size line too long";
    case error::body_too_large: return "body too large";
    case error::trailer_too_large: return "trailer section too large";
    case error::partial_message: return "stream ended inside a message";
  }
  return "unknown http1 error";
}

/// One category per side: parse errors in requests come from the client (downstream), in
/// responses from the backend (upstream). None is retry safe: a request that could not be
/// parsed is not retried, and a response only arrives once the request reached the backend.
class error_category final : public rproxy::error_category {
public:
  explicit constexpr error_category(condition source) noexcept : source_(source) {}
  const char* name() const noexcept override {
    return source_ == condition::upstream ? "rproxy.http1.upstream" : "rproxy.http1";
  }
  std::string message(int c) const override { return error_message(static_cast<error>(c)); }
  condition source(int /*code*/) const noexcept override { return source_; }

private:
  condition source_;
};

}  // namespace detail

/// Category of request parse errors (source: downstream).
inline const rproxy::error_category& category() noexcept {
  static const detail::error_category c{condition::downstream};
  return c;
}

/// Category of response parse errors (source: upstream).
inline const rproxy::error_category& upstream_category() noexcept {
  static const detail::error_category c{condition::upstream};
  return c;
}

/// A request-side (downstream) code: what `ec == http1::error::x` compares against.
inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), category()};
}

/// A response-side (upstream) code for the same error.
inline std::error_code make_upstream_error_code(error e) noexcept {
  return {static_cast<int>(e), upstream_category()};
}

/// The http1 error in `ec`, from either side; error{} (0) when `ec` is not an http1 error.
inline error to_error(const std::error_code& ec) noexcept {
  if (ec.category() == category() || ec.category() == upstream_category())
    return static_cast<error>(ec.value());
  return error{};
}

/// The status a server should answer to a request that failed with `e`:
/// 414 (start line), 431 (header/trailer limits), 413 (body), 501 (transfer coding),
/// 505 (version), 400 otherwise.
constexpr unsigned status_for(error e) noexcept {
  switch (e) {
    case error::start_line_too_long: return 414;
    case error::header_too_large:
    case error::too_many_headers:
    case error::trailer_too_large: return 431;
    case error::body_too_large: return 413;
    case error::unsupported_transfer_encoding: return 501;
    case error::version_not_supported: return 505;
    default: return 400;
  }
}

/// The status a proxy answers for `ec`: status_for() for request errors, 502 for response
/// (upstream) errors, 500 for anything else.
inline unsigned status_for(const std::error_code& ec) noexcept {
  if (ec.category() == category()) return status_for(static_cast<error>(ec.value()));
  if (ec.category() == upstream_category()) return 502;
  return 500;
}

}  // namespace rproxy::codec::http1
