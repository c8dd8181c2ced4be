// rproxy/app/pools.hpp: an app's named upstream pools with their health monitors, kept across
// config versions, and their per-backend metrics (observe/pool_metrics.hpp).
//
//     auto pools = rproxy::app::pools::open(rt);         // kept by rt; stops its checks at shutdown
//     // in the app's build(config), before the world's pipelines are made:
//     if (!pools->update(cfg.routes)) return nullptr;   // logged; no pool changed
//     auto stage = rproxy::balance::make_stage(pools->get(rc.name), rproxy::balance::any_balancer::make(rc.balancer, seed));
//
// update(items) takes one config version's list of pools: each item has `name` and `backends`
// (std::vector<balance::backend_settings>), and, when its type has them, `health_check`
// (std::optional<health::check_config>) and `dynamic_weights` (std::optional<health::weights_config>),
// which the pool's health::monitor runs, and `pool_settings()` (a balance::pool_config: breakers,
// passive ejection, slow start), which a pool keeps for life. A pool is found by name:
//   - listed again with the same settings: nothing changes (its backends' state, counters, checker
//     and load-report poller go on as they were);
//   - listed with other settings: its backends are updated in place (a backend kept under the
//     same address keeps its state and counters, a new one starts fresh, a dropped one drains),
//     and its checker or poller restarts only if its own block changed;
//   - listed with other pool_settings(): a new pool and monitor replace it (flows of older
//     versions finish on the old pool);
//   - not listed: its checks stop and its metrics series go (a later version that lists it
//     again gets the same pool back, counters included);
//   - new: a pool and a monitor are made.
// A list whose backends cannot make a pool (a backend listed twice) changes nothing: update()
// logs it and returns false. An app with its own probe (a Minecraft status ping) starts it on
// monitor(name)->check_with(...) after update(); update() leaves such a checker running.
//
// Control thread only (the flows hold the pools through their pipelines).
#pragma once

#include <asio/any_io_executor.hpp>

#include <concepts>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/balance/backend.hpp>
#include <rproxy/balance/upstream_config.hpp>
#include <rproxy/health/check_config.hpp>
#include <rproxy/health/monitor.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/pool_metrics.hpp>
#include <rproxy/observe/registry.hpp>

namespace rproxy::app {

class pools {
public:
  using pool_type = balance::upstream_pool;
  using monitor_type = health::monitor<pool_type>;

  /// Checks run on `control`; `metrics` (optional) gets the per-backend series of every listed
  /// pool and, for pools whose items can have dynamic_weights, their load-report counts.
  pools(asio::any_io_executor control, const observe::logger& log, observe::registry* metrics = nullptr)
      : control_(std::move(control)), log_(log), metrics_(metrics),
        backend_metrics_(metrics ? observe::pool_metrics::add_to(*metrics) : nullptr) {}
  pools(const pools&) = delete;
  pools& operator=(const pools&) = delete;

  /// The pools of an app's runtime: kept until it ends, their checks stopped when shutdown starts.
  template <class Runtime>
  static std::shared_ptr<pools> open(Runtime& rt) {
    auto p = std::make_shared<pools>(rt.control().get_executor(), rt.log(), &rt.metrics());
    rt.keep(p);
    rt.on_stop_accepting([w = std::weak_ptr<pools>(p)] {
      if (auto s = w.lock()) s->stop();
    });
    return p;
  }

