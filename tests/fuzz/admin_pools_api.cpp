// libFuzzer target for the admin REST API over backend pools (rproxy/admin/pools_api.hpp): any
// method, path and body from the network. Every answer is a known status with a JSON body the
// strict reader accepts; a weight is only ever set to what a well-formed body asked for.
#include <rproxy/admin/pools_api.hpp>

#include <rproxy/balance/pool.hpp>
#include <rproxy/core/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using pool_t = rproxy::balance::pool;

struct world {
  std::shared_ptr<pool_t> main = std::make_shared<pool_t>();
  rproxy::admin::pools_api<pool_t> api{{.pools = [this] { return std::vector<rproxy::admin::named_pool<pool_t>>{{"main", main}}; },
                                        .routes = [] { return std::vector<rproxy::admin::route_summary>{{"r", {"main"}}}; },
                                        .reload = [] { return false; }}};
  world() {
    asio::ip::tcp::endpoint ep{asio::ip::make_address("127.0.0.1"), 9000};
    if (!main->update({{"a", ep, 1}, {"[::1]:80", ep, 2}})) std::abort();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static world w;
  if (size == 0) return 0;
  static constexpr std::string_view methods[] = {"GET", "PUT", "POST", "DELETE"};  // by the first byte % 4 (@ A B C)
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto nl = in.find('\n');
  const std::string path(in.substr(0, nl));
  rproxy::admin::request r;
  r.method = methods[data[0] % 4];
  r.path = path;
  r.body = nl == std::string_view::npos ? std::string() : std::string(in.substr(nl + 1));
  const auto res = w.api(r);
  if (res.status != 200 && res.status != 400 && res.status != 404 && res.status != 405 && res.status != 422) std::abort();
  if (res.content_type != "application/json" || !rproxy::json::parse(res.body)) std::abort();
  for (const auto& b : w.main->snapshot()->backends)
    if (b->weight() > rproxy::admin::max_api_weight) std::abort();
  return 0;
}
