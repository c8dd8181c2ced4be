// rproxy/route/http_router.hpp: the HTTP route table, compiled once per config version and
// then read by any number of workers (it is immutable), for HTTP/1.1, HTTP/2 and HTTP/3 alike.
//
//     auto r = rproxy::route::http_router::build(cfg.routes.routes);   // at config load
//     if (!r) for (auto& e : r.error()) ...;                            // http_routes_block reports these
//     rproxy::route::http_match m;                                      // reused: no allocation once warm
//     switch (r->match(request, m, rng())) {                            // any http_route_request
//       case http_route_status::matched:   m.route()->name, m.param("id"), m.upstream_path(), m.group()
//       case http_route_status::not_found: 404
//       case http_route_status::bad_path:  400
//     }
//
// Matching (docs/routing.md has the rules and their reasons):
//   1. the host picks one host group: exact name, else the longest `*.suffix`, else the default
//      group (`*` and routes without hosts). Only that group's routes are tried;
//   2. the path is normalised (normalize_path.hpp); a path it refuses is bad_path;
//   3. in the group's segment tree, segment by segment: a literal segment before `:param`,
//      `:param` before the end of a whole path, the end of a whole path before `*rest` and
//      prefix routes; the first route on that walk whose method/header/query/cookie predicates
//      all hold wins;
//   4. routes with the same path shape: more predicates first, then config order.
// A lookup touches one tree node per path segment (plus the nodes of the branches it backs out
// of) and allocates nothing once `m`'s buffers have grown to the request's path.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/route/host.hpp>
#include <rproxy/route/http_request.hpp>
#include <rproxy/route/http_route_config.hpp>
#include <rproxy/route/normalize_path.hpp>
#include <rproxy/route/weighted_split.hpp>

namespace rproxy::route {

/// Path parameters a route may capture (`:name` and `*name` together).
inline constexpr std::size_t max_route_params = 16;

enum class http_route_status { matched, not_found, bad_path };

/// One header edit, in the order they apply: every remove, then every set, then every add.
struct http_header_edit {
  enum class op { remove, set, add };
  op what = op::set;
  std::string name;
  std::string value;
};

/// Applies a route's edits to a field list with erase(name), set(name, value) and add(name,
/// value) (codec::http1::fields; an HTTP/2 or HTTP/3 header list with the same three).
template <class Fields>
void apply_header_edits(const std::vector<http_header_edit>& edits, Fields& f) {
  for (const auto& e : edits) {
    switch (e.what) {
      case http_header_edit::op::remove: f.erase(e.name); break;
      case http_header_edit::op::set: f.set(e.name, e.value); break;
      case http_header_edit::op::add: f.add(e.name, e.value); break;
    }
  }
}

/// Table-wide choices.
struct http_router_options {
  /// Accept "%2F" and "%5C" in paths (kept escaped, as data inside one segment); refused
  /// with a 400 otherwise (docs/routing.md, "Path normalisation").
  bool allow_encoded_slashes = false;
};

/// A problem with one route of a config, found when the table is built.
struct http_route_error {
  std::size_t route = 0;            ///< index of the route in the config list
  std::string field;                ///< its field ("path", "hosts[1]"), empty: the route itself
  std::string message;
  std::optional<std::size_t> other; ///< the route it conflicts with, if any
};

namespace detail {

/// One segment of a route's path pattern.
struct path_segment {
  enum kind { literal, param, tail } what = literal;
  std::string text;  // literal text or param name ("" for a prefix's tail)
};

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace detail

/// A compiled route: the config as written, plus what matching and forwarding need.
class http_route {
public:
  const std::string& name() const noexcept { return config_.name; }
  const http_route_config& config() const noexcept { return config_; }
  std::size_t index() const noexcept { return index_; }  ///< position in the config list
  const std::vector<std::string>& param_names() const noexcept { return params_; }
  const std::vector<http_header_edit>& request_edits() const noexcept { return request_edits_; }
  const std::vector<http_header_edit>& response_edits() const noexcept { return response_edits_; }
  const weighted_split& split() const noexcept { return split_; }

