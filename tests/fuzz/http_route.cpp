// libFuzzer target: the HTTP router (route/http_router.hpp) and path normalisation against a
// fixed table. The input is lines: path, host, method, X-Beta header, Cookie header, query.
//   - never crashes; a bad path is refused, never half-normalised;
//   - normalize_path is idempotent, never grows the path, and leaves no empty, "." or ".."
//     segment and no escape of an unreserved character;
//   - a match's params put back into its route's pattern rebuild a normal path that matches
//     the same route with the same params;
//   - the upstream path (strip_prefix, rewrite) is a normal path;
//   - the group picked is one of the route's, and a sticky key always picks the same one.
#include <rproxy/route/http_router.hpp>
#include <rproxy/route/normalize_path.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rt = rproxy::route;

namespace {

struct request {
  std::string_view method_, authority_, path_, query_, beta_, cookie_;
  std::string_view method() const { return method_; }
  std::string_view authority() const { return authority_; }
  std::string_view path() const { return path_; }
  std::string_view query() const { return query_; }
  std::optional<std::string_view> header(std::string_view n) const {
    if (n == "X-Beta" || n == "x-beta" || n == "X-User") return beta_.empty() ? std::nullopt : std::optional(beta_);
    if (n == "cookie") return cookie_.empty() ? std::nullopt : std::optional(cookie_);
    return std::nullopt;
  }
};

rt::http_route_config route(std::string name, std::string path) {
  rt::http_route_config c;
  c.name = std::move(name);
  if (path.starts_with("prefix:")) c.prefix = path.substr(7);
  else c.path = std::move(path);
  c.backends = {{"main", 3}, {"canary", 1}};
  return c;
}

const rt::http_router& router() {
  static const rt::http_router r = [] {
    std::vector<rt::http_route_config> v;
    v.push_back(route("root", "/"));
    v.push_back(route("users", "/users"));
    v.back().methods = {"GET"};
    v.push_back(route("user", "/users/:id"));
    v.push_back(route("me", "/users/me"));
    v.push_back(route("posts", "/users/:id/posts/:post"));
    v.back().rewrite = "/p/{post}/u/{id}";
    v.push_back(route("static", "/static/*rest"));
    v.back().sticky.header = "X-User";
    v.push_back(route("api", "prefix:/api"));
    v.back().strip_prefix = "/api";
    v.push_back(route("api-beta", "prefix:/api"));
    v.back().headers = {{"X-Beta", "1"}};
    v.push_back(route("admin", "/admin"));
    v.push_back(route("admin-area", "prefix:/admin"));
    v.push_back(route("files", "/files/:dir/*rest"));
    v.back().rewrite = "/store/{dir}/{rest}";
    v.push_back(route("search", "/search"));
    v.back().query = {{"q", std::nullopt}};
    v.push_back(route("beta", "/beta"));
    v.back().cookies = {{"beta", "yes"}};
    v.push_back(route("a-b", "/:a/:b"));
    v.push_back(route("shop", "prefix:/"));
    v.back().hosts = {"shop.example.com"};
    v.push_back(route("wild", "/w/:x"));
    v.back().hosts = {"*.example.com"};
    auto b = rt::http_router::build(std::move(v));
    if (!b) std::abort();
    return std::move(*b);
  }();
  return r;
}

std::string_view next_line(std::string_view& in) {
  const auto nl = in.find('\n');
  const std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  return line;
}

void check_normal(std::string_view raw, std::string_view out) {
  if (out.size() > raw.size() || out.empty() || out.front() != '/') std::abort();
  if (out.find("//") != std::string_view::npos) std::abort();
  for (std::string_view dots : {"/./", "/../"})
    if ((std::string(out) + "/").find(dots) != std::string::npos) std::abort();
  for (std::size_t i = 0; i + 2 < out.size(); ++i)
    if (out[i] == '%') {
      const int hi = rt::detail::hex_digit(out[i + 1]), lo = rt::detail::hex_digit(out[i + 2]);
      if (hi < 0 || lo < 0 || rt::detail::is_unreserved(static_cast<char>(hi * 16 + lo))) std::abort();
      if ((out[i + 1] >= 'a' && out[i + 1] <= 'f') || (out[i + 2] >= 'a' && out[i + 2] <= 'f')) std::abort();
    }
  std::string again;
  if (!rt::normalize_path(out, again) || again != out) std::abort();
}

// The route's pattern with the match's params put back.
std::string rebuild(const rt::http_match& m) {
  const auto& c = m.route()->config();
  if (c.path.empty()) return std::string(m.path());  // a prefix route: no params to put back
  if (c.path == "/") return "/";
  std::string out;
  std::string_view p = std::string_view(c.path).substr(1);
  for (;;) {
    const auto slash = p.find('/');
    const std::string_view seg = p.substr(0, slash);
    out += '/';
    if (!seg.empty() && (seg.front() == ':' || seg.front() == '*')) {
      const auto v = m.param(seg.substr(1));
      if (!v) std::abort();
      out += *v;
    } else {
      out += seg;
    }
    if (slash == std::string_view::npos) break;
    p = p.substr(slash + 1);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  request req;
  req.path_ = next_line(in);
  req.authority_ = next_line(in);
  req.method_ = next_line(in);
  req.beta_ = next_line(in);
  req.cookie_ = next_line(in);
  req.query_ = next_line(in);

  std::string norm;
  const bool ok = rt::normalize_path(req.path_, norm, false);  // the table's default: no %2F, %5C
  std::string open;
  if (rt::normalize_path(req.path_, open)) check_normal(req.path_, open);
  if (ok && open != norm) std::abort();

  rt::http_match m;
  const std::uint64_t draw = size * 0x9e3779b97f4a7c15ull;
  const auto st = router().match(req, m, draw);
  if (!ok) {
    if (st != rt::http_route_status::bad_path) std::abort();
    return 0;
  }
  if (st == rt::http_route_status::bad_path) std::abort();
  if (st != rt::http_route_status::matched) return 0;
  if (m.path() != norm) std::abort();
  if (m.group() != "main" && m.group() != "canary") std::abort();
  if (!rt::is_normal_path(m.upstream_path())) std::abort();

  // Params rebuild a path that matches the same route with the same params.
  const std::string rebuilt = rebuild(m);
  if (!rt::is_normal_path(rebuilt)) std::abort();
  std::vector<std::string> params;
  for (std::size_t i = 0; i < m.param_count(); ++i) params.emplace_back(m.param_at(i).value);
  const rt::http_route* first = m.route();
  request again = req;
  again.path_ = rebuilt;
  if (router().match(again, m, draw) != rt::http_route_status::matched || m.route() != first) std::abort();
  for (std::size_t i = 0; i < m.param_count(); ++i)
    if (i >= params.size() || m.param_at(i).value != params[i]) std::abort();

  // Sticky: the same key, the same group, whatever the draw.
  if (first->name() == "static" && !req.beta_.empty()) {
    const std::string g(m.group());
    if (router().match(again, m, ~draw) != rt::http_route_status::matched || m.group() != g) std::abort();
  }
  return 0;
}
