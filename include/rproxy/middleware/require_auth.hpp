// rproxy/middleware/require_auth.hpp: refuses (401, audited) a request that no auth stage
// authenticated. jwt_auth and api_key_auth, set optional, let a request without credentials
// through so that either a token or a key will do; this stage, after them, asks for one.
//
//     jwt_auth{...}, api_key_auth{...}, require_auth{&audit}
#pragma once

#include <rproxy/core/error.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/principal.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct require_auth {
  audit_log* audit = nullptr;
  template <class Ctx, class Req>
  verdict on_hello(Ctx& ctx, const Req&) {
    if (find_principal(ctx) != nullptr) return next;
    return reject_and_audit(ctx, audit, {reject_code::unauthorized, "credentials required"}, "require_auth", "no token or API key");
  }
};

}  // namespace rproxy::middleware
