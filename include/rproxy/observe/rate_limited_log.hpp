// rproxy/observe/rate_limited_log.hpp: a logger that writes at most N lines per second per key,
// then one summary line ("N messages suppressed") for what it dropped. For logs an attacker can
// drive (security audit, rejected handshakes): a flood costs a counter increment, not a line.
//
//     rproxy::observe::rate_limited_logger audit{log, 5};          // 5 lines/s per key
//     audit.log(client_ip, log_level::warn, "banned ip", {{"client", client_ip}});
//     ...
//     audit.flush();   // from a periodic timer: summaries of windows that are over
//
// A key's window starts with its first line; lines past N within the window are counted. The
// summary for a window is written when the key logs again after the window, or by flush() /
// flush_all(). Keys are bounded (max_keys): when the table is full, stale keys are dropped
// (after their summary), and if all are live the new key shares one overflow key, "*".
// Thread-safe (one mutex; the security log is not the data path). `Clock` is injectable for tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <rproxy/observe/log.hpp>

namespace rproxy::observe {

template <class Clock = std::chrono::steady_clock>
class basic_rate_limited_logger {
public:
  using clock_type = Clock;
  using duration = typename Clock::duration;

  /// The key that new keys share when the table is full of live keys.
  static constexpr std::string_view overflow_key = "*";

  explicit basic_rate_limited_logger(logger log, std::size_t lines_per_window = 10, std::size_t max_keys = 4096,
                                     duration window = std::chrono::seconds(1))
      : log_(std::move(log)), limit_(lines_per_window), max_keys_(max_keys ? max_keys : 1), window_(window) {}

  /// Logs unless `key` already wrote its N lines in the current window. True if written.
  bool log(std::string_view key, log_level lvl, std::string_view msg, std::span<const field> fields) {
    if (!log_.should_log(lvl)) return false;
    std::lock_guard lock(mu_);
    const auto now = Clock::now();
    auto& [k, e] = find_or_add(key, now);
    if (now - e.window_start >= window_) {
      summarize(k, e);
      e.window_start = now;
      e.lines = 0;
    }
    if (e.lines < limit_) {
      ++e.lines;
      log_.log(lvl, msg, fields);
      return true;
    }
    ++e.suppressed;
    if (lvl > e.suppressed_level) e.suppressed_level = lvl;
    ++suppressed_total_;
    return false;
  }
  bool log(std::string_view key, log_level lvl, std::string_view msg, std::initializer_list<field> fields = {}) {
    return log(key, lvl, msg, std::span<const field>(fields.begin(), fields.size()));
  }

  /// Writes the summaries of windows that are over (call from a periodic timer), and forgets
  /// keys that were quiet for a whole window.
  void flush() {
    std::lock_guard lock(mu_);
    sweep(Clock::now());
  }
  /// Writes every pending summary now (at shutdown).
  void flush_all() {
    std::lock_guard lock(mu_);
    for (auto& [k, e] : entries_) summarize(k, e);
  }

  /// Lines suppressed since construction (for a metric).
  std::uint64_t suppressed_total() const {
    std::lock_guard lock(mu_);
    return suppressed_total_;
  }
  /// Keys currently tracked.
  std::size_t keys() const {
    std::lock_guard lock(mu_);
    return entries_.size();
  }

private:
  struct entry {
    typename Clock::time_point window_start{};
    std::size_t lines = 0;
    std::uint64_t suppressed = 0;
    log_level suppressed_level = log_level::trace;
  };

  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  using map_type = std::unordered_map<std::string, entry, string_hash, std::equal_to<>>;

  typename map_type::value_type& find_or_add(std::string_view key, typename Clock::time_point now) {
    if (auto it = entries_.find(key); it != entries_.end()) return *it;
    if (entries_.size() >= max_keys_ && now - last_sweep_ >= window_) sweep(now);
    if (entries_.size() >= max_keys_) key = overflow_key;  // so at most max_keys + 1 entries
    auto [it, inserted] = entries_.try_emplace(std::string(key));
    if (inserted) it->second.window_start = now;
    return *it;
  }

  void sweep(typename Clock::time_point now) {
    last_sweep_ = now;
    for (auto it = entries_.begin(); it != entries_.end();) {
      entry& e = it->second;
      if (now - e.window_start >= window_) {
        summarize(it->first, e);
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void summarize(std::string_view key, entry& e) {
    if (e.suppressed == 0) return;
    const std::string msg = std::to_string(e.suppressed) + " messages suppressed";
    const field fields[] = {field{"log_key", key}, field{"suppressed", e.suppressed},
                            field{"window_ms", std::chrono::duration<double, std::milli>(window_).count()}};
    log_.log(e.suppressed_level, msg, std::span<const field>(fields));
    e.suppressed = 0;
    e.suppressed_level = log_level::trace;
  }

  logger log_;
  std::size_t limit_;
  std::size_t max_keys_;
  duration window_;
  mutable std::mutex mu_;
  map_type entries_;
  typename Clock::time_point last_sweep_{};
  std::uint64_t suppressed_total_ = 0;
};

using rate_limited_logger = basic_rate_limited_logger<>;

}  // namespace rproxy::observe
