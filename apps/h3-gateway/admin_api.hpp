// apps/h3-gateway/admin_api.hpp: the gateway's admin REST API (admin/pools_api.hpp) over the
// serving world's groups and routes: GET /api/routes, GET /api/backends, a backend's weight,
// drain and undrain, POST /api/reload; bans shared with other instances (admin/bans_api.hpp under
// /api/bans and /bans). Behind the admin token (docs/h3-gateway.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <rproxy/admin/bans_api.hpp>
#include <rproxy/admin/pools_api.hpp>
#include <rproxy/app/versions.hpp>
#include <rproxy/cluster/shared_bans.hpp>

#include "gateway.hpp"

namespace h3_gateway {

using admin_api = rproxy::admin::pools_api<bal::upstream_pool>;

/// Mounts the API on the admin endpoint (when there is one) once it starts.
inline void mount_admin_api(runtime& rt, std::shared_ptr<rproxy::app::versions<world>> worlds) {
  auto api = std::make_shared<admin_api>(admin_api::sources{
      .pools =
          [worlds] {
            std::vector<rproxy::admin::named_pool<bal::upstream_pool>> out;
            const auto w = worlds->current();
            for (std::size_t i = 0; i < w->cfg->groups.size(); ++i) out.push_back({w->cfg->groups[i].name, w->pools[i]});
            return out;
          },
      .routes =
          [worlds] {
            std::vector<rproxy::admin::route_summary> out;
            const auto w = worlds->current();
            for (std::size_t i = 0; i < w->table.routes().size(); ++i) {
              auto& r = out.emplace_back(rproxy::admin::route_summary{w->table.routes()[i].name(), {}});
              for (const auto g : w->routes.groups[i]) r.groups.push_back(w->cfg->groups[g].name);
            }
            return out;
          },
      .reload = [&rt] { return rt.reload_now(); }});
  rt.keep(api);
  rt.on_admin([api](rproxy::admin::server& s) { api->mount(s); });
}

/// The ban API (admin/bans_api.hpp) under /api/bans, where the gateway always served it (its
/// query form: POST /api/bans?kind=addr&subject=...&ttl=600), and /bans, as the other apps.
inline void mount_bans_api(runtime& rt, rproxy::cluster::shared_bans& bans) {
  rt.on_admin([&bans](rproxy::admin::server& s) {
    rproxy::admin::mount_bans_api(s, bans, "/api/bans");
    rproxy::admin::mount_bans_api(s, bans);
  });
}

}  // namespace h3_gateway