  /// Whether the method, header, query and cookie predicates hold for `req`.
  template <http_route_request R>
  bool accepts(const R& req) const {
    if (!config_.methods.empty() &&
        std::find(config_.methods.begin(), config_.methods.end(), std::string_view(req.method())) == config_.methods.end())
      return false;
    for (const auto& h : config_.headers) {
      const std::optional<std::string_view> v = req.header(h.name);
      if (!v || (h.value && *v != *h.value)) return false;
    }
    for (const auto& q : config_.query) {
      const auto v = find_query_value(req.query(), q.name);
      if (!v || (q.value && !detail::decoded_equals(*v, *q.value))) return false;
    }
    for (const auto& c : config_.cookies) {
      const auto v = request_cookie(req, c.name);
      if (!v || (c.value && *v != *c.value)) return false;
    }
    return true;
  }

  /// How many predicates the route has (the method list counts as one).
  std::size_t predicate_count() const noexcept {
    return (config_.methods.empty() ? 0 : 1) + config_.headers.size() + config_.query.size() + config_.cookies.size();
  }

private:
  friend class http_router;
  struct rewrite_part {
    std::string literal;
    int param = -1;  // index into the captures, after the literal
  };

  http_route_config config_;
  std::size_t index_ = 0;
  std::vector<detail::path_segment> segs_;
  std::vector<std::string> params_;  // capture order
  bool tail_param_ = false;          // the last param is a `*rest`
  std::vector<rewrite_part> rewrite_;
  std::size_t strip_ = 0;  // characters of the normalised path removed before forwarding
  std::vector<http_header_edit> request_edits_, response_edits_;
  weighted_split split_;
};

/// A path parameter of a match.
struct http_param {
  std::string_view name;
  std::string_view value;
};

/// The result of a lookup; reuse one per worker or flow so its buffers stay allocated. Its
/// route (and the names and settings it gives) live in the table: keep the table (the config
/// version) alive while the match is used.
class http_match {
public:
  const http_route* route() const noexcept { return route_; }
  explicit operator bool() const noexcept { return route_ != nullptr; }
  /// The normalised request path the route matched.
  std::string_view path() const noexcept { return path_; }
  /// The path to forward: normalised, then strip_prefix or rewrite applied.
  std::string_view upstream_path() const noexcept { return upstream_; }
  /// The backend group picked by the route's split, and its index.
  std::string_view group() const noexcept {
    return route_ ? std::string_view(route_->config().backends[group_].group) : std::string_view{};
  }
  std::size_t group_index() const noexcept { return group_; }
  /// The hash of the request's value of the route's sticky header or cookie (balance/key.hpp's
  /// hash_key, the same everywhere); none when the route has no sticky key or the request lacks it.
  std::optional<std::uint64_t> sticky_key() const noexcept { return sticky_; }

  std::size_t param_count() const noexcept { return count_; }
  http_param param_at(std::size_t i) const noexcept {
    return {route_->param_names()[i], std::string_view(path_).substr(caps_[i].first, caps_[i].second)};
  }
  /// The value captured by `:name` or `*name`.
  std::optional<std::string_view> param(std::string_view name) const noexcept {
    for (std::size_t i = 0; i < count_; ++i)
      if (route_->param_names()[i] == name) return param_at(i).value;
    return std::nullopt;
  }

private:
  friend class http_router;
  const http_route* route_ = nullptr;
  std::string path_;
  std::string upstream_;
  std::array<std::pair<std::uint32_t, std::uint32_t>, max_route_params> caps_{};  // offset, length in path_
  std::size_t count_ = 0;
  std::size_t group_ = 0;
  std::optional<std::uint64_t> sticky_;
};

class http_router {
public:
  /// Compiles `routes` (config order is tie order). Every problem is reported, each at its
  /// route and field; a table with any problem is not built.
  static result<http_router, std::vector<http_route_error>> build(std::vector<http_route_config> routes,
                                                                  http_router_options options = {}) {
    http_router r;
    r.options_ = options;
    std::vector<http_route_error> errors;
    r.routes_.resize(routes.size());
    std::set<std::string, std::less<>> names;
    for (std::size_t i = 0; i < routes.size(); ++i) {
      auto& rt = r.routes_[i];
      rt.config_ = std::move(routes[i]);
      rt.index_ = i;
      auto fail = [&](std::string field, std::string message) {
        errors.push_back({i, std::move(field), std::move(message), std::nullopt});
      };
      if (rt.config_.name.empty()) fail("name", "a route needs a name");
      else if (!names.insert(rt.config_.name).second) fail("name", "route name '" + rt.config_.name + "' is used twice");
      compile_route(rt, fail);
    }
    if (!errors.empty()) return failure(std::move(errors));
    for (std::size_t i = 0; i < r.routes_.size(); ++i) r.insert(i, errors);
    r.sort_and_check(errors);
    if (!errors.empty()) {
      std::stable_sort(errors.begin(), errors.end(), [](const auto& a, const auto& b) { return a.route < b.route; });
      return failure(std::move(errors));
    }
    return r;
  }

