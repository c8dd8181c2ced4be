// rproxy/app/fd_watch.hpp: at an app's start, the descriptor limit raised and logged, and the
// listeners' accept exhaustion logged (rate-limited). app/runtime.hpp calls it.
#pragma once

#include <sys/resource.h>

#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include <rproxy/net/fd_limit.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/rate_limited_log.hpp>

namespace rproxy::app {

/// At startup: raises the descriptor limit, logs the resulting capacity, and sends the
/// listeners' exhaustion warnings to `log`.
inline net::fd_limit start_fd_watch(const observe::logger& log) {
  const auto lim = net::raise_fd_limit();
  auto rl = std::make_shared<observe::rate_limited_logger>(log, 1);  // one line per second, then a summary
  net::fd_exhaustion::global().set_sink([rl](const std::error_code& ec, const std::string& where, std::uint64_t n) {
    ::rlimit r{};
    const std::uint64_t soft = ::getrlimit(RLIMIT_NOFILE, &r) == 0 ? r.rlim_cur : 0;
    rl->log("accept", observe::log_level::warn, "accept failed: out of descriptors or memory; pausing accepts on this listener",
            {{"listen", where}, {"error", ec.message()}, {"fd_limit", soft}, {"refused_total", n}});
  });
  if (lim.error) {
    log.warn("cannot raise the descriptor limit", {{"error", lim.error.message()}, {"fd_limit", lim.soft}});
  } else {
    // A relayed connection holds two sockets (its pipes or buffers only while bytes move).
    log.info("descriptor limit", {{"fd_limit", lim.soft}, {"was", lim.soft_before}, {"hard", lim.hard},
                                  {"relayed_connections_max", lim.soft / 2}});
  }
  return lim;
}

}  // namespace rproxy::app
