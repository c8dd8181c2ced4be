// rproxy/net/splice.hpp: the zero-copy primitives of the relay's splice(2) path (Linux).
//
// A relay direction moves bytes socket -> pipe -> socket with splice(2), so the payload never
// enters user space. One non-blocking pipe per direction is the kernel-side buffer; its capacity
// bounds the bytes in flight exactly like the buffered path's buffer does:
//
//     auto p = rproxy::net::splice_pipe::open(64 * 1024);      // result<splice_pipe>
//     auto r = rproxy::net::splice_some(src_fd, p->write_fd(), p->capacity());
//     if (r.ec == asio::error::would_block) wait_readable(src); // r.bytes == 0 and no error: eof
//
// Both sockets must be in non-blocking mode (socket.native_non_blocking(true)). splice(2) into a
// socket cannot ask for MSG_NOSIGNAL, so ignore_sigpipe() sets SIGPIPE to SIG_IGN once per process
// (only if it still has the default action); the relay calls it before its first splice.
// Elsewhere than Linux, open() fails with error::splice_unsupported and the relay falls back to
// its buffered path.
#pragma once

#include <asio/error.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <utility>

#if defined(__linux__)
#include <fcntl.h>
#include <unistd.h>
#endif

#include <rproxy/core/result.hpp>
#include <rproxy/net/error.hpp>

namespace rproxy::net {

/// True where the splice path exists at all (it may still fail per descriptor at run time).
inline constexpr bool splice_available =
#if defined(__linux__)
    true;
#else
    false;
#endif

/// A non-blocking, close-on-exec pipe: the kernel buffer of one spliced relay direction.
class splice_pipe {
public:
  splice_pipe() = default;
  splice_pipe(splice_pipe&& o) noexcept
      : fds_{std::exchange(o.fds_[0], -1), std::exchange(o.fds_[1], -1)}, capacity_(o.capacity_),
        requested_(o.requested_) {}
  splice_pipe& operator=(splice_pipe&& o) noexcept {
    if (this != &o) {
      close();
      fds_[0] = std::exchange(o.fds_[0], -1);
      fds_[1] = std::exchange(o.fds_[1], -1);
      capacity_ = o.capacity_;
      requested_ = o.requested_;
    }
    return *this;
  }
  ~splice_pipe() { close(); }

  /// Opens a pipe and asks for `capacity` bytes (F_SETPIPE_SZ; the kernel may round it up, or
  /// refuse above /proc/sys/fs/pipe-max-size, then the default size is kept).
  static result<splice_pipe> open([[maybe_unused]] std::size_t capacity) {
#if defined(__linux__)
    splice_pipe p;
    if (::pipe2(p.fds_, O_NONBLOCK | O_CLOEXEC) != 0)
      return failure(std::error_code(errno, asio::error::get_system_category()));
    int size = ::fcntl(p.fds_[1], F_GETPIPE_SZ);
    if (size > 0 && static_cast<std::size_t>(size) != capacity) {
      const int want = static_cast<int>(std::min<std::size_t>(capacity, 1u << 30));
      const int got = ::fcntl(p.fds_[1], F_SETPIPE_SZ, want);
      if (got > 0) size = got;
    }
    if (size <= 0) return failure(std::error_code(errno, asio::error::get_system_category()));
    p.capacity_ = static_cast<std::uint32_t>(size);
    p.requested_ = static_cast<std::uint32_t>(std::min<std::size_t>(capacity, UINT32_MAX));  // (past it: never matched, never reused)
    return p;
#else
    return failure(make_error_code(error::splice_unsupported));
#endif
  }

  int read_fd() const noexcept { return fds_[0]; }
  int write_fd() const noexcept { return fds_[1]; }
  std::size_t capacity() const noexcept { return capacity_; }
  /// The capacity open() was asked for (pools match pipes on it).
  std::size_t requested() const noexcept { return requested_; }
  bool is_open() const noexcept { return fds_[0] >= 0; }

  void close() noexcept {
#if defined(__linux__)
    for (int& fd : fds_)
      if (fd >= 0) ::close(std::exchange(fd, -1));
#endif
  }

private:
  int fds_[2] = {-1, -1};
  std::uint32_t capacity_ = 0;  // (32 bits: a relay holds two pipes' worth of these per connection)
  std::uint32_t requested_ = 0;
};

/// What one splice(2) call did: bytes moved (0 with no error: the source reached eof), or an
/// error; asio::error::would_block when the source has nothing or the sink has no room.
struct splice_result {
  std::size_t bytes = 0;
  std::error_code ec;
};

/// One non-blocking splice(2) of up to `max` bytes from `from` to `to` (one of them a pipe).
inline splice_result splice_some([[maybe_unused]] int from, [[maybe_unused]] int to,
                                 [[maybe_unused]] std::size_t max) noexcept {
#if defined(__linux__)
  for (;;) {
    const ssize_t n =
        ::splice(from, nullptr, to, nullptr, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n >= 0) return {static_cast<std::size_t>(n), {}};
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return {0, asio::error::would_block};
    return {0, std::error_code(errno, asio::error::get_system_category())};
  }
#else
  return {0, make_error_code(error::splice_unsupported)};
#endif
}

/// splice(2) refused these descriptors (not a failure of the connection): fall back to copying.
inline bool splice_refused(const std::error_code& ec) noexcept {
  const int e = system_errno(ec);
  return e == EINVAL || e == ENOSYS || e == EOPNOTSUPP ||
         ec == make_error_code(error::splice_unsupported);
}

/// Sets SIGPIPE to SIG_IGN once per process if its action is still the default.
inline void ignore_sigpipe() noexcept {
  [[maybe_unused]] static const bool done = [] {
    struct sigaction old {};
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
      struct sigaction ign {};
      ign.sa_handler = SIG_IGN;
      sigemptyset(&ign.sa_mask);
      ::sigaction(SIGPIPE, &ign, nullptr);
    }
    return true;
  }();
}

}  // namespace rproxy::net
