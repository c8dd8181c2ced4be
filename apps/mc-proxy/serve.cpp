// apps/mc-proxy/serve.cpp: mc-proxy's app<config> (serve.hpp) without extra stages: its worlds,
// reloads, health checks, bans and tick. Its flows are compiled in flows.cpp.
#include <tuple>

#include "serve.hpp"

extern template bool mc_proxy::listen_players(rproxy::app::runtime<mc_proxy::config>&, const mc_proxy::config&,
                                              rproxy::app::versions<mc_proxy::world<mc_proxy::default_pipeline>>&);

namespace mc_proxy {

int serve(rproxy::app::runtime<config>& rt) {
  return app<>::serve(rt, [](const config&) { return std::tuple<>{}; });
}

}  // namespace mc_proxy
