// rproxy/middleware/cors_block.hpp: the YAML block of the cors stage, declared once.
//
//     cors:
//       allow_origins: [ "https://app.example.com", "https://*.example.com" ]
//       allow_methods: [ GET, POST, PUT ]
//       allow_headers: [ Authorization, Content-Type ]
//       allow_credentials: true
//
//     std::optional<mw::cors_block> cors;          // in the app's config struct
//     mw::cors_config cc = c.cors->config();
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/middleware/cors.hpp>

namespace rproxy::middleware {

struct cors_block {
  std::vector<std::string> allow_origins;
  std::vector<std::string> allow_methods{"GET", "HEAD", "POST"};
  std::vector<std::string> allow_headers;
  std::vector<std::string> expose_headers;
  bool allow_credentials = false;
  std::chrono::seconds max_age{600};
  bool enforce = false;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::required<&cors_block::allow_origins>("origins pages may call from: exact (https://app.example.com), "
                                                  "\"*\" (any), or https://*.example.com (its subdomains)"),
        cfg::doc<&cors_block::allow_methods>("methods a page may use (checked on preflight)"),
        cfg::doc<&cors_block::allow_headers>("request headers a page may send; \"*\": any (not with credentials)"),
        cfg::doc<&cors_block::expose_headers>("response headers a page may read"),
        cfg::doc<&cors_block::allow_credentials>("let pages send cookies and Authorization"),
        cfg::doc<&cors_block::max_age>("how long a browser may cache a preflight answer"),
        cfg::doc<&cors_block::enforce>("refuse (403) requests whose Origin is not allowed; off: only no CORS fields"));
  }
  void validate(rproxy::config::validator& v) const {
    for (std::size_t i = 0; i < allow_origins.size(); ++i) {
      const auto& o = allow_origins[i];
      if (o == "*") {
        if (allow_credentials)
          v.at(&cors_block::allow_origins).at(i).error("\"*\" with allow_credentials would let any site act with the user's "
                                                       "cookies: list the origins");
      } else if (o.find("://") == std::string::npos || o.back() == '/') {
        v.at(&cors_block::allow_origins).at(i).error("'" + o + "' is not an origin (scheme://host[:port], no path)");
      } else if (auto star = o.find('*'); star != std::string::npos && (star < 3 || o.compare(star - 3, 5, "://*.") != 0)) {
        v.at(&cors_block::allow_origins).at(i).error("'" + o + "': a wildcard only as scheme://*.domain");
      }
    }
  }
  cors_config config() const {
    return {.allow_origins = allow_origins, .allow_methods = allow_methods, .allow_headers = allow_headers,
            .expose_headers = expose_headers, .allow_credentials = allow_credentials, .max_age = max_age,
            .enforce = enforce};
  }
};

}  // namespace rproxy::middleware
