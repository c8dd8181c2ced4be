// rproxy/config/reloader.hpp: re-read the config, and swap it in only if it is good.
//
//     rproxy::config::snapshot<proxy_config> current{std::move(*first)};
//     rproxy::config::reloader<proxy_config> reload{
//         current, rproxy::config::file_loader<proxy_config>("proxy.yaml"),   // config/decode.hpp
//         {.on_reload = [](const auto& cfg) { log.info("config reloaded"); },
//          .on_error = [](const auto& diags) { log.error("config kept: {}", diags.to_string()); }}};
//     reload.watch(*file_watcher);                          // on each file change
//     sighup.async_wait([&](auto ec, int) { if (!ec) reload.reload(); });   // the app owns SIGHUP
//     // the admin API: reload.reload()
//
// reload() loads (parse + decode + validate), then on success swaps the snapshot and calls
// on_reload with the new version; on failure it keeps the old snapshot and calls on_error with
// every diagnostic. Reloads are serialized; callbacks run under that serialization and must not
// call reload(). The loader can combine a main file and a directory (load_dir) as it likes.
// The snapshot must outlive the reloader; destroy the reloader on the watcher's thread (or
// after it stopped running).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <system_error>
#include <utility>

#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/snapshot.hpp>
#include <rproxy/config/watcher.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::config {

/// What a reloader tells the app.
template <class T>
struct reload_callbacks {
  std::function<void(const std::shared_ptr<const T>&)> on_reload{};  ///< after a swap
  std::function<void(const diagnostics&)> on_error{};                 ///< old config kept
};

template <class T>
class reloader {
public:
  using pointer = std::shared_ptr<const T>;
  using load_fn = std::function<result<T, diagnostics>()>;

  reloader(snapshot<T>& target, load_fn load, reload_callbacks<T> callbacks = {})
      : state_(std::make_shared<state>(target, std::move(load), std::move(callbacks))) {}

  reloader(const reloader&) = delete;
  reloader& operator=(const reloader&) = delete;
  ~reloader() {
    std::lock_guard lock(state_->mutex);
    state_->stopped = true;
  }

  /// Loads now; true if the snapshot was swapped. Safe from any thread.
  bool reload() { return state_->reload(); }

  /// Reloads after every change `w` reports, until `w` stops or this reloader is destroyed.
  void watch(watcher& w) { wait_loop(state_, w.impl_); }

  /// Successful and failed reloads so far.
  std::uint64_t reload_count() const {
    std::lock_guard lock(state_->mutex);
    return state_->ok;
  }
  std::uint64_t failure_count() const {
    std::lock_guard lock(state_->mutex);
    return state_->failed;
  }

private:
  struct state {
    state(snapshot<T>& t, load_fn l, reload_callbacks<T> c)
        : target(&t), load(std::move(l)), callbacks(std::move(c)) {}

    bool reload() {
      std::lock_guard lock(mutex);
      if (stopped) return false;
      auto r = load();
      if (!r) {
        ++failed;
        if (callbacks.on_error) callbacks.on_error(r.error());
        return false;
      }
      auto next = std::make_shared<const T>(std::move(*r));
      target->swap(next);
      ++ok;
      if (callbacks.on_reload) callbacks.on_reload(next);
      return true;
    }

    mutable std::mutex mutex;
    snapshot<T>* target;
    load_fn load;
    reload_callbacks<T> callbacks;
    bool stopped = false;
    std::uint64_t ok = 0;
    std::uint64_t failed = 0;
  };

  static void wait_loop(const std::shared_ptr<state>& st, const std::shared_ptr<detail::watcher_impl>& w) {
    // The pending wait holds the watcher weakly: it lives inside the watcher's channel.
    w->async_wait([st, weak = std::weak_ptr<detail::watcher_impl>(w)](std::error_code ec, std::uint64_t) {
      if (ec) return;
      {
        std::lock_guard lock(st->mutex);
        if (st->stopped) return;
      }
      st->reload();
      if (auto w2 = weak.lock()) wait_loop(st, w2);
    });
  }

  std::shared_ptr<state> state_;
};

}  // namespace rproxy::config
