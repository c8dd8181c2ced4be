// rproxy/flow/http_flow.hpp: one HTTP request's flow (what the stages read and leave for the
// adapter) and the protocol the pipelines of an HTTP app see, whichever version the client
// speaks (HTTP/1.1: flow/http1.hpp; HTTP/2: flow/h2.hpp).
//
//     using proto = rproxy::flow::http1_protocol;   // flow type: rproxy::flow::http_flow
//     auto reqs = rproxy::make_pipeline<proto>(...per-request stages...);
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/flow/pending_fields.hpp>
#include <rproxy/flow/upstream.hpp>
#include <rproxy/pipeline/context.hpp>

namespace rproxy::flow {

/// One HTTP request's flow: what the stages read and leave for the adapter.
struct http_flow : flow_info {
  /// Set on the upstream request; a client's field of the same name is dropped first (so a
  /// client cannot forge a field a stage owns). An empty value only drops the client's field.
  pending_fields request_fields{};
  /// Set on the response to the client, forwarded or rendered (X-RateLimit-*, Retry-After).
  pending_fields response_fields{};
  /// `replied`: the whole response a stage answers with.
  std::string reply{};
  bool head_request = false;  ///< the request is a HEAD: a rendered response has no body
  /// Set by the adapter when a refusal or a stage's answer ends the request early and the
  /// connection carries on (the request had no body, or all of it was already read).
  bool keep_alive = false;
  /// The status the client was sent for this request, forwarded, rendered or a stage's answer
  /// (0: none, e.g. the client left first). For the access log and metrics.
  unsigned status = 0;
  std::string request_id{};  ///< set by a request-id stage (middleware/request_id.hpp)
  /// Set by a stage's on_response when its on_response_body will change the body (compression):
  /// the body's length is then unknown (chunked to an HTTP/1.1 client, no Content-Length).
  bool response_body_filtered = false;
  /// The request target the backend gets (a router's rewrite; the query is the stage's to
  /// keep). Empty: the client's target, as sent.
  std::string upstream_target{};
  /// Per-request bounds a stage sets (a route's timeout and idle_timeout), applied to the
  /// exchange with the backend: no progress for `idle_timeout` (0: the adapter's), and the whole
  /// exchange by `deadline` (none: unbounded). Out of time before the response head: a 504.
  std::chrono::milliseconds idle_timeout{0};
  std::chrono::steady_clock::time_point deadline{};
  /// Failures of the exchange that go back to the driver to be retried on another pick instead
  /// of answered (health::retry_on bits: reset, status_502, status_503; set for each attempt by
  /// a retry stage, health/retry_stage.hpp; 0: none). Only before anything reached the client,
  /// and only for an idempotent request without a body: a POST whose body was sent never is.
  std::uint8_t retry_on = 0;
  /// How to reach the picked backend (TLS, SNI), set by a stage with ctx.backend (the
  /// gateway: its group's); none: plain TCP. Config-owned.
  const upstream_settings* upstream = nullptr;
  /// Set by the driver before on_connect: the backend connection was kept from an earlier flow.
  bool upstream_reused = false;
  /// The request switched protocols: an HTTP/1.1 upgrade's 101 relayed, or an HTTP/2 extended
  /// CONNECT (RFC 8441) answered 200 after the backend's 101 (flow/h2.hpp).
  bool upgraded = false;
};

/// The protocol the pipelines of an HTTP/1.1 app see.
struct http1_protocol {
  using flow = http_flow;
  using hello = codec::http1::request_view;
  using message = std::string_view;  ///< a piece of the request body (framing removed)
  using response = codec::http1::response_head_view;
};

}  // namespace rproxy::flow
