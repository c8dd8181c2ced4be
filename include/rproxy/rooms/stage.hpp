// rproxy/rooms/stage.hpp: the rooms service as a pipeline stage of the WebSocket flow
// (flow/ws.hpp with rooms::ws_decoder): it names the user at the upgrade, executes each request
// against the registry (registry.hpp), answers on the connection and hands the deliveries to
// the hub, which posts them to the workers that own the recipients.
//
//     rooms::registry reg(cfg.rooms);
//     auto p = rproxy::make_pipeline<flow::ws_protocol<rooms::ws_request>>(
//         middleware::jwt_auth{...}, middleware::rate_limit{...}, rooms::stage{&reg, &hub, {}});
//
// With a cluster bridge (rooms/cluster.hpp: basic_stage<basic_cluster<Link>> and a non-null
// `bridge`), each request goes through the bridge, which runs it with Redis or locally and
// answers; the default `stage` has no bridge and costs nothing for it.
//
// The user is the JWT subject (ctx.identity, set by jwt_auth before this stage) and its site
// role the token's `role` claim (keep it: jwt_block::config({"role"})). Without an identity,
// `anonymous` decides: on, the user names itself with `?user=NAME` (a demo, a trusted network:
// anyone may claim any name); off, the upgrade is refused with 401.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>

#include <rproxy/flow/ws_hub.hpp>
#include <rproxy/middleware/principal.hpp>
#include <rproxy/middleware/request_view.hpp>
#include <rproxy/pipeline/verdict.hpp>
#include <rproxy/rooms/protocol.hpp>
#include <rproxy/rooms/registry.hpp>
#include <rproxy/rooms/roles.hpp>
#include <rproxy/rooms/ws_decoder.hpp>

namespace rproxy::rooms {

struct stage_options {
  bool anonymous = false;  ///< no identity: the user is ?user=NAME
};

/// No cluster: every request runs on this process' registry.
struct no_bridge {};

template <class Bridge = no_bridge>
struct basic_stage {
  registry* reg = nullptr;
  flow::ws_hub* hub = nullptr;
  stage_options opt{};
  Bridge* bridge = nullptr;  ///< null: no cluster (or not configured)

  struct state {
    std::string user;
    site_role site = site_role::member;
    session_id session = 0;  ///< set on the first request (the registry knows it from then)
  };

  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    auto& s = ctx.template state<basic_stage>();
    if (!ctx.identity.empty()) {
      s.user = ctx.identity;
      if (const auto* p = middleware::find_principal(ctx))
        if (auto r = p->claim("role")) s.site = site_role_from_claim(*r);
    } else if (opt.anonymous) {
      auto name = middleware::query_of(req, "user");
      if (!name) return rproxy::reject(reject_code::unauthorized, "a user name is required (?user=NAME)");
      s.user = std::string(*name);
    } else {
      return rproxy::reject(reject_code::unauthorized, "credentials required");
    }
    if (check_name(s.user, reg->config().max_name_bytes, "user name"))
      return rproxy::reject(reject_code::bad_request, "invalid user name");
    return rproxy::next;
  }

  template <class Ctx>
  rproxy::verdict on_message(Ctx& ctx, const ws_request& m) {
    auto& s = ctx.template state<basic_stage>();
    if (!ctx.ws) return rproxy::next;
    if (m.error) {
      ctx.ws->send_text(error_reply(m.req, *m.error));
      return rproxy::next;
    }
    s.session = ctx.ws->id();
    if constexpr (!std::is_same_v<Bridge, no_bridge>) {
      if (bridge) {
        if (!bridge->handle(ctx.worker, {s.session, s.user, s.site}, m.req))
          return rproxy::reject(reject_code::rate_limited, "too many requests waiting");
        return rproxy::next;
      }
    }
    auto out = reg->execute({s.session, s.user, s.site}, m.req, std::chrono::system_clock::now());
    ctx.ws->send_text(std::move(out.reply));
    for (auto& f : out.replay) ctx.ws->send(std::move(f));
    for (const auto& d : out.deliveries) hub->deliver(ctx.worker, d.frame, d.to);
    return rproxy::next;
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code) {
    auto& s = ctx.template state<basic_stage>();
    if (s.session == 0) return;
    if constexpr (!std::is_same_v<Bridge, no_bridge>) {
      if (bridge) return bridge->closed(ctx.worker, s.session, s.user);
    }
    for (const auto& d : reg->disconnect(s.session, std::chrono::system_clock::now())) hub->deliver(ctx.worker, d.frame, d.to);
  }
};

using stage = basic_stage<>;

}  // namespace rproxy::rooms
