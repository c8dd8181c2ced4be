// rproxy/middleware/request_id.hpp: the request_id stage: every request gets an id (sent to the
// backend and echoed to the client) and takes part in the W3C trace (traceparent/tracestate).
//
//     rproxy::middleware::request_id_config cfg;      // X-Request-Id, traceparent on
//     auto p = rproxy::make_pipeline<http>(rproxy::middleware::request_id{&cfg}, ...);
//     // later stages and the access log: ctx.state<request_id>().id, .trace
//
// For each request (on_hello):
//   - the id: the client's `header` value when `trust_client` is on and the value is 1..128
//     characters of [A-Za-z0-9._:-] (so it cannot smuggle anything into logs or headers);
//     otherwise 32 random hex digits. Sent upstream in `header` (the client's own field of that
//     name is dropped) and, with `echo`, on the response to the client, rendered refusals too;
//   - with `trace`: a valid client traceparent is continued (same trace-id and flags, this hop's
//     new parent-id) and its tracestate forwarded if it is at most 512 bytes; an absent or
//     invalid one starts a new trace (sampled as `sample` says) and its tracestate is dropped.
//
// A flow type without request_fields/response_fields (not HTTP) still gets an id and a trace in
// the stage's state, for its logs. Ids come from a per-stage id_source: pipelines are per
// worker, so no lock is taken.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <rproxy/middleware/request_view.hpp>
#include <rproxy/middleware/trace_context.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct request_id_config {
  std::string header = "X-Request-Id";
  bool trust_client = false;  ///< keep a valid id the client sent (behind a proxy that sets it)
  bool echo = true;           ///< set the id on the response to the client
  bool trace = true;          ///< continue or start the W3C trace
  bool sample = false;        ///< the sampled flag of traces this hop starts
  static constexpr std::size_t max_id_size = 128;
  static constexpr std::size_t max_tracestate_size = 512;
};

/// A client-sent request id is kept only if it is short and made of these characters.
inline bool valid_request_id(std::string_view v) noexcept {
  if (v.empty() || v.size() > request_id_config::max_id_size) return false;
  for (char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

struct request_id {
  struct state {
    std::string id;
    std::optional<traceparent> trace;  ///< this hop's (what the backend receives)
  };

  const request_id_config* cfg = nullptr;
  id_source ids{};

  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    auto& s = ctx.template state<request_id>();
    const auto client_id = header_of(req, cfg->header);
    if (cfg->trust_client && client_id && valid_request_id(*client_id)) {
      s.id = std::string(*client_id);
    } else {
      traceparent fresh = traceparent::start(ids, false);  // 128 random bits, as hex
      s.id = fresh.trace_id_hex();
    }
    std::optional<std::string_view> tracestate;
    if (cfg->trace) {
      const auto in = header_of(req, "traceparent");
      const auto parent = in ? parse_traceparent(*in) : std::nullopt;
      s.trace = parent ? parent->next_hop(ids) : traceparent::start(ids, cfg->sample);
      if (parent)
        if (auto ts = header_of(req, "tracestate"); ts && !ts->empty() && ts->size() <= request_id_config::max_tracestate_size)
          tracestate = ts;
    }
    if constexpr (requires { ctx.request_id = s.id; }) ctx.request_id = s.id;  // for the access log
    if constexpr (requires { ctx.request_fields.set(std::string_view(), std::string_view()); }) {
      ctx.request_fields.set(cfg->header, s.id);
      if (s.trace) {
        char text[traceparent::text_size];
        s.trace->write(text);
        ctx.request_fields.set("traceparent", std::string_view(text, sizeof text));
        ctx.request_fields.set("tracestate", tracestate.value_or(std::string_view()));  // empty: dropped
      }
    }
    if constexpr (requires { ctx.response_fields.set(std::string_view(), std::string_view()); })
      if (cfg->echo) ctx.response_fields.set(cfg->header, s.id);
    return rproxy::next;
  }
};

}  // namespace rproxy::middleware
