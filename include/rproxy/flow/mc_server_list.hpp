// rproxy/flow/mc_server_list.hpp: what a Minecraft proxy answers to server-list pings itself,
// for any Minecraft app: one server's answers built from its `status:` block
// (flow/mc_status_block.hpp), and the stage that answers status and legacy pings from the cache,
// else from a backend (which refills the cache), else with the text for the server's state
// (offline, sleeping, starting).
//
//     struct server_config { rproxy::flow::mc_status_config status{}; ... };       // YAML `status:`
//     rproxy::flow::mc_server_list list(sc.status, cache, power, wake_start_timeout, pool, rewrite_host, config_dir, log);
//     auto stage = rproxy::flow::mc_status_reply{[](const auto& ctx) { return &server(ctx).list; }, 3s};
//
// The stage runs on_route: a login goes on (next); a status or legacy ping gets ctx.reply and
// `replied` (flow/mc.hpp sends it, then the pong). Counters per answer source are optional.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/this_coro.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>

#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/cache/reply_cache.hpp>
#include <rproxy/codec/mc/server_list.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/flow/mc_status_block.hpp>
#include <rproxy/health/mc_status_probe.hpp>
#include <rproxy/health/power_state.hpp>
#include <rproxy/net/proxy_accept.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/metrics.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::flow {

/// Where an answer came from (a counter label).
enum class mc_ping_source : std::size_t { cache, backend, offline, sleeping, starting, count };
inline constexpr std::array<std::string_view, 5> mc_ping_source_names{"cache", "backend", "offline", "sleeping", "starting"};

/// One server's server-list answers for one config version. The cache, the power state (an
/// app::wake_state with wake on join) and the pool are the server's, kept across versions.
struct mc_server_list {
  using cache_type = cache::reply_cache<std::int32_t, std::string>;  ///< per client protocol version

  const mc_status_config* cfg = nullptr;
  cache_type* cache = nullptr;
  health::power_state* wake = nullptr;
  std::optional<std::chrono::milliseconds> wake_start_timeout;  ///< the wake block's; nullopt: no wake on join
  std::shared_ptr<const balance::upstream_pool> pool;
  std::string rewrite_host;  ///< the host name backends are asked with ("": the client's)
  std::array<std::string, 4> state_json{};                               ///< status JSON per power (online unused)
  std::string online_favicon;                                            ///< status.online.favicon, encoded
  std::array<observe::counter*, static_cast<std::size_t>(mc_ping_source::count)> answered{};  ///< optional

  mc_server_list() = default;
  mc_server_list(const mc_status_config& c, cache_type& cache_, health::power_state& wake_, std::optional<std::chrono::milliseconds> wake_start,
                 std::shared_ptr<const balance::upstream_pool> pool_, std::string rewrite, const std::filesystem::path& dir,
                 const observe::logger& log)
      : cfg(&c), cache(&cache_), wake(&wake_), wake_start_timeout(wake_start), pool(std::move(pool_)), rewrite_host(std::move(rewrite)) {
    const std::pair<health::power, const mc_status_text*> texts[] = {
        {health::power::offline, &c.offline}, {health::power::sleeping, &c.sleeping}, {health::power::starting, &c.starting}};
    for (const auto& [p, t] : texts)
      state_json[static_cast<std::size_t>(p)] = codec::mc::state_status(t->motd, t->version_name, favicon(t->favicon, dir, log));
    online_favicon = favicon(c.online.favicon, dir, log);
  }

  /// A PNG file as a status favicon ("data:image/png;base64,..."), or "" (logged) if unusable.
  static std::string favicon(const std::string& file, const std::filesystem::path& dir, const observe::logger& log) {
    if (file.empty()) return {};
    const auto p = std::filesystem::path(file).is_relative() ? dir / file : std::filesystem::path(file);
    std::ifstream in(p, std::ios::binary);
    std::string png;
    if (in) png.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (png.size() > 64 * 1024 || !png.starts_with("\x89PNG")) {
      log.warn("favicon is not a readable PNG of at most 64 KiB; none shown", {{"file", p.string()}});
      return {};
    }
    return codec::mc::make_favicon(codec::mc::as_bytes(png));
  }
};

/// The stage: answers the flow's status or legacy ping itself. `get(ctx)` gives the flow's
/// server (a const mc_server_list*).
template <class Get>
struct mc_status_reply {
  Get get;
  std::chrono::milliseconds timeout{3000};  ///< to ask a backend

  template <class Ctx>
  asio::awaitable<rproxy::verdict> on_route(Ctx& ctx) {
    namespace mc = codec::mc;
    if (!ctx.legacy && ctx.next != mc::intent::status) co_return rproxy::next;
    const mc_server_list& s = *get(std::as_const(ctx));
    const auto now = std::chrono::steady_clock::now();
    bool fetch = false;
    auto json = s.cache->lookup(ctx.protocol, now, s.cfg->cache_ttl, fetch);
    auto src = mc_ping_source::cache;
    if (!json && fetch) {
      json = co_await ask_backend(ctx, s);
      s.cache->store(ctx.protocol, json, std::chrono::steady_clock::now());
      src = mc_ping_source::backend;
    }
    if (!json) {
      const auto p = s.wake->unreachable(std::chrono::steady_clock::now(), s.wake_start_timeout);
      src = p == health::power::starting   ? mc_ping_source::starting
            : p == health::power::sleeping ? mc_ping_source::sleeping
                                           : mc_ping_source::offline;
      json = s.state_json[static_cast<std::size_t>(p)];
    }
    if (auto* c = s.answered[static_cast<std::size_t>(src)]) c->inc();
    ctx.reply.clear();
    if (ctx.legacy) ctx.reply = mc::make_legacy_kick(*ctx.legacy, mc::legacy_of(*json));
    else mc::append_status_response(ctx.reply, *json);
    co_return rproxy::replied;
  }

private:
  /// The first (of at most two) healthy backends that answers the status ping.
  template <class Ctx>
  asio::awaitable<std::optional<std::string>> ask_backend(const Ctx& ctx, const mc_server_list& s) {
    auto ex = co_await asio::this_coro::executor;
    unsigned tried = 0;
    for (const auto& b : s.pool->snapshot()->backends) {
      if (tried == 2) break;
      if (b->state() != balance::backend_state::healthy) continue;
      ++tried;
      health::mc_status_query q;
      q.host = s.rewrite_host.empty() ? ctx.host : s.rewrite_host;
      q.port = ctx.local.port();
      if (ctx.protocol > 0) q.protocol = ctx.protocol;
      q.prefix = net::encode_proxy_header(b->address().proxy, ctx.client, ctx.local);
      auto r = co_await health::fetch_mc_status(ex, b->address().ep, std::move(q), timeout);
      if (!r) continue;
      b->observe_latency(r->latency);
      s.wake->reachable(std::chrono::steady_clock::now());
      const auto& on = s.cfg->online;
      co_return codec::mc::with_overrides(std::move(r->json), {on.motd, on.version_name, s.online_favicon});
    }
    co_return std::nullopt;
  }
};

template <class Get>
mc_status_reply(Get, std::chrono::milliseconds) -> mc_status_reply<Get>;

}  // namespace rproxy::flow
