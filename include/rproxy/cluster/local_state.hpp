// rproxy/cluster/local_state.hpp: the shared state (state.hpp) in-process: the default, needing
// nothing. One object per process, shared by its workers (a mutex held for one map operation);
// pub/sub posts each message to every subscriber's executor.
//
//     rproxy::cluster::local_state st({.max_keys = 100'000});
//     auto n = co_await st.incr(st.key("conn", ip), 1, 60s);
//     auto id = st.subscribe(ex, st.channel("room", "lobby"), handler);   // runs on ex
// Same semantics as redis_state (the unit tests run both through one suite): counters expire
// ttl after creation, set members each on their own, maps ttl after their last write, streams
// keep the newest max_len entries with increasing "<ms>-<seq>" ids. Expired entries are dropped
// when touched, and the least recently created key goes when max_keys is reached.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <rproxy/cluster/keys.hpp>
#include <rproxy/cluster/state.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::cluster {

struct local_state_config {
  std::string key_prefix = "rproxy:";
  std::size_t max_keys = 100'000;  ///< keys of all kinds together; the oldest is dropped past it
};

class local_state {
public:
  using clock = std::chrono::steady_clock;
  using config = local_state_config;

  explicit local_state(config cfg = {}) : cfg_(std::move(cfg)) {}

  std::string key(std::string_view kind, std::string_view tag, std::string_view suffix = {}) const {
    return key_of(cfg_.key_prefix, kind, tag, suffix);
  }
  std::string channel(std::string_view kind, std::string_view tag) const { return key_of(cfg_.key_prefix, kind, tag); }
  bool degraded() const noexcept { return false; }

  // ---- synchronous forms (the coroutines below are these, completed at once) ----
  std::int64_t incr_now(std::string_view k, std::int64_t by, ttl_type ttl, clock::time_point now = clock::now()) {
    std::lock_guard lock(mu_);
    entry& e = touch(k, now);
    if (!std::holds_alternative<std::int64_t>(e.value)) {
      e.value = std::int64_t{0};
      e.expires = {};
    }
    if (e.expires == clock::time_point{} && ttl.count() > 0) e.expires = now + ttl;
    return std::get<std::int64_t>(e.value) += by;
  }
  void set_add_now(std::string_view k, std::string_view member, ttl_type ttl, clock::time_point now = clock::now()) {
    std::lock_guard lock(mu_);
    auto& s = as<set_type>(touch(k, now));
    prune(s, now);
    s[std::string(member)] = ttl.count() > 0 ? now + ttl : clock::time_point::max();
  }
  void set_remove_now(std::string_view k, std::string_view member, clock::time_point now = clock::now()) {
    std::lock_guard lock(mu_);
    if (entry* e = find(k, now); e && std::holds_alternative<set_type>(e->value)) std::get<set_type>(e->value).erase(std::string(member));
  }
  std::vector<std::string> set_members_now(std::string_view k, clock::time_point now = clock::now()) {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    if (entry* e = find(k, now); e && std::holds_alternative<set_type>(e->value)) {
      auto& s = std::get<set_type>(e->value);
      prune(s, now);
      for (const auto& [m, exp] : s) out.push_back(m);
    }
    return out;
  }
  void map_set_now(std::string_view k, std::string_view field, std::string_view value, ttl_type ttl,
                   clock::time_point now = clock::now()) {
    std::lock_guard lock(mu_);
    entry& e = touch(k, now);
    as<map_type>(e)[std::string(field)] = std::string(value);
    if (ttl.count() > 0) e.expires = now + ttl;
  }
  std::optional<std::string> map_get_now(std::string_view k, std::string_view field, clock::time_point now = clock::now()) {
    std::lock_guard lock(mu_);
    if (entry* e = find(k, now); e && std::holds_alternative<map_type>(e->value)) {
      auto& m = std::get<map_type>(e->value);
      if (auto it = m.find(std::string(field)); it != m.end()) return it->second;
    }
    return std::nullopt;
  }
  void map_remove_now(std::string_view k, std::string_view field, clock::time_point now = clock::now()) {
    std::lock_guard lock(mu_);
    if (entry* e = find(k, now); e && std::holds_alternative<map_type>(e->value)) std::get<map_type>(e->value).erase(std::string(field));
  }
  std::vector<std::pair<std::string, std::string>> map_all_now(std::string_view k, clock::time_point now = clock::now()) {
    std::lock_guard lock(mu_);
    std::vector<std::pair<std::string, std::string>> out;
    if (entry* e = find(k, now); e && std::holds_alternative<map_type>(e->value))
      for (const auto& [f, v] : std::get<map_type>(e->value)) out.emplace_back(f, v);
    return out;
  }
  std::string stream_add_now(std::string_view k, std::string_view payload, std::size_t max_len) {
    std::lock_guard lock(mu_);
    auto& s = as<stream_type>(touch(k, clock::now()));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (ms > s.last_ms) {
      s.last_ms = ms;
      s.seq = 0;
    } else {
      ++s.seq;  // same millisecond, or a clock that went back: keep ids increasing
    }
    stream_entry e{std::to_string(s.last_ms) + "-" + std::to_string(s.seq), std::string(payload)};
    s.entries.push_back(e);
    while (s.entries.size() > std::max<std::size_t>(max_len, 1)) s.entries.pop_front();
    return e.id;
  }
  std::vector<stream_entry> stream_read_now(std::string_view k, std::string_view after_id, std::size_t count) {
    std::lock_guard lock(mu_);
    std::vector<stream_entry> out;
    entry* e = find(k, clock::now());
    if (e == nullptr || !std::holds_alternative<stream_type>(e->value)) return out;
    const auto after = parse_id(after_id);
    for (const auto& x : std::get<stream_type>(e->value).entries) {
      if (out.size() >= std::max<std::size_t>(count, 1)) break;
      if (!after_id.empty() && !(parse_id(x.id) > after)) continue;
      out.push_back(x);
    }
    return out;
  }

