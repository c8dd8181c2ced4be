// rproxy/admin/pools_api.hpp: a REST API over an app's named backend pools, for the admin
// endpoint (admin/server.hpp). Any app with balance pools mounts it:
//
//     rproxy::admin::pools_api<rproxy::balance::upstream_pool> api({
//         .pools = [&] { return std::vector<named_pool<upstream_pool>>{{"main", main_pool}}; },
//         .routes = [&] { return std::vector<route_summary>{{"users", {"main"}}}; },   // optional
//         .reload = [&] { return rt.reload_now(); }});                                // optional
//     api.mount(admin_server);   // under /api; with a token set, every /api request needs it
//
//   GET  /api/routes                                  {"routes":[{"name":..,"groups":[..]}]}
//   GET  /api/backends                                {"groups":[{"name":..,"backends":[backend]}]}
//   PUT  /api/backends/GROUP/ID/weight  {"weight":N}  sets the weight (0: standby); the backend
//   POST /api/backends/GROUP/ID/weight  {"weight":N}  (the same)
//   POST /api/backends/GROUP/ID/drain                 no new flows; those in flight finish
//   POST /api/backends/GROUP/ID/undrain               takes new flows again
//   POST /api/reload                                  {"reloaded":true} or 422 {"reloaded":false}
//
// A backend is {"id","state","available","drained","weight","in_flight","selections",
// "successes","failures","ejections","breaker","latency_ewma_seconds"}. GROUP and ID are path
// segments, percent-decoded ("%5B%3A%3A1%5D%3A80" is "[::1]:80"). Errors are JSON too:
// {"error":"not_found","message":"no backend 'x' in group 'main'"} with 400, 404 or 405.
// Changes act on the pool itself, so the next pick and the next /metrics scrape see them. A
// weight set here lasts until the next reload sets the configured one (a drain lasts until an
// undrain). Handlers run on the admin server's thread; the callbacks must be safe there.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/admin/server.hpp>
#include <rproxy/balance/backend.hpp>
#include <rproxy/core/json.hpp>
#include <rproxy/health/circuit_breaker.hpp>

namespace rproxy::admin {

/// A route as the API lists it: its name and the backend groups it sends to.
struct route_summary {
  std::string name;
  std::vector<std::string> groups;
};

/// A backend group: its name and its pool.
template <class Pool>
struct named_pool {
  std::string name;
  std::shared_ptr<Pool> pool;
};

/// Largest weight the API accepts (a typo of a few digits is refused, not obeyed).
inline constexpr std::uint32_t max_api_weight = 1'000'000;

namespace detail {

inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// A path segment, percent-decoded; nullopt for a bad escape, an empty segment or a NUL.
inline std::optional<std::string> decode_segment(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

inline response json_error(unsigned status, std::string_view cause, std::string_view message) {
  std::string out = "{\"error\":";
  json::append_string(out, cause);
  out += ",\"message\":";
  json::append_string(out, message);
  out += "}\n";
  return json(status, std::move(out));
}

}  // namespace detail

template <class Pool>
class pools_api {
public:
  struct sources {
    std::function<std::vector<named_pool<Pool>>()> pools;      ///< the groups serving now
    std::function<std::vector<route_summary>()> routes{};      ///< empty: GET /api/routes is 404
    std::function<bool()> reload{};                            ///< empty: POST /api/reload is 404
  };

  explicit pools_api(sources s, std::string prefix = "/api") : src_(std::move(s)), prefix_(std::move(prefix)) {}

  /// Registers the handlers on `s` (they refer to this object: keep it alive as long as `s`).
  void mount(server& s) {
    s.require_token(prefix_ + "/");
    auto h = [this](const request& r) { return (*this)(r); };
    s.handle("GET", prefix_ + "/backends", h);
    if (src_.routes) s.handle("GET", prefix_ + "/routes", h);
    if (src_.reload) s.handle("POST", prefix_ + "/reload", h);
    s.handle_prefix("PUT", prefix_ + "/backends/", h);
    s.handle_prefix("POST", prefix_ + "/backends/", h);
  }

  /// Answers one request (the method and path as mount() registers them; anything else: 404).
  response operator()(const request& r) const {
    std::string_view path = r.path;
    if (!path.starts_with(prefix_) || path.size() == prefix_.size() || path[prefix_.size()] != '/')
      return detail::json_error(404, "not_found", "no such resource");
    path.remove_prefix(prefix_.size() + 1);
    if (path == "backends") return r.method == "GET" ? json(200, backends_json()) : not_allowed();
    if (path == "routes" && src_.routes) return r.method == "GET" ? json(200, routes_json()) : not_allowed();
    if (path == "reload" && src_.reload) {
      if (r.method != "POST") return not_allowed();
      return src_.reload() ? json(200, "{\"reloaded\":true}\n") : json(422, "{\"reloaded\":false,\"message\":\"config kept: see the log\"}\n");
    }
    if (path.starts_with("backends/")) return backend_action(r, path.substr(9));
    return detail::json_error(404, "not_found", "no such resource");
  }

private:
  static response not_allowed() { return detail::json_error(405, "method_not_allowed", "method not allowed here"); }

