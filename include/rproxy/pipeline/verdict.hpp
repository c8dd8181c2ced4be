// rproxy/pipeline/verdict.hpp: what a pipeline hook decides. The set is closed on purpose:
//   next            go on to the next stage;
//   reject(reason)  stop; the codec renders the reason in its own protocol
//                   (HTTP 403/429, Minecraft disconnect text, WebSocket close 1008/1013);
//   replied         the stage answered the client itself; stop quietly.
// A new need gets a new phase, never a new verdict.
#pragma once

#include <cstdint>
#include <string_view>

namespace rproxy {

/// Why a flow was rejected. Codecs map the code to their protocol's status.
enum class reject_code : std::uint8_t {
  bad_request,           ///< malformed input (HTTP 400, Minecraft disconnect, WS 1002)
  unauthorized,          ///< missing or invalid credentials (HTTP 401, WS 1008)
  forbidden,             ///< denied by policy: IP filter, ACL, time of day (HTTP 403, WS 1008)
  banned,                ///< banned IP, CIDR or identity (HTTP 403, WS 1008)
  not_found,             ///< no route (HTTP 404, Minecraft unknown host)
  rate_limited,          ///< over a rate limit (HTTP 429 + Retry-After, WS 1013)
  too_many_connections,  ///< per-IP or global connection cap (HTTP 429/503, WS 1013)
  unavailable,           ///< no healthy backend (HTTP 502/503, Minecraft "server offline")
  timeout,               ///< client too slow (HTTP 408)
  too_large,             ///< a message over a size limit: a request body (HTTP 413, WS 1009)
  internal,              ///< our fault (HTTP 500, WS 1011)
};

/// A rejection: the code, a short message meant for the client, an optional retry hint.
/// `message` must outlive the flow: point it at a literal or at config-owned text.
struct reject_reason {
  reject_code code = reject_code::forbidden;
  std::string_view message{};
  std::uint32_t retry_after_s = 0;  ///< 0: no hint
  /// A short machine-readable name of the cause ("breaker_open", "shed") for protocols that
  /// name it (HTTP JSON errors); empty: the code's name. Must outlive the flow, as `message`.
  std::string_view cause{};

  friend bool operator==(const reject_reason&, const reject_reason&) = default;
};

class verdict {
public:
  enum class kind : std::uint8_t { next, reject, replied };

  constexpr verdict() noexcept = default;
  static constexpr verdict make_next() noexcept { return verdict{}; }
  static constexpr verdict make_replied() noexcept { return verdict{kind::replied, {}}; }
  static constexpr verdict make_reject(reject_reason r) noexcept { return verdict{kind::reject, r}; }

  constexpr kind what() const noexcept { return kind_; }
  constexpr bool is_next() const noexcept { return kind_ == kind::next; }
  constexpr bool is_reject() const noexcept { return kind_ == kind::reject; }
  constexpr bool is_replied() const noexcept { return kind_ == kind::replied; }
  /// The reason of a reject verdict (meaningless otherwise).
  constexpr const reject_reason& reason() const noexcept { return reason_; }

  friend constexpr bool operator==(const verdict&, const verdict&) = default;

private:
  constexpr verdict(kind k, reject_reason r) noexcept : kind_(k), reason_(r) {}
  kind kind_ = kind::next;
  reject_reason reason_{};
};

/// `return rproxy::next;`: go on.
inline constexpr verdict next = verdict::make_next();
/// `return rproxy::replied;`: the stage answered; stop quietly.
inline constexpr verdict replied = verdict::make_replied();
/// `return rproxy::reject(reject_code::rate_limited, "slow down", 10);`
constexpr verdict reject(reject_code code, std::string_view message = {},
                         std::uint32_t retry_after_s = 0) noexcept {
  return verdict::make_reject({code, message, retry_after_s});
}
constexpr verdict reject(reject_reason r) noexcept { return verdict::make_reject(r); }

constexpr std::string_view to_string(reject_code c) noexcept {
  switch (c) {
    case reject_code::bad_request: return "bad_request";
    case reject_code::unauthorized: return "unauthorized";
    case reject_code::forbidden: return "forbidden";
    case reject_code::banned: return "banned";
    case reject_code::not_found: return "not_found";
    case reject_code::rate_limited: return "rate_limited";
    case reject_code::too_many_connections: return "too_many_connections";
    case reject_code::unavailable: return "unavailable";
    case reject_code::timeout: return "timeout";
    case reject_code::too_large: return "too_large";
    case reject_code::internal: return "internal";
  }
  return "unknown";
}

}  // namespace rproxy
