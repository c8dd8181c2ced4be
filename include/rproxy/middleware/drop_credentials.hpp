// rproxy/middleware/drop_credentials.hpp: leaves a stage's credentials out of the request a
// proxy sends upstream (jwt_auth with forward_token: false, api_key_auth without forward_key),
// on a flow that builds that request from ctx.request_fields and ctx.upstream_target
// (flow/http_flow.hpp), whichever protocol the client spoke:
//   header  the field removed (every field of that name);
//   query   the parameter taken out of the target (after a router set one: place the stage
//           after apply_http_route), the other parameters kept as sent;
//   cookie  the pair taken out of the Cookie field, the other cookies kept in order in one
//           Cookie field (HTTP/1.1 Cookie fields and HTTP/2 / HTTP/3 cookie crumbs alike, as
//           the codecs join them); no Cookie field when none is left. Another stage's edit of
//           Cookie before this one (a route's, another credential's) is the starting point.
//
//     if (!cfg->forward_key) rproxy::middleware::drop_credentials(ctx, req, cfg->sources);
//
// A flow without those members (a byte relay) passes the request on as it came: nothing to drop.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/middleware/request_view.hpp>

namespace rproxy::middleware {

/// The Cookie field value without the cookies named `name` (`from`: the value to edit), or
/// nullopt when none of them was there.
inline std::optional<std::string> cookie_without(std::string_view from, std::string_view name) {
  std::string out;
  if (codec::http1::append_cookies_without(out, from, name) == 0) return std::nullopt;
  return out;
}

template <class Ctx, class Req>
void drop_credentials(Ctx& ctx, const Req& req, std::span<const credential_source> sources) {
  for (const auto& s : sources) {
    if constexpr (requires { ctx.request_fields.remove(std::string_view()); }) {
      if (s.from == credential_source::place::header) ctx.request_fields.remove(s.name);
      if constexpr (requires { req.head().fields; ctx.request_fields.last_set(std::string_view()); })
        if (s.from == credential_source::place::cookie) {
          std::optional<std::string> edited;
          if (auto pending = ctx.request_fields.last_set("cookie")) {
            edited = cookie_without(*pending, s.name);  // (empty: removed already)
          } else {
            std::string all;  // every Cookie field of the request, joined
            std::size_t dropped = 0;
            for (const auto& f : req.head().fields)
              if (codec::http1::detail::iequals(f.name, "cookie")) dropped += codec::http1::append_cookies_without(all, f.value, s.name);
            if (dropped > 0) edited = std::move(all);
          }
          if (edited) {
            if (edited->empty()) ctx.request_fields.remove("Cookie");
            else ctx.request_fields.set("Cookie", *edited);
          }
        }
    }
    if constexpr (requires { ctx.upstream_target.assign(std::string_view()); std::string_view(req.target()); })
      if (s.from == credential_source::place::query) {
        const std::string_view target = ctx.upstream_target.empty() ? std::string_view(req.target()) : std::string_view(ctx.upstream_target);
        if (codec::http1::find_query_raw(codec::http1::query_of_target(target), s.name))
          ctx.upstream_target = codec::http1::without_query_param(target, s.name);
      }
  }
}

}  // namespace rproxy::middleware