  response backend_action(const request& r, std::string_view rest) const {
    // GROUP/ID/ACTION, each segment non-empty.
    const auto a = rest.find('/');
    const auto b = a == std::string_view::npos ? a : rest.find('/', a + 1);
    if (b == std::string_view::npos || rest.find('/', b + 1) != std::string_view::npos)
      return detail::json_error(404, "not_found", "expected /backends/GROUP/ID/weight, drain or undrain");
    const auto group = detail::decode_segment(rest.substr(0, a));
    const auto id = detail::decode_segment(rest.substr(a + 1, b - a - 1));
    const std::string_view action = rest.substr(b + 1);
    if (!group || !id) return detail::json_error(400, "bad_request", "bad percent-encoding in the path");
    if (action != "weight" && action != "drain" && action != "undrain")
      return detail::json_error(404, "not_found", "unknown action (weight, drain, undrain)");
    if (action != "weight" && r.method != "POST") return not_allowed();

    std::shared_ptr<Pool> pool;
    for (auto& g : src_.pools())
      if (g.name == *group) pool = std::move(g.pool);
    if (!pool) return detail::json_error(404, "not_found", "no group '" + *group + "'");
    auto backend = pool->find(*id);
    if (!backend) return detail::json_error(404, "not_found", "no backend '" + *id + "' in group '" + *group + "'");

    if (action == "weight") {
      auto doc = json::parse(r.body, {.max_bytes = 1024, .max_depth = 2, .max_nodes = 8});
      if (!doc) return detail::json_error(400, "bad_request", "the body must be a JSON object {\"weight\": N}");
      const auto w = doc->root().find("weight");
      const auto n = w && w->is_number() ? w->as_int(0, max_api_weight) : std::nullopt;
      if (!doc->root().is_object() || !n)
        return detail::json_error(400, "bad_request", "weight must be an integer from 0 to " + std::to_string(max_api_weight));
      if (!pool->set_weight(*id, static_cast<std::uint32_t>(*n))) return detail::json_error(404, "not_found", "the backend left the group");
    } else if (!(action == "drain" ? pool->drain(*id) : pool->undrain(*id))) {
      return detail::json_error(404, "not_found", "the backend left the group");
    }
    std::string out;
    append_backend(out, *backend);
    out += '\n';
    return json(200, std::move(out));
  }

  std::string backends_json() const {
    std::string out = "{\"groups\":[";
    bool first_group = true;
    for (const auto& g : src_.pools()) {
      if (!first_group) out += ',';
      first_group = false;
      out += "{\"name\":";
      json::append_string(out, g.name);
      out += ",\"backends\":[";
      const auto snap = g.pool->snapshot();
      for (std::size_t i = 0; i < snap->size(); ++i) {
        if (i > 0) out += ',';
        append_backend(out, (*snap)[i]);
      }
      out += "]}";
    }
    out += "]}\n";
    return out;
  }

  std::string routes_json() const {
    std::string out = "{\"routes\":[";
    bool first = true;
    for (const auto& r : src_.routes()) {
      if (!first) out += ',';
      first = false;
      out += "{\"name\":";
      json::append_string(out, r.name);
      out += ",\"groups\":[";
      for (std::size_t i = 0; i < r.groups.size(); ++i) {
        if (i > 0) out += ',';
        json::append_string(out, r.groups[i]);
      }
      out += "]}";
    }
    out += "]}\n";
    return out;
  }

  template <class Backend>
  static void append_backend(std::string& out, const Backend& b) {
    const auto s = b.stats();
    out += "{\"id\":";
    json::append_string(out, b.id());
    out += ",\"state\":";
    json::append_string(out, balance::to_string(s.state));
    out += ",\"available\":";
    out += b.available() ? "true" : "false";
    out += ",\"drained\":";
    out += b.drained() ? "true" : "false";
    auto num = [&](std::string_view k, std::uint64_t v) {
      out += ",\"";
      out += k;
      out += "\":";
      out += std::to_string(v);
    };
    num("weight", s.weight);
    num("in_flight", s.in_flight);
    num("selections", s.selections);
    num("successes", s.successes);
    num("failures", s.failures);
    num("ejections", s.ejections);
    out += ",\"breaker\":";
    json::append_string(out, health::to_string(s.breaker));
    out += ",\"latency_ewma_seconds\":";
    out += std::to_string(std::chrono::duration<double>(s.latency_ewma).count());
    out += '}';
  }

  sources src_;
  std::string prefix_;
};

}  // namespace rproxy::admin