  http_router() = default;
  http_router(http_router&&) noexcept = default;
  http_router& operator=(http_router&&) noexcept = default;
  http_router(const http_router&) = delete;
  http_router& operator=(const http_router&) = delete;

  const std::vector<http_route>& routes() const noexcept { return routes_; }

  /// Finds the route of `req`, fills `m` (its path, params, upstream path and group), and
  /// picks the group with the route's sticky key if the request has one, else with `draw` (a
  /// uniform random 64-bit number).
  template <http_route_request R>
  http_route_status match(const R& req, http_match& m, std::uint64_t draw = 0) const {
    m.route_ = nullptr;
    m.count_ = 0;
    m.group_ = 0;
    m.sticky_.reset();
    m.upstream_.clear();
    if (!normalize_path(req.path(), m.path_, options_.allow_encoded_slashes)) return http_route_status::bad_path;
    const std::uint32_t g = group_of(req.authority());
    if (g == no_group) return http_route_status::not_found;
    search<R> s{this, &groups_[g], m.path_, &req, &m};
    const std::string_view p = m.path_;
    if (!s.walk(0, p == "/" ? p.size() : 0, 0)) return http_route_status::not_found;
    const http_route& rt = *m.route_;
    // The path to forward.
    if (!rt.rewrite_.empty()) {
      for (const auto& part : rt.rewrite_) {
        m.upstream_ += part.literal;
        if (part.param >= 0) m.upstream_ += m.param_at(static_cast<std::size_t>(part.param)).value;
      }
    } else if (rt.strip_ > 0) {
      const std::string_view rest = p.substr(std::min(rt.strip_, p.size()));
      if (rest.empty() || rest.front() != '/') m.upstream_ += '/';
      m.upstream_ += rest;
    } else {
      m.upstream_ += p;
    }
    // The sticky key, then the group.
    std::optional<std::string_view> key;
    if (!rt.config_.sticky.header.empty()) key = req.header(rt.config_.sticky.header);
    else if (!rt.config_.sticky.cookie.empty()) key = request_cookie(req, rt.config_.sticky.cookie);
    if (key) m.sticky_ = sticky_hash(*key);
    if (rt.split_.size() > 1) m.group_ = rt.split_.pick(m.sticky_ ? *m.sticky_ : draw);
    return http_route_status::matched;
  }

