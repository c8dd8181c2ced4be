// apps/h3-gateway/admin_api.hpp: the gateway's admin REST API (admin/pools_api.hpp) over the
// serving world's groups and routes: GET /api/routes, GET /api/backends, a backend's weight,
// drain and undrain, POST /api/reload; bans shared with other instances (POST/DELETE /api/bans).
// Behind the admin token (docs/h3-gateway.md).
#pragma once

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

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
              for (const auto g : w->groups[i]) r.groups.push_back(w->cfg->groups[g].name);
            }
            return out;
          },
      .reload = [&rt] { return rt.reload_now(); }});
  rt.keep(api);
  rt.on_admin([api](rproxy::admin::server& s) { api->mount(s); });
}

/// POST /api/bans?kind=addr&subject=203.0.113.7&ttl=600&reason=... (kind identity: a name; ttl
/// seconds, 0 or absent: permanent) and DELETE /api/bans?kind=..&subject=..: a ban on every
/// instance sharing the `redis:` block (this one's at once). Behind the admin token.
inline void mount_bans_api(runtime& rt, rproxy::cluster::shared_bans& bans) {
  rt.on_admin([&bans](rproxy::admin::server& s) {
    auto h = [&bans](const rproxy::admin::request& r) {
      std::string kind, subject, reason;
      long long ttl = 0;
      std::string_view q = r.query;
      while (!q.empty()) {
        auto amp = q.find('&');
        std::string_view kv = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        auto eq = kv.find('=');
        std::string value;
        if (eq == std::string_view::npos || !mw::detail::percent_decode(kv.substr(eq + 1), value))
          return rproxy::admin::json(400, "{\"error\":\"bad query\"}\n");
        const auto key = kv.substr(0, eq);
        if (key == "kind") kind = value;
        else if (key == "subject") subject = value;
        else if (key == "reason") reason = value;
        else if (key == "ttl") ttl = std::atoll(value.c_str());
      }
      const bool ok = r.method == "DELETE" ? bans.unban(kind, subject)
                                           : bans.ban(kind, subject, ttl > 0 ? mw::ban_clock::now() + std::chrono::seconds(ttl) : mw::ban_clock::time_point{}, reason);
      return ok ? rproxy::admin::json(200, "{\"ok\":true}\n")
                : rproxy::admin::json(400, "{\"error\":\"kind must be addr (an address or CIDR) or identity, with a subject\"}\n");
    };
    s.handle("POST", "/api/bans", h);
    s.handle("DELETE", "/api/bans", h);
  });
}

}  // namespace h3_gateway