  /// Sets the pools to one config version (see above). False: nothing changed (logged).
  template <class Items>
  bool update(const Items& items) {
    std::vector<std::vector<pool_type::config_type>> entries;
    for (const auto& item : items) {
      entries.push_back(balance::pool_entries(item.backends));
      std::set<std::string_view> ids;
      for (const auto& e : entries.back())
        if (!ids.insert(e.id).second) {
          log_.error("bad backends: listed twice", {{"pool", std::string_view(item.name)}, {"backend", e.id}});
          return false;
        }
    }
    std::set<std::string, std::less<>> listed;
    std::size_t i = 0;
    for (const auto& item : items) {
      auto& e = entry_for(item.name, reports_of(item), settings_of(item));
      listed.insert(item.name);
      // cannot fail: the ids were checked above
      (void)e.monitor->update(std::move(entries[i++]), health_check_of(item), dynamic_weights_of(item));
      e.listed = true;
      if (backend_metrics_) backend_metrics_->track(item.name, e.monitor->pool());
    }
    for (auto& [name, e] : entries_)
      if (e.listed && !listed.contains(name)) {
        e.listed = false;
        e.monitor->stop();
        if (backend_metrics_) backend_metrics_->untrack(name);
        log_.info("pool no longer listed: its checks stop", {{"pool", name}});
      }
    return true;
  }

  /// The pool listed under `name` by the last update(), or null.
  std::shared_ptr<pool_type> get(std::string_view name) const {
    auto it = entries_.find(name);
    return it != entries_.end() && it->second.listed ? it->second.monitor->pool() : nullptr;
  }

  /// The monitor of a listed pool (for an app's own probe: check_with, on_change), or null.
  monitor_type* monitor(std::string_view name) {
    auto it = entries_.find(name);
    return it != entries_.end() && it->second.listed ? it->second.monitor.get() : nullptr;
  }

  /// Stops every pool's checks (shutdown); the pools stay usable.
  void stop() {
    for (auto& [name, e] : entries_) e.monitor->stop();
  }

private:
  struct entry {
    std::unique_ptr<monitor_type> monitor;
    balance::pool_config settings{};
    bool listed = false;
  };

  template <class Item>
  static constexpr bool has_health_check = requires(const Item& i) {
    requires std::same_as<std::remove_cvref_t<decltype(i.health_check)>, std::optional<health::check_config>>;
  };
  template <class Item>
  static constexpr bool has_dynamic_weights = requires(const Item& i) {
    requires std::same_as<std::remove_cvref_t<decltype(i.dynamic_weights)>, std::optional<health::weights_config>>;
  };
  template <class Item>
  static std::optional<health::check_config> health_check_of(const Item& item) {
    if constexpr (has_health_check<Item>) return item.health_check;
    else return std::nullopt;
  }
  template <class Item>
  static std::optional<health::weights_config> dynamic_weights_of(const Item& item) {
    if constexpr (has_dynamic_weights<Item>) return item.dynamic_weights;
    else return std::nullopt;
  }
  template <class Item>
  static balance::pool_config settings_of(const Item& item) {
    if constexpr (requires { { item.pool_settings() } -> std::convertible_to<balance::pool_config>; }) return item.pool_settings();
    else return {};
  }
  template <class Item>
  static constexpr bool reports_of(const Item&) {
    return has_dynamic_weights<Item>;
  }

  /// The entry of `name`, made on first use, and made again (a new pool and monitor) when its
  /// pool settings change. Entries are never erased: a monitor's load-report series refer to it
  /// for as long as the registry is scraped (a new monitor takes them over before the old goes).
  entry& entry_for(const std::string& name, bool export_reports, const balance::pool_config& settings) {
    auto [it, fresh] = entries_.try_emplace(name);
    auto& e = it->second;
    if (fresh || !(e.settings == settings)) {
      if (!fresh) log_.info("pool settings changed: a new pool", {{"pool", name}});
      auto old = std::exchange(e.monitor, std::make_unique<monitor_type>(control_, std::make_shared<pool_type>(settings), name, log_));
      e.settings = settings;
      if (export_reports && metrics_) {
        if (!report_family_) report_family_ = &monitor_type::report_family(*metrics_);
        e.monitor->export_reports(*report_family_);
      }
    }  // (`old`, the replaced monitor, goes here: its report series are the new one's by now)
    return e;
  }

  asio::any_io_executor control_;
  const observe::logger& log_;
  observe::registry* metrics_;
  std::shared_ptr<observe::pool_metrics> backend_metrics_;
  observe::callback_family* report_family_ = nullptr;
  std::map<std::string, entry, std::less<>> entries_;
};

}  // namespace rproxy::app