  /// The routing form of an authority: port and one trailing dot dropped, ASCII lower case;
  /// empty when it is too long to be a host name (over 255 characters).
  static std::string_view host_key(std::string_view authority, std::array<char, 256>& buf) noexcept {
    std::string_view h = authority;
    if (!h.empty() && h.front() == '[') {
      if (const auto close = h.find(']'); close != std::string_view::npos) h = h.substr(0, close + 1);
    } else if (const auto colon = h.rfind(':'); colon != std::string_view::npos) {
      h = h.substr(0, colon);
    }
    if (!h.empty() && h.back() == '.') h.remove_suffix(1);
    if (h.size() > buf.size()) return {};
    for (std::size_t i = 0; i < h.size(); ++i) {
      const char c = h[i];
      buf[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    }
    return {buf.data(), h.size()};
  }

private:
  static constexpr std::uint32_t no_group = 0xffffffffu;
  static constexpr std::uint32_t no_node = 0xffffffffu;

  struct node {
    std::vector<std::pair<std::string, std::uint32_t>> literals;  // sorted by segment
    std::uint32_t param = no_node;
    std::vector<std::uint32_t> ends;   // whole-path routes ending here, in precedence order
    std::vector<std::uint32_t> tails;  // `*rest` and prefix routes from here, in precedence order
  };
  struct group {
    std::vector<node> nodes{node{}};
  };
  using segment = detail::path_segment;

  template <class R>
  struct search {
    const http_router* r;
    const group* g;
    std::string_view path;
    const R* req;
    http_match* m;

    // `pos` is the index of the '/' before the next segment, or path.size() at the end.
    bool walk(std::uint32_t n, std::size_t pos, std::size_t caps) {
      const node& nd = g->nodes[n];
      if (pos < path.size()) {
        const std::size_t start = pos + 1;
        const std::size_t end = std::min(path.find('/', start), path.size());
        const std::string_view seg = path.substr(start, end - start);
        const auto it = std::lower_bound(nd.literals.begin(), nd.literals.end(), seg,
                                         [](const auto& e, std::string_view s) { return std::string_view(e.first) < s; });
        if (it != nd.literals.end() && it->first == seg && walk(it->second, end, caps)) return true;
        if (nd.param != no_node && !seg.empty() && caps < max_route_params) {  // `:param` is never empty
          m->caps_[caps] = {static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(end - start)};
          if (walk(nd.param, end, caps + 1)) return true;
        }
      } else if (try_routes(nd.ends, caps)) {
        return true;
      }
      if (!nd.tails.empty()) {
        const std::size_t start = std::min(pos + 1, path.size());
        if (caps < max_route_params)  // a `*rest` route has a slot left (parse_pattern counts it)
          m->caps_[caps] = {static_cast<std::uint32_t>(start), static_cast<std::uint32_t>(path.size() - start)};
        return try_routes(nd.tails, caps);
      }
      return false;
    }

    bool try_routes(const std::vector<std::uint32_t>& list, std::size_t caps) {
      for (const auto i : list) {
        const http_route& rt = r->routes_[i];
        if (!rt.accepts(*req)) continue;
        m->route_ = &rt;
        m->count_ = std::min(rt.params_.size(), caps + (rt.tail_param_ ? 1 : 0));
        return true;
      }
      return false;
    }
  };

  std::uint32_t group_of(std::string_view authority) const {
    std::array<char, 256> buf;
    const std::string_view h = host_key(authority, buf);
    if (!h.empty()) {
      if (auto it = exact_.find(h); it != exact_.end()) return it->second;
      for (std::size_t dot = h.find('.'); dot != std::string_view::npos; dot = h.find('.', dot + 1)) {
        if (dot == 0) continue;
        if (auto it = wild_.find(h.substr(dot + 1)); it != wild_.end()) return it->second;
      }
    }
    return default_;
  }

  /// Splits a path pattern into segments; false with `why` on a bad pattern.
  static bool parse_pattern(std::string_view p, bool prefix, std::vector<segment>& out, std::string& why) {
    if (p.empty() || p.front() != '/') return why = "must start with '/'", false;
    if (prefix && p.size() > 1 && p.back() == '/') p.remove_suffix(1);  // "/api/" is the prefix "/api"
    std::string_view rest = p.substr(1);
    for (; p != "/";) {
      const auto slash = rest.find('/');
      const std::string_view s = rest.substr(0, slash);
      const bool last = slash == std::string_view::npos;
      if (!s.empty() && (s.front() == ':' || s.front() == '*')) {
        const std::string_view name = s.substr(1);
        if (name.empty()) return why = "'" + std::string(s) + "': a parameter needs a name", false;
        for (char c : name)
          if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return why = "'" + std::string(s) + "': a parameter name is letters, digits and '_'", false;
        for (const auto& e : out)
          if (e.what != segment::literal && e.text == name)
            return why = "parameter '" + std::string(name) + "' appears twice", false;
        if (s.front() == '*') {
          if (prefix) return why = "a prefix cannot hold '*" + std::string(name) + "' (a prefix matches the rest already)", false;
          if (!last) return why = "'*" + std::string(name) + "' must be the last segment", false;
        }
        out.push_back({s.front() == ':' ? segment::param : segment::tail, std::string(name)});
      } else {
        out.push_back({segment::literal, std::string(s)});
      }
      if (last) break;
      rest = rest.substr(slash + 1);
    }
    if (prefix) out.push_back({segment::tail, {}});
    std::size_t params = 0;
    for (const auto& e : out) params += e.what != segment::literal && !e.text.empty();
    if (params > max_route_params) return why = "more than " + std::to_string(max_route_params) + " parameters", false;
    // Literal text must be what a normalised path holds ("%2F", never "%2f"; no dot segments).
    std::string lit = "/";
    for (const auto& e : out)
      if (e.what == segment::literal) lit += e.text + "/";
    std::string norm;
    if (!normalize_path(lit, norm) || norm != lit)
      return why = "not a normalised path (no '.', '..' or empty segments, escapes only of reserved characters, "
                   "upper-case hex)",
             false;
    return true;
  }

  template <class Fail>
  static void compile_edits(const http_header_rules& rules, bool request, std::string_view field,
                            std::vector<http_header_edit>& out, Fail& fail) {
    namespace h1 = rproxy::codec::http1;
    auto check = [&](const std::string& name, std::string where) {
      if (!h1::is_valid_field_name(name)) return fail(std::move(where), "'" + name + "' is not a header name"), false;
      if (h1::is_hop_by_hop_field(name))
        return fail(std::move(where), "'" + name + "' is a hop-by-hop or framing header: the proxy sets it itself"), false;
      if (request && h1::is_forwarding_field(name))
        return fail(std::move(where), "'" + name + "' is a forwarding header: the proxy writes it (forwarding:)"), false;
      if (request && rproxy::codec::http1::detail::iequals(name, "host"))
        return fail(std::move(where), "Host is the backend's to receive as the client sent it"), false;
      return true;
    };
    for (std::size_t i = 0; i < rules.remove.size(); ++i)
      if (check(rules.remove[i], std::string(field) + ".remove[" + std::to_string(i) + "]"))
        out.push_back({http_header_edit::op::remove, rules.remove[i], {}});
    auto values = [&](const std::map<std::string, std::string>& m, std::string_view key, http_header_edit::op op) {
      for (const auto& [name, value] : m) {
        std::string where = std::string(field) + "." + std::string(key) + "." + name;
        if (!check(name, where)) continue;
        if (!h1::is_valid_field_value(value)) {
          fail(std::move(where), "not a header value (control characters or surrounding spaces)");
          continue;
        }
        out.push_back({op, name, value});
      }
    };
    values(rules.set, "set", http_header_edit::op::set);
    values(rules.add, "add", http_header_edit::op::add);
  }

  template <class Fail>
  static void compile_route(http_route& rt, Fail& fail) {
    namespace h1 = rproxy::codec::http1;
    auto& c = rt.config_;
    std::string why;
    std::vector<segment> segs;
    if (c.path.empty() == c.prefix.empty()) {
      fail("path", c.path.empty() ? "a route needs a path or a prefix" : "a route has a path or a prefix, not both");
    } else if (!parse_pattern(c.path.empty() ? c.prefix : c.path, !c.prefix.empty(), segs, why)) {
      fail(c.path.empty() ? "prefix" : "path", why);
    }
    for (const auto& s : segs)
      if (s.what != segment::literal && !s.text.empty()) rt.params_.push_back(s.text);
    rt.tail_param_ = !segs.empty() && segs.back().what == segment::tail && !segs.back().text.empty();
    for (std::size_t i = 0; i < c.hosts.size(); ++i)
      if (!is_valid_host_pattern(c.hosts[i]))
        fail("hosts[" + std::to_string(i) + "]", "'" + c.hosts[i] + "' is not a host name, *.suffix or *");
    for (std::size_t i = 0; i < c.methods.size(); ++i)
      if (!h1::detail::is_token(c.methods[i])) fail("methods[" + std::to_string(i) + "]", "not a method name");
    for (std::size_t i = 0; i < c.headers.size(); ++i) {
      if (!h1::is_valid_field_name(c.headers[i].name))
        fail("headers[" + std::to_string(i) + "].name", "'" + c.headers[i].name + "' is not a header name");
      if (c.headers[i].value && !h1::is_valid_field_value(*c.headers[i].value))
        fail("headers[" + std::to_string(i) + "].value", "not a header value");
    }
    for (std::size_t i = 0; i < c.query.size(); ++i)
      if (c.query[i].name.empty()) fail("query[" + std::to_string(i) + "].name", "empty name");
    for (std::size_t i = 0; i < c.cookies.size(); ++i)
      if (c.cookies[i].name.empty()) fail("cookies[" + std::to_string(i) + "].name", "empty name");
    // Backends and the split.
    std::vector<std::uint32_t> weights;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < c.backends.size(); ++i) {
      if (c.backends[i].group.empty()) fail("backends[" + std::to_string(i) + "].group", "empty group name");
      weights.push_back(c.backends[i].weight);
      total += c.backends[i].weight;
    }
    if (c.backends.empty()) fail("backends", "a route needs at least one backend group");
    else if (total == 0) fail("backends", "the weights add up to 0: no group would get a request");
    rt.split_ = weighted_split(std::move(weights));
    if (!c.sticky.header.empty() && !c.sticky.cookie.empty())
      fail("sticky", "a header or a cookie, not both");
    if (!c.sticky.header.empty() && !h1::is_valid_field_name(c.sticky.header)) fail("sticky.header", "not a header name");
    // strip_prefix and rewrite.
    if (!c.strip_prefix.empty() && !c.rewrite.empty()) fail("rewrite", "rewrite and strip_prefix exclude each other");
    if (!c.strip_prefix.empty()) {
      std::vector<segment> strip;
      std::string sp = c.strip_prefix;
      if (sp.size() > 1 && sp.back() == '/') sp.pop_back();
      bool ok = parse_pattern(sp, false, strip, why) && strip.size() <= segs.size();
      for (std::size_t i = 0; ok && i < strip.size(); ++i)
        ok = strip[i].what == segment::literal && segs[i].what == segment::literal && strip[i].text == segs[i].text;
      if (!ok) fail("strip_prefix", "'" + c.strip_prefix + "' is not a leading run of literal segments of the route's path");
      else rt.strip_ = sp == "/" ? 0 : sp.size();
    }
    if (!c.rewrite.empty()) {
      std::string_view t = c.rewrite;
      if (t.front() != '/') fail("rewrite", "must start with '/'");
      http_route::rewrite_part part;
      std::string check;  // the template with each {param} as "x": must be a normalised path
      for (std::size_t i = 0; i < t.size(); ++i) {
        if (t[i] == '{') {
          const auto close = t.find('}', i);
          const std::string_view name = t.substr(i + 1, close == std::string_view::npos ? 0 : close - i - 1);
          const auto at = std::find(rt.params_.begin(), rt.params_.end(), name);
          if (close == std::string_view::npos || at == rt.params_.end()) {
            fail("rewrite", "'{" + std::string(name) + "}' is not a parameter of the route's path");
            break;
          }
          part.param = static_cast<int>(at - rt.params_.begin());
          if (rt.tail_param_ && static_cast<std::size_t>(part.param) + 1 == rt.params_.size() && close + 1 != t.size()) {
            fail("rewrite", "'{" + std::string(name) + "}' (the rest of the path, maybe empty) must end the rewrite");
            break;
          }
          rt.rewrite_.push_back(std::move(part));
          part = {};
          check += 'x';
          i = close;
        } else {
          part.literal += t[i];
          check += t[i];
        }
      }
      if (!part.literal.empty()) rt.rewrite_.push_back(std::move(part));
      if (t.front() == '/' && !is_normal_path(check))
        fail("rewrite", "not a normalised path (path characters only, no '.', '..' or empty segments)");
    }
    compile_edits(c.request_headers, true, "request_headers", rt.request_edits_, fail);
    compile_edits(c.response_headers, false, "response_headers", rt.response_edits_, fail);
    if (c.timeout && c.timeout->count() <= 0) fail("timeout", "must be more than 0");
    if (c.idle_timeout && c.idle_timeout->count() <= 0) fail("idle_timeout", "must be more than 0");
    rt.segs_ = std::move(segs);
  }

