// rproxy/middleware/ban.hpp: bans by IP, CIDR block or identity (user name, JWT subject), each
// with an expiry (or permanent), persisted to a small line-format file and reloaded; and the
// ban_check stage that enforces them.
//
// The ban list is shared by all workers and changed at run time (admin API, auto-ban), so it is
// guarded by a shared_mutex: checks take the shared lock, changes the exclusive one.
//
//     rproxy::middleware::ban_list bans;
//     bans.ban_address(*cidr::parse("203.0.113.0/24"), now + 1h, "scraping");
//     bans.ban_identity("griefer", {}, "griefing");                 // {}: permanent
//     bans.save("/var/lib/rproxy/bans.txt");                        // atomic: temp file + rename
//     bans.load("/var/lib/rproxy/bans.txt");                        // replaces the contents
//     auto p = rproxy::make_pipeline(rproxy::middleware::ban_check{&bans, &audit}, ...);
//
// File format, one ban per line, '#' comments; fields separated by one space; the name and the
// reason are percent-encoded (space, '%', control bytes), `until` is Unix seconds (0: permanent):
//
//     # rproxy bans v1
//     addr 203.0.113.0/24 1767225600 scraping
//     addr 2001:db8::/48 0 abuse%20report%2042
//     identity griefer 0 griefing
//
// The stage checks the client address on accept, the protocol user name (request_view
// username(), e.g. a Minecraft login) and ctx.identity on hello, and ctx.identity again on route
// (after the auth stages have set it). It rejects with reject_code::banned, and a retry hint of
// the remaining ban time for temporary bans.
#pragma once

#include <asio/ip/address.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <rproxy/core/result.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/error.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/middleware/request_view.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

using ban_clock = std::chrono::system_clock;

struct ban_entry {
  ban_clock::time_point until{};  ///< epoch (default): permanent
  std::string reason;

  bool permanent() const noexcept { return until == ban_clock::time_point{}; }
  bool active(ban_clock::time_point now) const noexcept { return permanent() || now < until; }
};

/// A ban that matched: what it was and how long it lasts.
struct ban_hit {
  std::string subject;  ///< the CIDR block or identity that matched
  ban_entry entry;
};

namespace detail {
inline std::string percent_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7F || c == '%') {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 0xF];
    } else {
      out += c;
    }
  }
  return out;
}
inline bool percent_decode(std::string_view s, std::string& out) {
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out.clear();
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    int hi = nib(s[i + 1]), lo = nib(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi << 4 | lo);
    i += 2;
  }
  return true;
}
}  // namespace detail

struct ban_list_options {
  /// Match identities ignoring ASCII case (Minecraft user names: "Notch" is "notch").
  bool fold_identity_case = false;
};

class ban_list {
public:
  ban_list() = default;
  explicit ban_list(ban_list_options o) : opt_(o) {}

  void ban_address(const cidr& block, ban_clock::time_point until, std::string reason = {}) {
    std::unique_lock lock(mu_);
    addresses_.insert(block, ban_entry{until, std::move(reason)});
  }
  void ban_identity(std::string name, ban_clock::time_point until, std::string reason = {}) {
    std::unique_lock lock(mu_);
    identities_.insert_or_assign(identity_key(std::move(name)), ban_entry{until, std::move(reason)});
  }
  bool unban_address(const cidr& block) {
    std::unique_lock lock(mu_);
    return addresses_.erase(block);
  }
  bool unban_identity(std::string_view name) {
    std::unique_lock lock(mu_);
    auto it = identities_.find(identity_key(std::string(name)));
    if (it == identities_.end()) return false;
    identities_.erase(it);
    return true;
  }

