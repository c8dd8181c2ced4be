// rproxy/app/file_watch.hpp: a side file an app re-reads when it changes (a ban list, a key
// file), watched with config/watcher (inotify, debounced; an editor's write-and-rename counts).
//
//     auto w = rproxy::app::file_watch::open(rt.control().get_executor(), "bans.txt",
//                                            [&] { reload_bans(); });
//     if (!w) log(w.error());        // the watch is off; the app may poll instead
#pragma once

#include <asio/any_io_executor.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <system_error>
#include <utility>

#include <rproxy/config/watcher.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::app {

class file_watch {
public:
  /// Calls on_change() on ex's thread after each change of `file` (a missing file is watched
  /// too: its creation counts), until the file_watch goes.
  static result<file_watch> open(const asio::any_io_executor& ex, std::filesystem::path file, std::function<void()> on_change) {
    auto w = config::watcher::open(ex, {.file = std::move(file)});
    if (!w) return failure(w.error());
    auto st = std::make_shared<state>(state{std::move(*w), std::move(on_change)});
    wait(st);
    return file_watch(std::move(st));
  }

  file_watch(file_watch&&) noexcept = default;
  file_watch& operator=(file_watch&& o) noexcept {
    if (this != &o) {
      stop();
      st_ = std::move(o.st_);
    }
    return *this;
  }
  ~file_watch() { stop(); }

  void stop() noexcept {
    if (st_) st_->watcher.stop();
  }

private:
  struct state {
    config::watcher watcher;
    std::function<void()> on_change;
  };
  explicit file_watch(std::shared_ptr<state> st) : st_(std::move(st)) {}

  static void wait(const std::shared_ptr<state>& st) {
    st->watcher.async_wait([st](std::error_code ec, std::uint64_t) {
      if (ec) return;  // stopped
      st->on_change();
      wait(st);
    });
  }

  std::shared_ptr<state> st_;
};

}  // namespace rproxy::app
