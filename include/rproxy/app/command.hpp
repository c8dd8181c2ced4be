// rproxy/app/command.hpp: runs an operator's shell command (start or stop a backend server)
// in the background, without blocking the caller's event loop and without leaving zombies.
//
//     if (auto r = rproxy::app::spawn_command("systemctl start mc-survival"); !r)
//       log.error("start command failed", {{"error", r.error().message()}});
//
// The command runs as `/bin/sh -c COMMAND` in a new session (so a signal to the proxy's process
// group does not reach it, and it outlives the proxy), with stdin, stdout and stderr on
// /dev/null unless `log_file` is given (stdout and stderr appended there). The child is
// double-forked: the intermediate process exits at once and is reaped here, and the command
// itself is adopted by init, so nothing is left to wait for. The call costs two fork(2)s and
// returns once the command has been exec'd (or failed to be).
#pragma once

#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include <rproxy/core/result.hpp>

namespace rproxy::app {

struct command_options {
  std::string log_file;  ///< where the command's output goes; empty: /dev/null
};

/// Starts `/bin/sh -c command` detached. Fails only if the process could not be created.
inline result<void, std::error_code> spawn_command(const std::string& command, const command_options& opt = {}) {
  if (command.empty()) return failure(std::make_error_code(std::errc::invalid_argument));
  // Everything the child needs is prepared before fork(): after it, only async-signal-safe calls.
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  const std::string out_path = opt.log_file.empty() ? std::string("/dev/null") : opt.log_file;
  const pid_t mid = ::fork();
  if (mid < 0) return failure(std::error_code(errno, std::generic_category()));
  if (mid == 0) {
    ::setsid();
    const pid_t cmd = ::fork();
    if (cmd != 0) ::_exit(cmd < 0 ? 127 : 0);
    const int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (in >= 0) ::dup2(in, 0);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    // Close every other descriptor the proxy holds (listeners, client sockets).
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    ::execv("/bin/sh", const_cast<char* const*>(argv));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(mid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return failure(std::make_error_code(std::errc::resource_unavailable_try_again));
  return {};
}

}  // namespace rproxy::app
