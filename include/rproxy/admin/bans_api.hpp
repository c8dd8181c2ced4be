// rproxy/admin/bans_api.hpp: bans made and lifted through the admin endpoint (admin/server.hpp),
// applied by this instance at once and, when the app has a `redis:` block, by every instance
// sharing it within a second (cluster/shared_bans.hpp: a hash and a channel in Redis). An app
// that checks `bans.list()` (middleware::ban_check's `shared`) mounts it in one line:
//
//     rt.on_admin([&bans](rproxy::admin::server& s) { rproxy::admin::mount_bans_api(s, bans); });
//
//   GET    /bans                    {"shared":true,"bans":[{"kind":"addr","subject":"203.0.113.0/24",
//                                     "until":1767225600,"reason":"scraping"}, ...]}  (until 0: permanent)
//   POST   /bans                    a body of ban lines or JSON (admin/ban_request.hpp):
//                                     addr 203.0.113.7 10m scraping
//                                     {"kind":"identity","subject":"Griefer","duration":"1h"}
//                                   -> {"banned":N}; a bad body: 400 {"error":"bad_request","message":"line 1: ..."}
//   DELETE /bans/addr/ADDRESS[/BITS]   -> {"lifted":true}   (203.0.113.0/24: /bans/addr/203.0.113.0/24)
//   DELETE /bans/identity/NAME         (NAME percent-decoded)
//   POST   /bans?kind=addr&subject=203.0.113.7&ttl=600&reason=...   the query form (no body): one ban,
//   DELETE /bans?kind=addr&subject=203.0.113.7                      ttl in seconds (absent, 0: permanent)
//
// mount_bans_api(s, bans, "/api/bans") serves the same under another path (h3-gateway's). A
// new ban also ends the open flows it covers, where the app has a ban_kick stage
// (middleware/ban_kick.hpp: shared_bans::on_change).
//
// Every /bans request needs the admin token when one is set (the list names addresses and
// players), GET included. A ban lifted here is lifted on every instance, including one made by
// another instance's ban file (whose own file still has the line: see docs/scaling.md). Handlers
// run on the admin server's thread; shared_bans may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/admin/ban_request.hpp>
#include <rproxy/admin/server.hpp>
#include <rproxy/cluster/shared_bans.hpp>
#include <rproxy/core/json.hpp>
#include <rproxy/middleware/ban.hpp>

namespace rproxy::admin {

namespace detail {

inline response ban_error(unsigned status, std::string_view code, std::string_view message) {
  std::string body = "{\"error\":";
  json::append_string(body, code);
  body += ",\"message\":";
  json::append_string(body, message);
  body += "}\n";
  return json(status, std::move(body));
}

/// The JSON of GET /bans, from the ban file text of `list` (one line per active ban).
inline std::string bans_json(const middleware::ban_list& list, bool shared) {
  std::string out = shared ? "{\"shared\":true,\"bans\":[" : "{\"shared\":false,\"bans\":[";
  const std::string all = list.serialize();
  std::string_view text = all;
  bool first = true;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    // "<kind> <subject> <until> <reason>", subject and reason percent-encoded
    std::string_view f[4];
    for (int i = 0; i < 3; ++i) {
      const auto sp = line.find(' ');
      f[i] = line.substr(0, sp);
      line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    }
    f[3] = line;
    std::string subject, reason;
    if (!middleware::detail::percent_decode(f[1], subject)) subject = std::string(f[1]);
    if (!middleware::detail::percent_decode(f[3], reason)) reason = std::string(f[3]);
    out += first ? "{\"kind\":" : ",{\"kind\":";
    first = false;
    json::append_string(out, f[0]);
    out += ",\"subject\":";
    json::append_string(out, subject);
    out += ",\"until\":";
    out += std::to_string(std::strtoll(std::string(f[2]).c_str(), nullptr, 10));
    out += ",\"reason\":";
    json::append_string(out, reason);
    out += '}';
  }
  out += "]}\n";
  return out;
}

/// The query form's ban (`kind=addr&subject=203.0.113.7&ttl=600&reason=...`, values
/// percent-encoded; ttl in seconds, absent or 0: permanent), checked as a body's ban is.
inline result<ban_request, std::string> ban_of_query(std::string_view q) {
  ban_request b;
  std::string ttl;
  while (!q.empty()) {
    const auto amp = q.find('&');
    const std::string_view kv = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (kv.empty()) continue;
    const auto eq = kv.find('=');
    const std::string_view key = kv.substr(0, eq);
    std::string value;
    if (eq == std::string_view::npos || !middleware::detail::percent_decode(kv.substr(eq + 1), value))
      return failure("query parameter " + admin::detail::quoted(key) + ": a value, percent-encoded");
    if (key == "kind") b.kind = std::move(value);
    else if (key == "subject") b.subject = std::move(value);
    else if (key == "reason") b.reason = std::move(value);
    else if (key == "ttl") ttl = std::move(value);
    else return failure("unknown query parameter " + admin::detail::quoted(key) + " (kind, subject, ttl, reason)");
  }
  if (auto why = check_ban(b.kind, b.subject); !why.empty()) return failure(std::move(why));
  std::string why;
  if (!ttl.empty()) {
    const bool digits = ttl.size() <= 10 && ttl.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoll(ttl) > ban_request_limits::max_duration.count())
      return failure("ttl " + admin::detail::quoted(ttl) + ": whole seconds, at most ten years");
    b.duration = std::chrono::seconds(std::stoll(ttl));
  }
  if (!check_reason(b.reason, why)) return failure(std::move(why));
  return b;
}

}  // namespace detail

