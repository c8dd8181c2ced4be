// rproxy/config/watcher.hpp: tells when a config file (and optionally a directory of per-item
// files) changed, with inotify driven by Asio, debounced.
//
//     auto w = rproxy::config::watcher::open(io.get_executor(),
//                                            {.file = "proxy.yaml", .dir = "servers"});
//     if (!w) return fail(w.error());            // inotify unavailable, directory missing
//     w->async_wait([](std::error_code ec, std::uint64_t seq) {   // any completion token
//       if (!ec) reload();                       // completes once per burst of changes
//     });
//
// Watches the *parent directory* of the file (IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_DELETE,
// IN_MOVED_FROM), so the usual editor save (write a temp file, rename it over) is seen, and
// filters by file name. Events in `dir` count when the name matches `dir_pattern`. A change is
// reported `debounce` after the last event of a burst; changes while nobody waits are kept (one
// pending change at most) and complete the next async_wait at once. stop() (or destruction)
// completes a pending wait with an error. The watcher must outlive its pending waits or stop
// them first; use it from its executor's thread.
//
// The completion signature is void(std::error_code, std::uint64_t): the number counts reported
// changes (1, 2, ...) and skips the bursts folded into one that was already pending. (A bare
// void(error_code) channel is ambiguous in Asio 1.22, hence the number.)
#pragma once

#include <fnmatch.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/core/result.hpp>

namespace rproxy::config {

template <class T>
class reloader;

/// What to watch.
struct watch_options {
  std::filesystem::path file;                 ///< the main config file
  std::optional<std::filesystem::path> dir{};  ///< optional directory of per-item files
  std::string dir_pattern = "*.yaml";         ///< which names in `dir` count (fnmatch, FNM_PERIOD)
  std::chrono::milliseconds debounce{100};    ///< quiet time before a burst is reported
};

namespace detail {

class watcher_impl : public std::enable_shared_from_this<watcher_impl> {
public:
  watcher_impl(const asio::any_io_executor& ex, watch_options opts)
      : opts_(std::move(opts)), fd_(ex), timer_(ex), changes_(ex, 1) {}

  std::error_code open() {
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return {errno, std::system_category()};
    asio::error_code ec;
    fd_.assign(fd, ec);
    if (ec) {
      ::close(fd);
      return ec;
    }
    std::filesystem::path parent = opts_.file.parent_path();
    if (parent.empty()) parent = ".";
    if (auto e = add(parent, {false, opts_.file.filename().string()})) return e;
    if (opts_.dir)
      if (auto e = add(*opts_.dir, {true, opts_.dir_pattern})) return e;
    return {};
  }

  void start() { read(); }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    asio::error_code ignored;
    timer_.cancel();
    fd_.close(ignored);
    changes_.close();
  }

  template <class Token>
  auto async_wait(Token&& token) {
    return changes_.async_receive(std::forward<Token>(token));
  }

private:
  struct matcher {
    bool is_pattern;
    std::string text;
  };

  std::error_code add(const std::filesystem::path& dir, matcher m) {
    constexpr std::uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM;
    const int wd = ::inotify_add_watch(fd_.native_handle(), dir.c_str(), mask);
    if (wd < 0) return {errno, std::system_category()};
    matchers_[wd].push_back(std::move(m));  // the same directory twice shares one watch
    return {};
  }

  bool matches(int wd, std::string_view name) const {
    const auto it = matchers_.find(wd);
    if (it == matchers_.end() || name.empty()) return false;
    for (const auto& m : it->second) {
      if (m.is_pattern ? ::fnmatch(m.text.c_str(), std::string(name).c_str(), FNM_PERIOD) == 0 : name == m.text)
        return true;
    }
    return false;
  }

  void read() {
    fd_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](asio::error_code ec, std::size_t n) {
      if (self->stopped_) return;
      if (ec) {  // the inotify descriptor failed: report it to the waiter, stop watching
        self->changes_.try_send(ec, self->sequence_);
        return;
      }
      if (self->relevant(n)) self->arm();
      self->read();
    });
  }

  bool relevant(std::size_t n) const {
    bool any = false;
    std::size_t off = 0;
    while (off + sizeof(inotify_event) <= n) {
      inotify_event ev;
      std::memcpy(&ev, buf_ + off, sizeof ev);
      const char* name = buf_ + off + sizeof(inotify_event);
      const std::size_t name_len = ev.len ? ::strnlen(name, ev.len) : 0;
      off += sizeof(inotify_event) + ev.len;
      if (ev.mask & IN_Q_OVERFLOW) any = true;  // events lost: assume the worst
      else if (matches(ev.wd, std::string_view(name, name_len))) any = true;
    }
    return any;
  }

  void arm() {
    timer_.expires_after(opts_.debounce);  // restarts the quiet period
    timer_.async_wait([self = shared_from_this()](asio::error_code ec) {
      if (ec || self->stopped_) return;
      ++self->sequence_;
      self->changes_.try_send(asio::error_code{}, self->sequence_);  // full: one is already pending
    });
  }

  watch_options opts_;
  asio::posix::stream_descriptor fd_;
  asio::steady_timer timer_;
  asio::experimental::channel<void(asio::error_code, std::uint64_t)> changes_;
  std::uint64_t sequence_ = 0;
  std::unordered_map<int, std::vector<matcher>> matchers_;
  bool stopped_ = false;
  alignas(inotify_event) char buf_[8192];
};

}  // namespace detail

class watcher {
public:
  /// Starts watching; fails with the errno of inotify_init1/inotify_add_watch (ENOENT when a
  /// directory does not exist).
  static result<watcher> open(const asio::any_io_executor& ex, watch_options opts) {
    auto impl = std::make_shared<detail::watcher_impl>(ex, std::move(opts));
    if (auto ec = impl->open()) return failure(ec);
    impl->start();
    return watcher(std::move(impl));
  }

  watcher(watcher&&) noexcept = default;
  watcher& operator=(watcher&& other) noexcept {
    if (this != &other) {
      stop();
      impl_ = std::move(other.impl_);
    }
    return *this;
  }
  ~watcher() { stop(); }

  /// Completes with no error after the next (debounced) change, at once if one is pending;
  /// with an error once stopped. Signature: void(std::error_code, std::uint64_t sequence).
  template <class Token>
  auto async_wait(Token&& token) {
    return impl_->async_wait(std::forward<Token>(token));
  }

  /// Stops watching and completes a pending wait with an error. Idempotent.
  void stop() {
    if (impl_) impl_->stop();
  }

private:
  template <class T>
  friend class reloader;

  explicit watcher(std::shared_ptr<detail::watcher_impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<detail::watcher_impl> impl_;
};

}  // namespace rproxy::config
