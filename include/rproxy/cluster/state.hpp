// rproxy/cluster/state.hpp: the shared-state interface: what instances of an app share, as one
// concept with two models: local_state (in-process, the default: needs nothing) and redis_state
// (Redis, shared by every instance pointed at it).
//
//   counters  incr(key, by, ttl) -> value        the key expires ttl after its creation
//   sets      set_add(key, member, ttl), set_remove, set_members
//                                                 each member expires on its own (ttl 0: never)
//   maps      map_set(key, field, value, ttl), map_get, map_remove, map_all
//                                                 the whole map expires ttl after its last write
//   pub/sub   publish(channel, payload) -> receivers; subscribe(channel, handler) -> id; unsubscribe(id)
//                                                 handlers run on the subscriber's executor
//   streams   stream_add(key, payload, max_len) -> id; stream_read(key, after_id, count)
//                                                 bounded: the oldest entries go past max_len;
//                                                 ids grow ("<ms>-<seq>"); after_id "" reads from the start
//
// Names: key(kind, tag, suffix) and channel(kind, tag) add the configured prefix and a Redis
// Cluster hash tag (keys.hpp), so everything of one tag lives on one shard:
//
//     auto history = st.key("room", "lobby", "history");    // "rproxy:room{lobby}:history"
//     auto chan = st.channel("room", "lobby");              // "rproxy:room{lobby}"
//     auto r = co_await st.stream_add(history, msg, 100);   // result<std::string>
//     if (!r) ... r.error() ...                             // Redis down: cluster::error::not_connected
//
// Every operation is a coroutine returning result<T> (error_code on failure: nothing throws).
// A Redis operation is a network round trip, so the coroutine frame is not the cost; the local
// model completes without suspending. degraded() is true while a Redis model cannot reach Redis
// (the local model: never).
#pragma once

#include <asio/awaitable.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/core/result.hpp>

namespace rproxy::cluster {

using ttl_type = std::chrono::milliseconds;  ///< 0: no expiry

struct stream_entry {
  std::string id;       ///< "<ms>-<seq>", increasing
  std::string payload;
  friend bool operator==(const stream_entry&, const stream_entry&) = default;
};

using message_handler = std::function<void(std::string_view channel, std::string_view payload)>;

template <class S>
concept shared_state = requires(S& s, const S& cs, std::string_view k, std::string_view v, std::int64_t n, ttl_type ttl,
                                std::size_t count, message_handler h, std::uint64_t id) {
  { cs.key(k, k, k) } -> std::same_as<std::string>;
  { cs.channel(k, k) } -> std::same_as<std::string>;
  { cs.degraded() } -> std::same_as<bool>;
  { s.incr(k, n, ttl) } -> std::same_as<asio::awaitable<result<std::int64_t>>>;
  { s.set_add(k, v, ttl) } -> std::same_as<asio::awaitable<result<void>>>;
  { s.set_remove(k, v) } -> std::same_as<asio::awaitable<result<void>>>;
  { s.set_members(k) } -> std::same_as<asio::awaitable<result<std::vector<std::string>>>>;
  { s.map_set(k, k, v, ttl) } -> std::same_as<asio::awaitable<result<void>>>;
  { s.map_get(k, k) } -> std::same_as<asio::awaitable<result<std::optional<std::string>>>>;
  { s.map_remove(k, k) } -> std::same_as<asio::awaitable<result<void>>>;
  { s.map_all(k) } -> std::same_as<asio::awaitable<result<std::vector<std::pair<std::string, std::string>>>>>;
  { s.publish(k, v) } -> std::same_as<asio::awaitable<result<std::int64_t>>>;
  { s.subscribe(std::string(k), h) } -> std::same_as<std::uint64_t>;
  { s.unsubscribe(id) };
  { s.stream_add(k, v, count) } -> std::same_as<asio::awaitable<result<std::string>>>;
  { s.stream_read(k, k, count) } -> std::same_as<asio::awaitable<result<std::vector<stream_entry>>>>;
};

}  // namespace rproxy::cluster
