// rproxy/middleware/alt_svc.hpp: the alt_svc stage: advertises an HTTP/3 listener (RFC 7838) on
// every HTTP/1.x and HTTP/2 response, so browsers move to HTTP/3 by themselves.
//
//     std::string value = rproxy::middleware::alt_svc::h3(8443);   // h3=":8443"; ma=86400
//     auto p = rproxy::make_pipeline<http>(rproxy::middleware::alt_svc{&value}, ...);
//
// An empty value (no HTTP/3 listener) adds nothing. HTTP/3 responses get none: that client is
// there already, and behind a UDP relay or balancer on another port the listener's own port
// would send it around the relay. The value is the world's (config-owned), read per request.
#pragma once

#include <cstdint>
#include <string>

#include <rproxy/codec/http1/message.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct alt_svc {
  const std::string* value;

  /// `h3=":PORT"; ma=86400` (a day).
  static std::string h3(std::uint16_t port) { return "h3=\":" + std::to_string(port) + "\"; ma=86400"; }

  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    if (!value->empty() && req.head().wire != codec::http1::wire_protocol::h3) ctx.response_fields.set("alt-svc", *value);
    return rproxy::next;
  }
};

}  // namespace rproxy::middleware