  /// The most specific active ban covering `a`, if any.
  std::optional<ban_hit> find_address(const asio::ip::address& a, ban_clock::time_point now) const {
    std::shared_lock lock(mu_);
    if (addresses_.empty()) return std::nullopt;
    std::optional<ban_hit> hit;
    addresses_.find_if(to_ip_key(a), [&](const cidr& c, const ban_entry& e) {
      if (!e.active(now)) return false;
      hit = ban_hit{c.to_string(), e};
      return true;
    });
    return hit;
  }

  std::optional<ban_hit> find_identity(std::string_view name, ban_clock::time_point now) const {
    std::shared_lock lock(mu_);
    if (identities_.empty() || name.empty()) return std::nullopt;
    auto it = identities_.find(identity_key(std::string(name)));
    if (it == identities_.end() || !it->second.active(now)) return std::nullopt;
    return ban_hit{it->first, it->second};
  }

  /// Drops expired bans; returns how many.
  std::size_t purge_expired(ban_clock::time_point now) {
    std::unique_lock lock(mu_);
    std::size_t n = addresses_.erase_if([&](const cidr&, const ban_entry& e) { return !e.active(now); });
    n += std::erase_if(identities_, [&](const auto& kv) { return !kv.second.active(now); });
    return n;
  }

  std::size_t size() const {
    std::shared_lock lock(mu_);
    return addresses_.size() + identities_.size();
  }

  /// The file text of the active bans (expired ones are left out).
  std::string serialize(ban_clock::time_point now = ban_clock::now()) const {
    std::shared_lock lock(mu_);
    std::string out = "# rproxy bans v1\n";
    auto line = [&](std::string_view kind, std::string_view subject, const ban_entry& e) {
      if (!e.active(now)) return;
      out += kind;
      out += ' ';
      out += subject;
      out += ' ';
      out += std::to_string(e.permanent() ? 0 : std::chrono::duration_cast<std::chrono::seconds>(e.until.time_since_epoch()).count());
      out += ' ';
      out += detail::percent_encode(e.reason);
      out += '\n';
    };
    addresses_.for_each([&](const cidr& c, const ban_entry& e) { line("addr", c.to_string(), e); });
    for (const auto& [name, e] : identities_) line("identity", detail::percent_encode(name), e);
    return out;
  }

  /// Replaces the contents with the bans in `text`. On error nothing changes; `error_line`
  /// receives the 1-based line number.
  rproxy::result<void> parse(std::string_view text, std::size_t* error_line = nullptr) {
    cidr_table<ban_entry> addrs;
    std::unordered_map<std::string, ban_entry> ids;
    std::size_t lineno = 0;
    auto bad = [&] {
      if (error_line) *error_line = lineno;
      return rproxy::result<void>(rproxy::failure(make_error_code(error::bad_ban_file)));
    };
    while (!text.empty()) {
      ++lineno;
      auto nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || line.front() == '#') continue;
      std::string_view f[4];
      for (int i = 0; i < 3; ++i) {
        auto sp = line.find(' ');
        if (sp == std::string_view::npos) return bad();
        f[i] = line.substr(0, sp);
        line.remove_prefix(sp + 1);
      }
      f[3] = line;  // reason (may be empty)
      // `until` past what the clock can hold (about year 2262 for nanoseconds) is clamped to
      // its end: a ban far in the future, never an overflow that would end it at once.
      constexpr std::int64_t max_secs =
          std::chrono::duration_cast<std::chrono::seconds>(ban_clock::duration::max()).count() - 1;
      std::int64_t secs = 0;
      auto [p, ec] = std::from_chars(f[2].data(), f[2].data() + f[2].size(), secs);
      if (p != f[2].data() + f[2].size() || f[2].empty() || f[2].front() == '-') return bad();
      if (ec == std::errc::result_out_of_range) secs = max_secs;
      else if (ec != std::errc{}) return bad();
      ban_entry e;
      if (secs != 0) e.until = ban_clock::time_point(std::chrono::seconds(std::min(secs, max_secs)));
      if (!detail::percent_decode(f[3], e.reason)) return bad();
      if (f[0] == "addr") {
        auto c = cidr::parse(f[1]);
        if (!c) return bad();
        addrs.insert(*c, std::move(e));
      } else if (f[0] == "identity") {
        std::string name;
        if (!detail::percent_decode(f[1], name) || name.empty()) return bad();
        ids.insert_or_assign(identity_key(std::move(name)), std::move(e));
      } else {
        return bad();
      }
    }
    std::unique_lock lock(mu_);
    addresses_ = std::move(addrs);
    identities_ = std::move(ids);
    return {};
  }

  rproxy::result<void> load(const std::string& path, std::size_t* error_line = nullptr) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return rproxy::failure(make_error_code(error::file_unreadable));
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), error_line);
  }

  /// Writes the active bans to `path` atomically (a temporary file renamed over it).
  rproxy::result<void> save(const std::string& path, ban_clock::time_point now = ban_clock::now()) const {
    std::string text = serialize(now);
    std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      if (!out) return rproxy::failure(make_error_code(error::file_unreadable));
      out << text;
      out.flush();
      if (!out) return rproxy::failure(make_error_code(error::file_unreadable));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      std::remove(tmp.c_str());
      return rproxy::failure(make_error_code(error::file_unreadable));
    }
    return {};
  }

