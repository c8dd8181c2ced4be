// rproxy/route/apply_http_route.hpp: applies the route by_http_route matched to the flow: what
// the backend is sent and what the client gets back, for any HTTP protocol whose flow has
// upstream_target, request_fields and response_fields (flow/http_flow.hpp's http_flow).
//
//     auto p = rproxy::make_pipeline<http1_protocol>(rproxy::route::by_http_route{&table},
//                                                   rproxy::route::apply_http_route{}, ...);
//
// on_hello, after the router:
//   - ctx.upstream_target: the route's upstream path (normalised, strip_prefix or rewrite
//     applied) and the client's query, unchanged. The backend sees the path the route matched.
//   - the route's request_headers edits go to ctx.request_fields (a removed or set name also
//     drops the client's field of that name), its response_headers edits to
//     ctx.response_fields (applied to the backend's response and to the proxy's own answers).
//   - the route's timeout and idle_timeout: ctx.deadline (from now) and ctx.idle_timeout, when
//     the flow has them (the HTTP/1.1 adapter bounds the exchange with them; 504 when the
//     response head is late).
//   - the route's max_body: a Content-Length over it is refused before anything reaches a
//     backend; a chunked body is counted in on_message and refused when it goes over (the
//     backend's connection is dropped). Refusal: too_large (HTTP 413), "request body too large".
#pragma once

#include <charconv>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/pipeline/verdict.hpp>
#include <rproxy/route/by_http_route.hpp>
#include <rproxy/route/http_router.hpp>

namespace rproxy::route {

struct apply_http_route {
  struct state {
    std::uint64_t limit = 0;  ///< the route's body limit (0: none)
    std::uint64_t body = 0;   ///< body bytes seen
  };
  static constexpr std::string_view too_large = "request body too large";

  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    const http_match& m = ctx.template state<by_http_route>().match;
    if (!m) return rproxy::next;
    const http_route& rt = *m.route();
    ctx.upstream_target.assign(m.upstream_path());
    if (const auto q = codec::http1::query_of_target(req.target()); !q.empty()) {
      ctx.upstream_target += '?';
      ctx.upstream_target += q;
    }
    for (const auto& e : rt.request_edits()) edit(ctx.request_fields, e);
    for (const auto& e : rt.response_edits()) edit(ctx.response_fields, e);
    if constexpr (requires { ctx.deadline; ctx.idle_timeout; }) {
      if (rt.config().timeout) ctx.deadline = std::chrono::steady_clock::now() + *rt.config().timeout;
      if (rt.config().idle_timeout) ctx.idle_timeout = *rt.config().idle_timeout;
    }
    auto& s = ctx.template state<apply_http_route>();
    s = {};
    if (!rt.config().max_body) return rproxy::next;
    s.limit = rt.config().max_body->bytes;
    if (const auto cl = req.header("content-length")) {
      std::uint64_t n = 0;
      const auto [p, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
      if (ec == std::errc{} && p == cl->data() + cl->size() && n > s.limit) return rproxy::reject(rproxy::reject_code::too_large, too_large);
    }
    return rproxy::next;
  }

  template <class Ctx>
  rproxy::verdict on_message(Ctx& ctx, std::string_view chunk) {
    auto& s = ctx.template state<apply_http_route>();
    s.body += chunk.size();
    if (s.limit != 0 && s.body > s.limit) return rproxy::reject(rproxy::reject_code::too_large, too_large);
    return rproxy::next;
  }

private:
  template <class Pending>
  static void edit(Pending& f, const http_header_edit& e) {
    switch (e.what) {
      case http_header_edit::op::remove: f.remove(e.name); break;
      case http_header_edit::op::set: f.set(e.name, e.value); break;
      case http_header_edit::op::add: f.add(e.name, e.value); break;
    }
  }
};

}  // namespace rproxy::route
