// rproxy/net/fd_limit.hpp: the process's descriptor budget, raised at start, and a loud record
// of accepts that ran out of it.
//
//     auto lim = rproxy::net::raise_fd_limit();          // soft RLIMIT_NOFILE -> hard limit
//     // lim.soft: descriptors this process may hold; a relayed connection holds 2 of them
//
//     rproxy::net::fd_exhaustion::global().count();      // accepts refused so far (for /metrics)
//
// A listener that gets EMFILE / ENFILE / ENOBUFS / ENOMEM from accept records it here: the
// process-wide counter goes up, the sink hears of it (app/fd_watch.hpp logs it, rate-limited),
// and the listener pauses accepting (listener.hpp).
#pragma once

#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <utility>


namespace rproxy::net {

/// RLIMIT_NOFILE before and after raise_fd_limit().
struct fd_limit {
  std::uint64_t soft_before = 0;  ///< the soft limit the process started with
  std::uint64_t soft = 0;         ///< the soft limit now
  std::uint64_t hard = 0;
  std::error_code error;  ///< getrlimit/setrlimit failed (the limit is then unchanged)
};

namespace detail {
inline std::uint64_t nr_open() {
  std::ifstream f("/proc/sys/fs/nr_open");
  std::uint64_t n = 0;
  if (f >> n && n > 0) return n;
  return 1u << 20;  // the kernel's default
}
}  // namespace detail

/// Raises the soft RLIMIT_NOFILE to the hard limit (an unlimited hard limit: to fs.nr_open).
inline fd_limit raise_fd_limit() {
  fd_limit out;
  ::rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    out.error = std::error_code(errno, std::system_category());
    return out;
  }
  out.soft_before = out.soft = rl.rlim_cur;
  out.hard = rl.rlim_max;
  rlim_t want = rl.rlim_max;
  if (want == RLIM_INFINITY) want = static_cast<rlim_t>(detail::nr_open());
  if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want) return out;
  rl.rlim_cur = want;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    out.error = std::error_code(errno, std::system_category());
    return out;
  }
  out.soft = want;
  return out;
}

/// Process-wide count of accepts refused for lack of descriptors or memory, and where they are
/// reported (the app kit logs them: app/fd_watch.hpp).
class fd_exhaustion {
public:
  using sink_fn = std::function<void(const std::error_code& ec, const std::string& where, std::uint64_t refused_total)>;

  static fd_exhaustion& global() noexcept {
    static fd_exhaustion g;
    return g;
  }

  /// Who hears of each exhausted accept (an error path: a std::function is fine here).
  void set_sink(sink_fn f) {
    std::lock_guard lock(mu_);
    sink_ = std::move(f);
  }

  /// One accept that failed with `ec` on the listener bound to `where`.
  void record(const std::error_code& ec, const std::string& where) {
    const auto n = count_.fetch_add(1, std::memory_order_relaxed) + 1;
    std::lock_guard lock(mu_);
    if (sink_) sink_(ec, where, n);
  }

  std::uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }

private:
  std::atomic<std::uint64_t> count_{0};
  std::mutex mu_;
  sink_fn sink_;
};

}  // namespace rproxy::net