  void insert(std::size_t i, std::vector<http_route_error>& errors) {
    const http_route& rt = routes_[i];
    std::vector<std::uint32_t> groups;
    auto group_for = [&](std::string_view pattern) -> std::uint32_t {
      auto make = [&] {
        groups_.emplace_back();
        return static_cast<std::uint32_t>(groups_.size() - 1);
      };
      if (pattern == "*") {
        if (default_ == no_group) default_ = make();
        return default_;
      }
      auto& map = pattern.starts_with("*.") ? wild_ : exact_;
      const std::string key = normalize_host(pattern.starts_with("*.") ? pattern.substr(2) : pattern);
      if (auto it = map.find(key); it != map.end()) return it->second;
      const auto g = make();
      map.emplace(key, g);
      return g;
    };
    if (rt.config_.hosts.empty()) groups.push_back(group_for("*"));
    for (std::size_t h = 0; h < rt.config_.hosts.size(); ++h) {
      const auto g = group_for(rt.config_.hosts[h]);
      if (std::find(groups.begin(), groups.end(), g) != groups.end()) {
        errors.push_back({i, "hosts[" + std::to_string(h) + "]", "host '" + rt.config_.hosts[h] + "' is listed twice", std::nullopt});
        continue;
      }
      groups.push_back(g);
    }
    for (const auto g : groups) {
      std::uint32_t n = 0;
      bool tail = false;
      for (const auto& s : rt.segs_) {
        if (s.what == segment::tail) {
          tail = true;
          break;
        }
        if (s.what == segment::param) {
          if (groups_[g].nodes[n].param == no_node) {
            groups_[g].nodes.emplace_back();
            groups_[g].nodes[n].param = static_cast<std::uint32_t>(groups_[g].nodes.size() - 1);
          }
          n = groups_[g].nodes[n].param;
          continue;
        }
        auto& lits = groups_[g].nodes[n].literals;
        auto it = std::lower_bound(lits.begin(), lits.end(), s.text, [](const auto& e, const std::string& t) { return e.first < t; });
        if (it == lits.end() || it->first != s.text) {
          groups_[g].nodes.emplace_back();
          auto& lits2 = groups_[g].nodes[n].literals;  // emplace_back may have moved the nodes
          it = std::lower_bound(lits2.begin(), lits2.end(), s.text, [](const auto& e, const std::string& t) { return e.first < t; });
          it = lits2.insert(it, {s.text, static_cast<std::uint32_t>(groups_[g].nodes.size() - 1)});
        }
        n = it->second;
      }
      (tail ? groups_[g].nodes[n].tails : groups_[g].nodes[n].ends).push_back(static_cast<std::uint32_t>(i));
    }
  }