private:
  std::string identity_key(std::string name) const {
    if (opt_.fold_identity_case)
      for (auto& c : name)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return name;
  }

  ban_list_options opt_{};
  mutable std::shared_mutex mu_;
  cidr_table<ban_entry> addresses_;
  std::unordered_map<std::string, ban_entry> identities_;
};

struct ban_check_config {
  std::string reject_message = "banned";
};

/// The stage enforcing a ban_list.
template <class Clock = ban_clock>
struct basic_ban_check {
  const ban_list* bans = nullptr;
  audit_log* audit = nullptr;
  const ban_check_config* cfg = nullptr;  ///< optional: for the reject message
  const ban_list* shared = nullptr;        ///< optional: bans made by other instances (cluster/shared_bans.hpp)

  template <class Ctx>
  rproxy::verdict on_accept(Ctx& ctx) {
    const auto now = Clock::now();
    auto hit = bans->find_address(ctx.client.address(), now);
    if (!hit && shared != nullptr) hit = shared->find_address(ctx.client.address(), now);
    return check(ctx, hit);
  }

  template <class Ctx, class Msg>
  rproxy::verdict on_hello(Ctx& ctx, const Msg& msg) {
    auto now = Clock::now();
    if (auto name = username_of(msg))
      if (auto v = check(ctx, identity(*name, now)); !v.is_next()) return v;
    return check(ctx, identity(ctx.identity, now));
  }

  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    return check(ctx, identity(ctx.identity, Clock::now()));
  }

private:
  std::optional<ban_hit> identity(std::string_view name, ban_clock::time_point now) const {
    auto hit = bans->find_identity(name, now);
    if (!hit && shared != nullptr) hit = shared->find_identity(name, now);
    return hit;
  }

  template <class Ctx>
  rproxy::verdict check(Ctx& ctx, const std::optional<ban_hit>& hit) {
    if (!hit) return rproxy::next;
    std::uint32_t retry = 0;
    if (!hit->entry.permanent()) {
      auto left = std::chrono::ceil<std::chrono::seconds>(hit->entry.until - Clock::now()).count();
      retry = static_cast<std::uint32_t>(std::clamp<std::int64_t>(left, 1, 0xFFFFFFFF));
    }
    std::string_view msg = cfg ? std::string_view(cfg->reject_message) : std::string_view("banned");
    return reject_and_audit(ctx, audit, {reject_code::banned, msg, retry}, "ban_check",
                            hit->entry.reason.empty() ? std::string_view("banned") : std::string_view(hit->entry.reason),
                            hit->subject);
  }
};

using ban_check = basic_ban_check<>;

}  // namespace rproxy::middleware
