// libFuzzer target for the body of the admin POST /bans (rproxy/admin/ban_request.hpp) and the
// list GET /bans prints (rproxy/admin/bans_api.hpp): any body is read without a crash or
// undefined behaviour, within its bounds; every ban it yields is one shared_bans accepts (the
// API counts on it); the list printed afterwards is strict JSON with one element per ban held;
// and lifting each ban by its kind and subject leaves none.
#include <rproxy/admin/ban_request.hpp>
#include <rproxy/admin/bans_api.hpp>
#include <rproxy/cluster/shared_bans.hpp>
#include <rproxy/core/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {
[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "admin_ban_request fuzz: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace admin = rproxy::admin;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto r = admin::parse_ban_request(body);
  if (!r) {
    if (r.error().empty()) fail("an error without a reason");
    return 0;
  }
  if (r->empty() || r->size() > admin::ban_request_limits::max_bans) fail("ban count out of bounds");
  for (const bool fold : {false, true}) {
    rproxy::cluster::shared_bans bans(nullptr, nullptr, {.fold_identity_case = fold});
    const auto now = rproxy::middleware::ban_clock::now();
    for (const auto& b : *r) {
      if (b.duration < std::chrono::seconds(0) || b.duration > admin::ban_request_limits::max_duration) fail("duration out of bounds");
      if (b.reason.size() > admin::ban_request_limits::max_reason) fail("reason too long");
      const auto until = b.duration.count() == 0 ? rproxy::middleware::ban_clock::time_point{} : now + b.duration;
      if (!bans.ban(b.kind, b.subject, until, b.reason)) fail("a ban the parser accepted was refused by shared_bans");
    }
    if (bans.list().size() == 0 || bans.list().size() > r->size()) fail("list() does not hold the bans");
    auto doc = rproxy::json::parse(admin::detail::bans_json(bans.list(), bans.shared()), {.max_bytes = 1 << 22, .max_depth = 4, .max_nodes = 1 << 16});
    if (!doc) fail("GET /bans is not strict JSON");
    if (doc->root().find("bans")->size() != bans.list().size()) fail("GET /bans does not list every ban");
    for (const auto& b : *r)
      if (!admin::detail::check_ban(b.kind, b.subject).empty() || !bans.unban(b.kind, b.subject)) fail("a ban cannot be lifted by its subject");
    if (bans.list().size() != 0) fail("bans left after lifting each");
  }
  return 0;
}