  /// Whether route `a` accepts every request that route `b` accepts (same path shape assumed).
  static bool covers(const http_route& a, const http_route& b) {
    const auto& ca = a.config_;
    const auto& cb = b.config_;
    if (!ca.methods.empty()) {
      if (cb.methods.empty()) return false;
      for (const auto& m : cb.methods)
        if (std::find(ca.methods.begin(), ca.methods.end(), m) == ca.methods.end()) return false;
    }
    auto implied = [](const std::vector<http_match_rule>& need, const std::vector<http_match_rule>& have, bool icase) {
      for (const auto& n : need) {
        const bool found = std::any_of(have.begin(), have.end(), [&](const http_match_rule& h) {
          const bool same = icase ? rproxy::codec::http1::detail::iequals(h.name, n.name) : h.name == n.name;
          return same && (!n.value || h.value == n.value);
        });
        if (!found) return false;
      }
      return true;
    };
    return implied(ca.headers, cb.headers, true) && implied(ca.query, cb.query, false) && implied(ca.cookies, cb.cookies, false);
  }

  void sort_and_check(std::vector<http_route_error>& errors) {
    std::set<std::pair<std::size_t, std::size_t>> reported;
    for (auto& g : groups_)
      for (auto& n : g.nodes)
        for (auto* list : {&n.ends, &n.tails}) {
          std::stable_sort(list->begin(), list->end(), [&](std::uint32_t a, std::uint32_t b) {
            return routes_[a].predicate_count() > routes_[b].predicate_count();
          });
          for (std::size_t j = 1; j < list->size(); ++j)
            for (std::size_t k = 0; k < j; ++k) {
              const auto& late = routes_[(*list)[j]];
              const auto& early = routes_[(*list)[k]];
              if (!covers(early, late) || !reported.insert({late.index_, early.index_}).second) continue;
              errors.push_back({late.index_, {},
                                "route '" + late.name() + "' is unreachable: route '" + early.name() +
                                    "' has the same hosts and path and matches every request it matches",
                                early.index_});
              break;
            }
        }
  }

  http_router_options options_{};
  std::vector<http_route> routes_;
  std::vector<group> groups_;
  std::unordered_map<std::string, std::uint32_t, detail::string_hash, std::equal_to<>> exact_, wild_;
  std::uint32_t default_ = no_group;
};

}  // namespace rproxy::route
