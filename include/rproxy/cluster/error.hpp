// rproxy/cluster/error.hpp: errors of the shared-state layer (cluster/).
//
//     auto [ec, r] = co_await client.async_command({"GET", key}, as_tuple(use_awaitable));
//     if (ec == rproxy::cluster::error::not_connected) ...   // Redis is down: use local state
//     if (ec == rproxy::condition::upstream) ...              // every failure here is Redis's
//
// Each code says why a command got no usable answer. A caller that has local state to fall back
// on treats them all alike; the codes are for logs and metrics.
#pragma once

#include <string>
#include <system_error>
#include <type_traits>

#include <rproxy/core/error.hpp>

namespace rproxy::cluster {

enum class error {
  not_connected = 1,  ///< no ready connection (down, connecting, or backing off): nothing was sent
  timeout,            ///< sent, but no answer within the command timeout
  disconnected,       ///< sent, but the connection closed before the answer
  server_error,       ///< Redis answered with an error reply (the text is in the reply)
  bad_reply,          ///< the answer has a type or shape the caller did not expect
  overloaded,         ///< too many commands awaiting an answer on this connection: nothing was sent
  closed,             ///< the client was stopped
  auth_failed,        ///< AUTH was refused (wrong user or password)
};

namespace detail {

class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.cluster"; }
  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::not_connected: return "not connected to Redis";
      case error::timeout: return "Redis command timed out";
      case error::disconnected: return "Redis connection closed before the reply";
      case error::server_error: return "Redis replied with an error";
      case error::bad_reply: return "unexpected Redis reply";
      case error::overloaded: return "too many Redis commands in flight";
      case error::closed: return "Redis client stopped";
      case error::auth_failed: return "Redis refused the credentials";
    }
    return "unknown rproxy.cluster error";
  }
  rproxy::condition source(int c) const noexcept override {
    const auto e = static_cast<error>(c);
    return e == error::closed || e == error::overloaded ? rproxy::condition::internal : rproxy::condition::upstream;
  }
  bool retry_safe(int c) const noexcept override {
    const auto e = static_cast<error>(c);
    return e == error::not_connected || e == error::overloaded;
  }
};

}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace rproxy::cluster

template <>
struct std::is_error_code_enum<rproxy::cluster::error> : std::true_type {};
