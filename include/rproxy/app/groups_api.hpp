// rproxy/app/groups_api.hpp: an HTTP proxy's admin REST API (admin/pools_api.hpp) over the
// serving world's backend groups (upstream/group_block.hpp) and routes: GET /api/routes,
// GET /api/backends, a backend's weight, drain and undrain, POST /api/reload. Behind the admin
// token. A World (app/versions.hpp) has `cfg->groups`, `pools` (one per group, in order),
// `table` (a route::http_router) and `routes` (route/http_route_table.hpp).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include <rproxy/admin/pools_api.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/balance/upstream_config.hpp>

namespace rproxy::app {

/// Mounts the API on the admin endpoint (when there is one) once it starts.
template <class Runtime, class World>
void mount_groups_api(Runtime& rt, std::shared_ptr<versions<World>> worlds) {
  using api_type = admin::pools_api<balance::upstream_pool>;
  auto api = std::make_shared<api_type>(typename api_type::sources{
      .pools =
          [worlds] {
            std::vector<admin::named_pool<balance::upstream_pool>> out;
            const auto w = worlds->current();
            for (std::size_t i = 0; i < w->cfg->groups.size(); ++i) out.push_back({w->cfg->groups[i].name, w->pools[i]});
            return out;
          },
      .routes =
          [worlds] {
            std::vector<admin::route_summary> out;
            const auto w = worlds->current();
            for (std::size_t i = 0; i < w->table.routes().size(); ++i) {
              auto& r = out.emplace_back(admin::route_summary{w->table.routes()[i].name(), {}});
              for (const auto g : w->routes.groups[i]) r.groups.push_back(w->cfg->groups[g].name);
            }
            return out;
          },
      .reload = [&rt] { return rt.reload_now(); }});
  rt.keep(api);
  rt.on_admin([api](admin::server& s) { api->mount(s); });
}

}  // namespace rproxy::app