  // ---- the shared_state interface ----
  asio::awaitable<result<std::int64_t>> incr(std::string_view k, std::int64_t by, ttl_type ttl) { co_return incr_now(k, by, ttl); }
  asio::awaitable<result<void>> set_add(std::string_view k, std::string_view m, ttl_type ttl) {
    set_add_now(k, m, ttl);
    co_return result<void>{};
  }
  asio::awaitable<result<void>> set_remove(std::string_view k, std::string_view m) {
    set_remove_now(k, m);
    co_return result<void>{};
  }
  asio::awaitable<result<std::vector<std::string>>> set_members(std::string_view k) { co_return set_members_now(k); }
  asio::awaitable<result<void>> map_set(std::string_view k, std::string_view f, std::string_view v, ttl_type ttl) {
    map_set_now(k, f, v, ttl);
    co_return result<void>{};
  }
  asio::awaitable<result<std::optional<std::string>>> map_get(std::string_view k, std::string_view f) { co_return map_get_now(k, f); }
  asio::awaitable<result<void>> map_remove(std::string_view k, std::string_view f) {
    map_remove_now(k, f);
    co_return result<void>{};
  }
  asio::awaitable<result<std::vector<std::pair<std::string, std::string>>>> map_all(std::string_view k) { co_return map_all_now(k); }
  asio::awaitable<result<std::string>> stream_add(std::string_view k, std::string_view p, std::size_t n) { co_return stream_add_now(k, p, n); }
  asio::awaitable<result<std::vector<stream_entry>>> stream_read(std::string_view k, std::string_view after, std::size_t n) {
    co_return stream_read_now(k, after, n);
  }

