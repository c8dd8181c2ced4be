// rproxy/middleware/principal.hpp: who a flow is, once an auth stage has verified it.
//
// The auth stages (jwt_auth, api_key_auth) keep a `principal` in their per-flow state, as a
// member named `auth`. Later stages find it without naming the auth stage: find_principal(ctx)
// returns the first authenticated principal among the pipeline's stage states (nullptr when the
// flow is anonymous). The rate limiter uses it for tier and key parts, a room service for roles:
//
//     if (const auto* p = rproxy::middleware::find_principal(ctx))
//       if (p->tier == "premium") ...;  if (auto role = p->claim("role")) ...;
//
// A stage of your own can publish a principal the same way: `struct state { principal auth; };`.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/pipeline/context.hpp>

namespace rproxy::middleware {

struct principal {
  bool authenticated = false;
  std::string subject;  ///< JWT "sub", or the API key's name
  std::string tier;     ///< from the configured tier claim or the API key's metadata; may be empty
  std::string api_key;  ///< the API key's name (never the key itself); empty for JWT
  std::vector<std::pair<std::string, std::string>> claims;  ///< claims kept for later stages

  /// A kept claim's text form (strings as is, numbers and bools as written, arrays joined by ',').
  std::optional<std::string_view> claim(std::string_view name) const noexcept {
    for (const auto& [k, v] : claims)
      if (k == name) return std::string_view(v);
    return std::nullopt;
  }
};

/// A stage state that publishes a principal.
template <class S>
concept principal_state = requires(S& s) {
  { s.auth } -> std::same_as<principal&>;
};

namespace detail {
template <class Stage>
constexpr bool publishes_principal() {
  if constexpr (stage_with_state<Stage>) return principal_state<typename Stage::state>;
  else return false;
}
}  // namespace detail

/// The first authenticated principal among the flow's stage states, or nullptr.
template <class Flow, class... Stages>
const principal* find_principal(const basic_context<Flow, Stages...>& ctx) noexcept {
  const principal* found = nullptr;
  (
      [&] {
        if constexpr (detail::publishes_principal<Stages>()) {
          const auto* s = ctx.template find_state<Stages>();  // (not made: no principal)
          if (found == nullptr && s != nullptr && s->auth.authenticated) found = &s->auth;
        }
      }(),
      ...);
  return found;
}

/// Contexts that are not pipeline contexts carry no stage states: always anonymous.
template <class Ctx>
const principal* find_principal(const Ctx&) noexcept {
  return nullptr;
}

}  // namespace rproxy::middleware
