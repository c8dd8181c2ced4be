// rproxy/codec/h3/client_error.hpp: error codes of the HTTP/3 client side (codec::h3).
//
// A request the client cannot map (a bad header name, CONNECT) is downstream: the caller's
// request is at fault. A response that breaks the rules or the limits, and a stream the server
// reset or the connection lost, are upstream; only a stream the server refused before it
// processed anything (H3_REQUEST_REJECTED, or beyond a GOAWAY) is safe to retry.
#pragma once

#include <string>
#include <system_error>

#include <rproxy/core/error.hpp>

namespace rproxy::codec::h3 {

enum class client_error {
  bad_request_field = 1,  ///< a request header name or value HTTP/3 cannot carry (downstream)
  unsupported_method,     ///< CONNECT and an empty method are not mapped (downstream)
  too_many_fields,        ///< the request or the response has more header fields than allowed
  fields_too_large,       ///< the response's header section is larger than allowed (upstream)
  bad_status,             ///< no :status, two of them, or not three digits 100..599 (upstream)
  bad_response_field,     ///< a pseudo-header other than :status, or one after a regular field (upstream)
  bad_content_length,     ///< content-length not a number, or two different ones (upstream)
  stream_reset,           ///< the server reset the stream or it closed before the response ended (upstream)
  request_rejected,       ///< the server refused the stream unprocessed: GOAWAY, H3_REQUEST_REJECTED (upstream, retry-safe)
  connection_lost,        ///< the QUIC connection ended with the stream open (upstream)
  not_ready,              ///< no HTTP/3 connection yet, or it is going away (internal, retry-safe)
  internal,               ///< nghttp3 failed (internal)
};

namespace detail {

class h3_client_error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.h3.client"; }
  std::string message(int c) const override {
    switch (static_cast<client_error>(c)) {
      case client_error::bad_request_field: return "request header field not valid in HTTP/3";
      case client_error::unsupported_method: return "request method not supported over HTTP/3";
      case client_error::too_many_fields: return "too many header fields";
      case client_error::fields_too_large: return "response header section too large";
      case client_error::bad_status: return "response :status missing or invalid";
      case client_error::bad_response_field: return "invalid pseudo-header in the response";
      case client_error::bad_content_length: return "invalid content-length in the response";
      case client_error::stream_reset: return "server reset the HTTP/3 stream";
      case client_error::request_rejected: return "server rejected the HTTP/3 request unprocessed";
      case client_error::connection_lost: return "HTTP/3 connection lost with the request open";
      case client_error::not_ready: return "HTTP/3 connection not ready";
      case client_error::internal: return "HTTP/3 internal error";
    }
    return "unknown rproxy.h3.client error";
  }
  condition source(int c) const noexcept override {
    switch (static_cast<client_error>(c)) {
      case client_error::bad_request_field:
      case client_error::unsupported_method: return condition::downstream;
      case client_error::not_ready:
      case client_error::internal: return condition::internal;
      default: return condition::upstream;
    }
  }
  bool retry_safe(int c) const noexcept override {
    const auto e = static_cast<client_error>(c);
    return e == client_error::request_rejected || e == client_error::not_ready;
  }
};

}  // namespace detail

inline const rproxy::error_category& client_error_category() noexcept {
  static const detail::h3_client_error_category c;
  return c;
}

inline std::error_code make_error_code(client_error e) noexcept { return {static_cast<int>(e), client_error_category()}; }

}  // namespace rproxy::codec::h3

template <>
struct std::is_error_code_enum<rproxy::codec::h3::client_error> : std::true_type {};