  /// Posts `payload` to every subscriber of `channel`, each on its own executor.
  asio::awaitable<result<std::int64_t>> publish(std::string_view channel, std::string_view payload) { co_return publish_now(channel, payload); }
  std::int64_t publish_now(std::string_view channel, std::string_view payload) {
    std::vector<std::shared_ptr<sub>> to;
    {
      std::lock_guard lock(mu_);
      auto it = channels_.find(std::string(channel));
      if (it == channels_.end()) return 0;
      to = it->second;
    }
    auto msg = std::make_shared<const std::pair<std::string, std::string>>(std::string(channel), std::string(payload));
    for (auto& s : to)
      asio::post(s->ex, [s, msg] {
        if (s->active) s->handler(msg->first, msg->second);
      });
    return static_cast<std::int64_t>(to.size());
  }
  /// Handlers run on `ex` (the subscribing worker's executor).
  std::uint64_t subscribe(asio::any_io_executor ex, std::string channel, message_handler h) {
    std::lock_guard lock(mu_);
    auto s = std::make_shared<sub>(sub{++last_id_, std::move(ex), std::move(h), channel, true});
    channels_[channel].push_back(s);
    by_id_.emplace(s->id, s);
    return s->id;
  }
  /// The shared_state form: handlers run on the executor given to set_executor() (a programmer
  /// error without one: one local_state serves many workers, each subscribing on its own).
  std::uint64_t subscribe(std::string channel, message_handler h) {
    if (!default_ex_) throw std::logic_error("rproxy::cluster::local_state: subscribe(channel, h) needs set_executor() first");
    return subscribe(*default_ex_, std::move(channel), std::move(h));
  }
  void set_executor(asio::any_io_executor ex) { default_ex_ = std::move(ex); }
  /// After this returns, the handler is not called again (it runs on its executor: call this there).
  void unsubscribe(std::uint64_t id) {
    std::lock_guard lock(mu_);
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return;
    auto s = it->second;
    by_id_.erase(it);
    s->active = false;
    auto c = channels_.find(s->channel);
    if (c == channels_.end()) return;
    std::erase(c->second, s);
    if (c->second.empty()) channels_.erase(c);
  }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    return entries_.size();
  }

private:
  using set_type = std::map<std::string, clock::time_point, std::less<>>;
  using map_type = std::map<std::string, std::string, std::less<>>;
  struct stream_type {
    std::deque<stream_entry> entries;
    std::int64_t last_ms = 0;
    std::uint64_t seq = 0;
  };
  struct entry {
    std::variant<std::int64_t, set_type, map_type, stream_type> value;
    clock::time_point expires{};  // {}: never
    std::uint64_t order = 0;
  };
  struct sub {
    std::uint64_t id;
    asio::any_io_executor ex;
    message_handler handler;
    std::string channel;
    bool active;  // read and written on the subscriber's executor (unsubscribe runs there)
  };

  static std::pair<std::int64_t, std::uint64_t> parse_id(std::string_view id) {
    std::int64_t ms = 0;
    std::uint64_t seq = 0;
    std::size_t i = 0;
    for (; i < id.size() && id[i] >= '0' && id[i] <= '9'; ++i) ms = ms * 10 + (id[i] - '0');
    if (i < id.size() && id[i] == '-')
      for (++i; i < id.size() && id[i] >= '0' && id[i] <= '9'; ++i) seq = seq * 10 + static_cast<std::uint64_t>(id[i] - '0');
    return {ms, seq};
  }

  template <class T>
  static T& as(entry& e) {
    if (!std::holds_alternative<T>(e.value)) {
      e.value = T{};
      e.expires = {};
    }
    return std::get<T>(e.value);
  }
  static void prune(set_type& s, clock::time_point now) { std::erase_if(s, [&](const auto& m) { return m.second <= now; }); }

  entry* find(std::string_view k, clock::time_point now) {
    auto it = entries_.find(std::string(k));
    if (it == entries_.end()) return nullptr;
    if (it->second.expires != clock::time_point{} && it->second.expires <= now) {
      entries_.erase(it);
      return nullptr;
    }
    return &it->second;
  }
  entry& touch(std::string_view k, clock::time_point now) {
    if (entry* e = find(k, now)) return *e;
    if (entries_.size() >= cfg_.max_keys) evict_oldest();
    entry& e = entries_[std::string(k)];
    e.order = ++order_;
    return e;
  }
  void evict_oldest() {
    auto victim = entries_.begin();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->second.order < victim->second.order) victim = it;
    if (victim != entries_.end()) entries_.erase(victim);
  }

  config cfg_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, entry> entries_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<sub>>> channels_;
  std::unordered_map<std::uint64_t, std::shared_ptr<sub>> by_id_;
  std::optional<asio::any_io_executor> default_ex_;
  std::uint64_t last_id_ = 0, order_ = 0;
};

static_assert(shared_state<local_state>);

}  // namespace rproxy::cluster
