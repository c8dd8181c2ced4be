// rproxy/admin/ban_request.hpp: the body of an admin `POST /bans` (admin/bans_api.hpp), read
// into bans. Two spellings, the first byte decides ('{' or '[': JSON, else lines):
//
//     addr 203.0.113.7                  # one ban per line: kind, subject, then optionally
//     addr 198.51.100.0/24 1h scraping  # a duration (config syntax: 90s, 10m, 1h30m; 0 or
//     identity Griefer 0 spawn griefing # "permanent": no end) and a reason (the rest of the line)
//
//     {"kind": "addr", "subject": "203.0.113.7", "duration": "10m", "reason": "scraping"}
//     [{"kind": "identity", "subject": "Griefer"}, ...]       # or an array of such objects
//
// A line's third word is its duration when it reads as one, else the reason starts there. Kinds:
// `addr` (an IPv4/IPv6 address or CIDR block) and `identity` (a name: a player, an API user).
// It reads network-facing text, so it is bounded (max_body bytes, max_bans bans, subjects and
// reasons of max_subject / max_reason bytes, durations up to max_duration) and fuzzed
// (tests/fuzz/admin_ban_request.cpp). Every error names the line or element and says why, and a
// body with one bad ban yields no bans at all.
//
//     auto r = rproxy::admin::parse_ban_request(body);
//     if (!r) return admin::json(400, error_json(r.error()));   // "line 2: bad address '1.2.3'"
//     for (const auto& b : *r) bans.ban(b.kind, b.subject, until(b.duration), b.reason);
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/config/duration.hpp>
#include <rproxy/core/json.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/core/utf8.hpp>
#include <rproxy/middleware/ip.hpp>

namespace rproxy::admin {

/// One ban asked for. duration 0: permanent.
struct ban_request {
  std::string kind;     ///< "addr" or "identity"
  std::string subject;  ///< an address or CIDR block (as given), or a name
  std::chrono::seconds duration{0};
  std::string reason;

  friend bool operator==(const ban_request&, const ban_request&) = default;
};

struct ban_request_limits {
  static constexpr std::size_t max_body = 16 * 1024;
  static constexpr std::size_t max_bans = 100;  ///< per request
  static constexpr std::size_t max_subject = 256;
  static constexpr std::size_t max_reason = 512;
  static constexpr std::chrono::seconds max_duration{std::chrono::hours(24 * 365 * 10)};
};

namespace detail {

inline bool blank(char c) noexcept { return c == ' ' || c == '\t' || c == '\r'; }

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

inline std::string_view next_word(std::string_view& s) noexcept {
  s = trim(s);
  std::size_t i = 0;
  while (i < s.size() && !blank(s[i])) ++i;
  auto w = s.substr(0, i);
  s = trim(s.substr(i));
  return w;
}

/// A printable excerpt of what the client sent, for an error message.
inline std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 64)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (s.size() > 64) out += "...";
  return out + "'";
}

/// Checks a kind and subject; empty when they name a ban, else why not.
inline std::string check_ban(std::string_view kind, std::string_view subject) {
  if (kind == "addr") {
    if (!middleware::cidr::parse(subject)) return "bad address or CIDR block " + quoted(subject);
    return {};
  }
  if (kind == "identity") {
    if (subject.empty()) return "identity needs a name";
    if (subject.size() > ban_request_limits::max_subject) return "name longer than " + std::to_string(ban_request_limits::max_subject) + " bytes";
    for (char c : subject)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "name has a control character";
    if (!utf8::is_valid(subject)) return "name is not UTF-8";
    return {};
  }
  return "kind must be addr or identity, not " + quoted(kind);
}

/// "10m", "1h30m", "0" or "permanent" -> seconds; false (and `why`) otherwise.
inline bool read_duration(std::string_view text, std::chrono::seconds& out, std::string& why) {
  if (text == "permanent") {
    out = std::chrono::seconds(0);
    return true;
  }
  auto d = config::parse_duration<std::chrono::seconds>(text);
  if (!d) {
    why = d.error().message;
    return false;
  }
  if (*d > ban_request_limits::max_duration || d->count() < 0) {
    why = "duration " + quoted(text) + " is longer than ten years";
    return false;
  }
  out = *d;
  return true;
}

inline bool check_reason(std::string_view reason, std::string& why) {
  if (reason.size() > ban_request_limits::max_reason) {
    why = "reason longer than " + std::to_string(ban_request_limits::max_reason) + " bytes";
    return false;
  }
  if (!utf8::is_valid(reason)) {
    why = "reason is not UTF-8";
    return false;
  }
  return true;
}

