// rproxy/middleware/audit_log.hpp: the security audit trail: one line per rejected flow, with
// the reason, the key that tripped (rate-limit key, identity, ban entry) and the client, itself
// rate-limited so a flood of rejections cannot fill the disk.
//
// The log writes through a sink (a plain function pointer and a user pointer, so no
// std::function sits on the rejection path); an spdlog adapter belongs to observe/:
//
//     std::vector<std::string> lines;
//     auto log = rproxy::middleware::audit_log::to(lines_sink, {.per_second = 20, .burst = 50});
//     rproxy::middleware::reject_and_audit(ctx, &log, {rproxy::reject_code::banned, "banned"},
//                                          "ban_check", "ip ban", "203.0.113.7/32");
//
// What is never passed here: tokens, API keys, passwords, cookies, signatures. Stages pass the
// key *name*, the subject, or the rate-limit key (built from IPs, names and claims). Every field
// is escaped (control characters, quotes) and truncated, so a hostile user name cannot forge or
// split log lines.
#pragma once

#include <asio/ip/address.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

/// One rejection, as stages report it. All views are valid for the duration of the call.
struct audit_record {
  reject_code code = reject_code::forbidden;
  std::string_view stage;   ///< which stage rejected ("jwt_auth", "rate_limit", ...)
  std::string_view reason;  ///< detail for operators ("token expired"); never a secret
  std::string_view key;     ///< what tripped: rate-limit key, identity, ban entry; never a secret
  asio::ip::address client{};
  std::uint64_t flow_id = 0;
  std::uint64_t suppressed = 0;  ///< set by the log: records dropped since the last one written
};

struct audit_log_config {
  double per_second = 20;       ///< sustained lines per second
  std::uint32_t burst = 100;    ///< lines allowed at once
  std::size_t max_field = 128;  ///< longer fields are cut (with "...")
};

class audit_log {
public:
  using sink_fn = void (*)(void* user, const audit_record& rec, std::string_view line);
  using clock = std::chrono::steady_clock;

  using config = audit_log_config;

  audit_log(sink_fn sink, void* user, config cfg = {}) : sink_(sink), user_(user), cfg_(cfg) {
    tokens_ = static_cast<double>(cfg_.burst);
  }

  /// A log writing to `f` (any object with operator()(const audit_record&, std::string_view)),
  /// which must outlive the log.
  template <class F>
  static audit_log to(F& f, config cfg = {}) {
    return audit_log([](void* u, const audit_record& r, std::string_view line) { (*static_cast<F*>(u))(r, line); },
                     &f, cfg);
  }

  audit_log(const audit_log& o) : sink_(o.sink_), user_(o.user_), cfg_(o.cfg_), tokens_(o.tokens_) {}

  /// Writes the record unless over the rate; false when suppressed.
  bool record(audit_record rec) { return record(rec, clock::now()); }
  bool record(audit_record rec, clock::time_point now) {
    std::uint64_t dropped = 0;
    {
      std::lock_guard lock(mu_);
      if (started_) {
        double dt = std::chrono::duration<double>(now - last_).count();
        if (dt > 0) tokens_ = std::min<double>(cfg_.burst, tokens_ + dt * cfg_.per_second);
      }
      started_ = true;
      if (now > last_) last_ = now;
      if (tokens_ < 1.0) {
        suppressed_total_.fetch_add(1, std::memory_order_relaxed);
        ++pending_suppressed_;
        return false;
      }
      tokens_ -= 1.0;
      dropped = pending_suppressed_;
      pending_suppressed_ = 0;
    }
    rec.suppressed = dropped;
    written_.fetch_add(1, std::memory_order_relaxed);
    if (sink_) sink_(user_, rec, format(rec, cfg_.max_field));
    return true;
  }

  std::uint64_t written() const noexcept { return written_.load(std::memory_order_relaxed); }
  std::uint64_t suppressed() const noexcept { return suppressed_total_.load(std::memory_order_relaxed); }

  /// The record as one logfmt line:
  /// `audit=reject code=rate_limited stage=rate_limit client=192.0.2.1 flow=7 key="..." reason="..."`.
  static std::string format(const audit_record& r, std::size_t max_field = 128) {
    std::string s = "audit=reject code=";
    s += to_string(r.code);
    s += " stage=";
    append_value(s, r.stage, max_field);
    s += " client=";
    s += r.client.to_string();
    s += " flow=";
    s += std::to_string(r.flow_id);
    if (!r.key.empty()) {
      s += " key=";
      append_value(s, r.key, max_field);
    }
    s += " reason=";
    append_value(s, r.reason, max_field);
    if (r.suppressed != 0) {
      s += " suppressed_before=";
      s += std::to_string(r.suppressed);
    }
    return s;
  }

  /// Appends `v` quoted when needed, with `"` `\` and control bytes escaped and length bounded.
  static void append_value(std::string& s, std::string_view v, std::size_t max_field) {
    bool cut = v.size() > max_field;
    if (cut) v = v.substr(0, max_field);
    bool quote = v.empty() || cut;
    for (char c : v)
      if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20 ||
          static_cast<unsigned char>(c) >= 0x7F)
        quote = true;
    if (!quote) {
      s += v;
      return;
    }
    static constexpr char hex[] = "0123456789abcdef";
    s += '"';
    for (char c : v) {
      auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        s += '\\';
        s += c;
      } else if (u < 0x20 || u == 0x7F) {
        s += "\\x";
        s += hex[u >> 4];
        s += hex[u & 0xF];
      } else {
        s += c;  // UTF-8 bytes pass through; they cannot end a line
      }
    }
    if (cut) s += "...";
    s += '"';
  }

private:
  sink_fn sink_ = nullptr;
  void* user_ = nullptr;
  config cfg_;
  std::mutex mu_;
  double tokens_ = 0;
  bool started_ = false;
  clock::time_point last_{};
  std::uint64_t pending_suppressed_ = 0;
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::uint64_t> suppressed_total_{0};
};

/// Rejects the flow with `why`, writing one audit record the first time a flow is rejected
/// (ctx.rejected is set then, so later stages or phases do not log the same flow again).
template <class Ctx>
verdict reject_and_audit(Ctx& ctx, audit_log* log, reject_reason why, std::string_view stage,
                         std::string_view reason, std::string_view key = {}) {
  if (!ctx.rejected) {
    ctx.rejected = why;
    if (log != nullptr) {
      audit_record r;
      r.code = why.code;
      r.stage = stage;
      r.reason = reason;
      r.key = key;
      r.client = ctx.client.address();
      r.flow_id = ctx.id;
      log->record(r);
    }
  }
  return reject(why);
}

}  // namespace rproxy::middleware
