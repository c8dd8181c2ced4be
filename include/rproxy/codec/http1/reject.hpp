// rproxy/codec/http1/reject.hpp: renders a pipeline reject (rproxy::reject_reason) as an
// HTTP/1.1 response, the HTTP codec's side of the verdict contract (pipeline/verdict.hpp).
//
//     if (v.is_reject())
//       out += http1::make_reject_response(v.reason(), {.keep_alive = parser.keep_alive()});
//     // rate_limited with retry_after_s = 10 -> "HTTP/1.1 429 Too Many Requests" + Retry-After: 10
//
// Fields a stage left for the response (the rate limiter's X-RateLimit-* and Retry-After) are
// added with set_rendered_fields(), on rejects and on forwarded responses alike:
//
//     http1::fields extra;
//     http1::set_rendered_fields(extra, ctx.state<rate_limit>().headers);   // any .render(add)
//     out += http1::make_reject_response(v.reason(), extra, {.keep_alive = keep});
//     http1::set_rendered_fields(backend_response_head.fields, ctx.state<rate_limit>().headers);
#pragma once

#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/pipeline/verdict.hpp>

#include <string>
#include <string_view>

namespace rproxy::codec::http1 {

/// The HTTP status for a reject code.
constexpr unsigned status_for(reject_code c) noexcept {
  switch (c) {
    case reject_code::bad_request: return 400;
    case reject_code::unauthorized: return 401;
    case reject_code::forbidden:
    case reject_code::banned: return 403;
    case reject_code::not_found: return 404;
    case reject_code::rate_limited:
    case reject_code::too_many_connections: return 429;
    case reject_code::unavailable: return 503;
    case reject_code::timeout: return 408;
    case reject_code::too_large: return 413;
    case reject_code::internal: return 500;
  }
  return 500;
}

/// A source of response fields: calls add(name, value) for each, e.g.
/// middleware::rate_limit_headers (X-RateLimit-Limit, -Remaining, -Reset, Retry-After).
template <class Source>
concept field_source = requires(const Source& s, void (*add)(std::string_view, std::string_view)) {
  s.render(add);
};

/// Sets (replacing same-named fields) every field `s` renders. Values that are not valid field
/// values are skipped, so a source can never split the head.
template <field_source Source>
void set_rendered_fields(fields& f, const Source& s) {
  s.render([&f](std::string_view name, std::string_view value) {
    if (is_valid_field_name(name) && is_valid_field_value(value)) f.set(name, value);
  });
}

/// A complete response for `r`: its status, its message as a text body (the reason phrase
/// if empty), Retry-After when it has a hint. `opt.retry_after_s` is taken from `r`.
inline std::string make_reject_response(const reject_reason& r, error_response_options opt = {}) {
  opt.retry_after_s = r.retry_after_s;
  return make_error_response(status_for(r.code), r.message, opt);
}

/// The same with `extra` fields (e.g. from set_rendered_fields); an extra Retry-After
/// replaces the one derived from `r`.
inline std::string make_reject_response(const reject_reason& r, const fields& extra,
                                        error_response_options opt = {}) {
  opt.retry_after_s = r.retry_after_s;
  return make_error_response(status_for(r.code), r.message, extra, opt);
}

}  // namespace rproxy::codec::http1