inline result<std::vector<ban_request>, std::string> parse_ban_lines(std::string_view body) {
  std::vector<ban_request> out;
  std::size_t lineno = 0;
  while (!body.empty()) {
    ++lineno;
    const auto nl = body.find('\n');
    std::string_view line = trim(body.substr(0, nl));
    body = nl == std::string_view::npos ? std::string_view{} : body.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    auto fail = [&](const std::string& why) { return failure("line " + std::to_string(lineno) + ": " + why); };
    if (out.size() == ban_request_limits::max_bans) return fail("more than " + std::to_string(ban_request_limits::max_bans) + " bans in one request");
    ban_request b;
    b.kind = next_word(line);
    b.subject = next_word(line);
    if (auto why = check_ban(b.kind, b.subject); !why.empty()) return fail(why);
    std::string_view rest = line;
    std::string_view third = next_word(rest);
    std::string why;
    if (!third.empty() && (third == "permanent" || (third.front() >= '0' && third.front() <= '9'))) {
      if (!read_duration(third, b.duration, why)) return fail(why);
      line = rest;
    }
    if (!check_reason(line, why)) return fail(why);
    b.reason = std::string(line);
    out.push_back(std::move(b));
  }
  if (out.empty()) return failure(std::string("no ban in the body (a line: addr ADDRESS|CIDR or identity NAME, then a duration and a reason if any)"));
  return out;
}

inline std::string read_ban_object(json::value v, ban_request& b) {
  if (!v.is_object()) return "a ban is an object";
  for (json::value m : v.children()) {
    const auto k = m.key();
    if (k == "kind" || k == "subject" || k == "reason") {
      if (!m.is_string()) return "'" + std::string(k) + "' must be a string";
      (k == "kind" ? b.kind : k == "subject" ? b.subject : b.reason) = std::string(m.as_string());
    } else if (k == "duration") {
      std::string why;
      if (m.is_number()) {
        auto n = m.as_int(0, ban_request_limits::max_duration.count());
        if (!n) return "'duration' in seconds must be a whole number from 0 to ten years";
        b.duration = std::chrono::seconds(*n);
      } else if (!m.is_string() || !read_duration(m.as_string(), b.duration, why)) {
        return why.empty() ? "'duration' must be a string (\"10m\") or a number of seconds" : why;
      }
    } else {
      return "unknown member " + quoted(k) + " (kind, subject, duration, reason)";
    }
  }
  if (auto why = check_ban(b.kind, b.subject); !why.empty()) return why;
  std::string why;
  if (!check_reason(b.reason, why)) return why;
  return {};
}

inline result<std::vector<ban_request>, std::string> parse_ban_json(std::string_view body) {
  auto doc = json::parse(body, {.max_bytes = ban_request_limits::max_body, .max_depth = 3, .max_nodes = 1 + ban_request_limits::max_bans * 8});
  if (!doc) return failure("bad JSON: " + doc.error().message());
  std::vector<ban_request> out;
  const auto root = doc->root();
  if (root.is_array()) {
    if (root.size() == 0) return failure(std::string("no ban in the array"));
    if (root.size() > ban_request_limits::max_bans) return failure("more than " + std::to_string(ban_request_limits::max_bans) + " bans in one request");
    std::size_t i = 0;
    for (json::value v : root.children()) {
      ban_request b;
      if (auto why = read_ban_object(v, b); !why.empty()) return failure("ban " + std::to_string(i) + ": " + why);
      out.push_back(std::move(b));
      ++i;
    }
    return out;
  }
  ban_request b;
  if (auto why = read_ban_object(root, b); !why.empty()) return failure(why);
  out.push_back(std::move(b));
  return out;
}

}  // namespace detail

/// The bans a `POST /bans` body asks for, or why it cannot be read (nothing is half-applied).
inline result<std::vector<ban_request>, std::string> parse_ban_request(std::string_view body) {
  if (body.size() > ban_request_limits::max_body) return failure("body larger than " + std::to_string(ban_request_limits::max_body) + " bytes");
  std::size_t i = 0;
  while (i < body.size() && (detail::blank(body[i]) || body[i] == '\n')) ++i;
  if (i < body.size() && (body[i] == '{' || body[i] == '[')) return detail::parse_ban_json(body);
  return detail::parse_ban_lines(body);
}

}  // namespace rproxy::admin