/// Mounts GET, POST and DELETE on `path` (default /bans; DELETE also on path/KIND/SUBJECT) on
/// `s`; `bans` must outlive it.
inline void mount_bans_api(server& s, cluster::shared_bans& bans, const std::string& path = "/bans") {
  s.require_token(path);
  s.handle("GET", path, [&bans](const request&) { return json(200, detail::bans_json(bans.list(), bans.shared())); });
  s.handle("POST", path, [&bans](const request& r) {
    auto asked = parse_ban_request(r.body);
    if (!r.query.empty() && r.body.find_first_not_of(" \t\r\n") == std::string::npos) {  // the query form
      auto one = detail::ban_of_query(r.query);
      if (!one) return detail::ban_error(400, "bad_request", one.error());
      asked = std::vector<ban_request>{std::move(*one)};
    }
    if (!asked) return detail::ban_error(400, "bad_request", asked.error());
    const auto now = middleware::ban_clock::now();
    std::size_t n = 0;
    for (const auto& b : *asked) {
      const auto until = b.duration.count() == 0 ? middleware::ban_clock::time_point{} : now + b.duration;
      if (bans.ban(b.kind, b.subject, until, b.reason)) ++n;  // checked by the parser: always true
    }
    return json(200, "{\"banned\":" + std::to_string(n) + "}\n");
  });
  s.handle("DELETE", path, [&bans](const request& r) {
    auto one = detail::ban_of_query(r.query);
    if (!one) return detail::ban_error(400, "bad_request", one.error());
    bans.unban(one->kind, one->subject);
    return json(200, "{\"lifted\":true}\n");
  });
  s.handle_prefix("DELETE", path + "/", [&bans, skip = path.size() + 1](const request& r) {
    std::string_view rest = r.path.substr(skip);
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) return detail::ban_error(400, "bad_request", "DELETE /bans/addr/ADDRESS[/BITS] or /bans/identity/NAME");
    const std::string_view kind = rest.substr(0, slash);
    std::string subject;
    if (!middleware::detail::percent_decode(rest.substr(slash + 1), subject))
      return detail::ban_error(400, "bad_request", "bad percent-encoding in the subject");
    if (auto why = detail::check_ban(kind, subject); !why.empty()) return detail::ban_error(400, "bad_request", why);
    bans.unban(kind, subject);
    return json(200, "{\"lifted\":true}\n");
  });
}

}  // namespace rproxy::admin
