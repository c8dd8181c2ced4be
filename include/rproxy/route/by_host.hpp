// rproxy/route/by_host.hpp: routes a flow by the host name its hello carries (a Minecraft
// handshake address, an HTTP Host): exact names, `*.wildcard` (longest match), a catch-all,
// then a default target or a refusal.
//
//     rproxy::route::host_table<const server*> hosts;          // built once per config version
//     hosts.add("lobby.example.com", &lobby);
//     rproxy::route::by_host<const server*> r{&hosts, {.fallback = &lobby, .unknown = "Unknown host"}};
//     // later stages: ctx.state<decltype(r)>().target
//
// The flow's host is ctx.host (set by the protocol adapter). A host no entry claims goes to
// `fallback` when `fallback_for_unknown` is set, or when the host is empty (a client that sent
// none: a legacy ping, an HTTP/1.0 request); otherwise the flow is rejected with not_found.
#pragma once

#include <string_view>

#include <rproxy/pipeline/verdict.hpp>
#include <rproxy/route/host.hpp>

namespace rproxy::route {

template <class Target>
class by_host {
public:
  struct options {
    const Target* fallback = nullptr;   ///< the default target (none: refuse unknown hosts)
    bool fallback_for_unknown = false;  ///< send unknown hosts to it, not only hostless flows
    std::string_view unknown{};         ///< the refusal's message (config-owned text)
  };
  struct state {
    const Target* target = nullptr;  ///< where the flow goes
  };

  by_host(const host_table<Target>* table, options o) : table_(table), o_(o) {}

  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const auto&) const {
    const Target* t = table_->find(ctx.host);
    if (!t && o_.fallback && (o_.fallback_for_unknown || ctx.host.empty())) t = o_.fallback;
    if (!t) return rproxy::reject(rproxy::reject_code::not_found, o_.unknown);
    ctx.template state<by_host>().target = t;
    return rproxy::next;
  }

private:
  const host_table<Target>* table_;
  options o_;
};

}  // namespace rproxy::route
