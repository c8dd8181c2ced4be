// rproxy/cache/reply_cache.hpp: answers reused for a while, refreshed by one asker at a time
// (stale-while-revalidate), bounded in entries. Thread-safe: workers share one per backend group.
//
//     rproxy::cache::reply_cache<std::int32_t, std::string> cache;   // e.g. status JSON per protocol version
//     bool fetch = false;
//     auto answer = cache.lookup(version, now, ttl, fetch);
//     if (!answer && fetch) { answer = ask_backend(); cache.store(version, answer, clock::now()); }
//
// lookup() returns a fresh answer as is. When the answer is stale (or missing), the first caller
// gets `fetch` (it refreshes), and others meanwhile get the stale answer rather than all asking
// the backend at once; with nothing to show, every caller may fetch. store(key, nullopt) ends a
// failed refresh and keeps the stale answer. When full, the oldest answer makes room.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <vector>

namespace rproxy::cache {

template <class Key, class Value, class Clock = std::chrono::steady_clock>
class reply_cache {
public:
  explicit reply_cache(std::size_t max_entries = 32) : max_(std::max<std::size_t>(1, max_entries)) {}

  std::optional<Value> lookup(const Key& key, typename Clock::time_point now, typename Clock::duration ttl, bool& fetch) {
    std::lock_guard lock(mu_);
    fetch = false;
    entry& e = find(key);
    if (e.value && now - e.stored < ttl) return e.value;
    if (!e.fetching) {
      e.fetching = true;
      fetch = true;
      return std::nullopt;
    }
    if (e.value) return e.value;
    fetch = true;  // nothing to show: ask as well
    return std::nullopt;
  }

  void store(const Key& key, std::optional<Value> value, typename Clock::time_point now) {
    std::lock_guard lock(mu_);
    entry& e = find(key);
    e.fetching = false;
    if (value) {
      e.value = std::move(value);
      e.stored = now;
    }
  }

  void clear() {
    std::lock_guard lock(mu_);
    entries_.clear();
  }

private:
  struct entry {
    Key key{};
    std::optional<Value> value{};
    typename Clock::time_point stored{};
    bool fetching = false;
  };

  entry& find(const Key& key) {
    for (auto& e : entries_)
      if (e.key == key) return e;
    if (entries_.size() >= max_) {
      auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) { return a.stored < b.stored; });
      *oldest = entry{key};
      return *oldest;
    }
    return entries_.emplace_back(entry{key});
  }

  std::size_t max_;
  std::mutex mu_;
  std::vector<entry> entries_;
};

}  // namespace rproxy::cache
