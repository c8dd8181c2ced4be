// rproxy/middleware/cors.hpp: the cors stage: Cross-Origin Resource Sharing (the Fetch
// standard's CORS protocol) answered at the proxy, so backends need not each get it right.
//
//     rproxy::middleware::cors_config cfg{.allow_origins = {"https://app.example.com", "https://*.example.com"},
//                                         .allow_headers = {"Authorization", "Content-Type"}};
//     auto p = rproxy::make_pipeline<http>(rproxy::middleware::cors{&cfg}, ...);   // before auth stages
//
// On a request with an Origin field (on_hello):
//   - a preflight (OPTIONS with Access-Control-Request-Method): answered here with 204 when the
//     origin, the method and every requested header are allowed (Access-Control-Allow-Origin,
//     -Methods, -Headers, -Max-Age, -Credentials, Vary); refused with 403 otherwise. It never
//     reaches the backend or the auth stages (browsers send preflights without credentials);
//   - any other request from an allowed origin: Access-Control-Allow-Origin (the origin, or "*"
//     when any origin is allowed without credentials), -Credentials and -Expose-Headers are set
//     on the response, and Vary: Origin is added;
//   - from an origin not allowed: no CORS field (the browser keeps the response from the page);
//     with `enforce`, refused with 403 instead (a CSRF defence for APIs that only pages of the
//     allowed origins may call).
// Origins match exactly (ASCII case-insensitive), "*" matches any, and "https://*.example.com"
// matches any subdomain of example.com over https on the default port (not example.com itself).
// Requests without Origin pass untouched.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/middleware/request_view.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct cors_config {
  std::vector<std::string> allow_origins;  ///< exact, "*", or "scheme://*.domain"
  std::vector<std::string> allow_methods{"GET", "HEAD", "POST"};
  std::vector<std::string> allow_headers;   ///< request headers a page may send ("*": any, not with credentials)
  std::vector<std::string> expose_headers;  ///< response headers a page may read
  bool allow_credentials = false;           ///< cookies and Authorization (then never "*")
  std::chrono::seconds max_age{600};        ///< how long a browser may cache a preflight
  bool enforce = false;                     ///< refuse requests from origins not allowed
};

namespace cors_detail {

inline char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}
inline bool iends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && iequals(s.substr(s.size() - suffix.size()), suffix);
}
inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
inline bool host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}
/// An HTTP token character (RFC 9110 tchar): what a field name is made of.
inline bool token_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
inline std::string join(const std::vector<std::string>& list) {
  std::string out;
  for (const auto& s : list) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace cors_detail

/// Whether `origin` (as the browser sent it) is one a pattern allows.
inline bool origin_allowed(const cors_config& c, std::string_view origin) noexcept {
  using namespace cors_detail;
  for (std::string_view p : c.allow_origins) {
    if (p == "*" || iequals(p, origin)) return true;
    const auto star = p.find("://*.");
    if (star == std::string_view::npos) continue;
    const std::string_view scheme = p.substr(0, star + 3), domain = p.substr(star + 4);  // domain: ".example.com"
    if (origin.size() <= scheme.size() + domain.size() || !iequals(origin.substr(0, scheme.size()), scheme) ||
        !iends_with(origin, domain))
      continue;
    // the subdomain labels: letters, digits, '-' and '.' only (no port, path, user or space)
    const std::string_view sub = origin.substr(scheme.size(), origin.size() - scheme.size() - domain.size());
    if (std::all_of(sub.begin(), sub.end(), [](char ch) { return host_char(ch); })) return true;
  }
  return false;
}

struct cors {
  const cors_config* cfg = nullptr;  ///< null: the stage passes everything (CORS off)

  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    using namespace cors_detail;
    if (cfg == nullptr) return rproxy::next;  // not configured: nothing to do
    const auto origin = header_of(req, "origin");
    if (!origin) return rproxy::next;
    const bool allowed = origin_allowed(*cfg, *origin);
    const auto method = header_of(req, "access-control-request-method");
    if (method && request_method(req) == "OPTIONS") return preflight(ctx, req, *origin, *method, allowed);
    if (!allowed)
      return cfg->enforce ? rproxy::reject(rproxy::reject_code::forbidden, "origin not allowed") : rproxy::next;
    if constexpr (requires { ctx.response_fields.set(std::string_view(), std::string_view()); }) {
      const bool any = !cfg->allow_credentials && has_any_origin();
      ctx.response_fields.set("Access-Control-Allow-Origin", any ? std::string_view("*") : *origin);
      if (!any) ctx.response_fields.add_token("Vary", "Origin");
      if (cfg->allow_credentials) ctx.response_fields.set("Access-Control-Allow-Credentials", "true");
      if (!cfg->expose_headers.empty()) ctx.response_fields.set("Access-Control-Expose-Headers", join(cfg->expose_headers));
    }
    return rproxy::next;
  }

private:
  bool has_any_origin() const noexcept {
    return std::find(cfg->allow_origins.begin(), cfg->allow_origins.end(), "*") != cfg->allow_origins.end();
  }
  bool method_allowed(std::string_view m) const noexcept {
    for (const auto& a : cfg->allow_methods)
      if (a == m) return true;  // methods are case-sensitive
    return false;
  }
  bool header_allowed(std::string_view h) const noexcept {
    for (const auto& a : cfg->allow_headers)
      if ((a == "*" && !cfg->allow_credentials) || cors_detail::iequals(a, h)) return true;
    return false;
  }
  template <class Req>
  static std::string_view request_method(const Req& req) {
    if constexpr (requires { req.method(); }) return req.method();
    else return {};
  }

  template <class Ctx, class Req>
  rproxy::verdict preflight(Ctx& ctx, const Req& req, std::string_view origin, std::string_view method, bool allowed) {
    using namespace cors_detail;
    if (!allowed) return rproxy::reject(rproxy::reject_code::forbidden, "origin not allowed");
    if (!method_allowed(method)) return rproxy::reject(rproxy::reject_code::forbidden, "method not allowed");
    std::string headers;  // the requested headers, each checked (a bounded list: the field is)
    if (auto list = header_of(req, "access-control-request-headers")) {
      std::string_view rest = *list;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        const auto h = trim(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        if (h.empty()) continue;
        if (!std::all_of(h.begin(), h.end(), token_char) || !header_allowed(h)) return rproxy::reject(rproxy::reject_code::forbidden, "header not allowed");
        headers += (headers.empty() ? "" : ", ") + std::string(h);
      }
    }
    if constexpr (requires { ctx.reply; }) {
      const bool any = !cfg->allow_credentials && has_any_origin();
      std::string& r = ctx.reply;
      r = "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: ";
      r += any ? std::string_view("*") : origin;
      r += "\r\nAccess-Control-Allow-Methods: " + join(cfg->allow_methods);
      if (!headers.empty()) r += "\r\nAccess-Control-Allow-Headers: " + headers;
      if (cfg->allow_credentials) r += "\r\nAccess-Control-Allow-Credentials: true";
      r += "\r\nAccess-Control-Max-Age: " + std::to_string(cfg->max_age.count());
      r += "\r\nVary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers\r\n"
           "Content-Length: 0\r\n\r\n";  // the adapter adds Connection: close when the connection ends
      return rproxy::replied;
    } else {
      return rproxy::next;
    }
  }
};

}  // namespace rproxy::middleware
