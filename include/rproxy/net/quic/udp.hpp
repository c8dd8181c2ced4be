// rproxy/net/quic/udp.hpp: the UDP side of QUIC: a socket per address (IPv4 or IPv6 only,
// SO_REUSEPORT so that each worker has its own), ngtcp2 paths from socket addresses, and the
// packet send path (sendmsg; with GSO, several packets of one size in one call).
//
//     auto s = open_udp_socket(ex, endpoint, /*reuse_port=*/true);   // result<udp::socket>
//     path_storage ps(local, remote);                                 // ngtcp2_path over its own storage
//     udp_sender tx(s.native_handle());
//     tx.send(ps.path.remote, packet);                                // one datagram
//     tx.send(ps.path.remote, packets, segment);                      // GSO batch (or one by one)
//
// A send that would block drops the datagram: QUIC's loss recovery sends it again, and a
// server must not buffer without bound for a client that floods it.
#pragma once

#include <asio/ip/udp.hpp>
#include <asio/ip/v6_only.hpp>

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <ngtcp2/ngtcp2.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <system_error>

#include <rproxy/core/result.hpp>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // linux/udp.h: GSO segment size (since Linux 4.18)
#endif

namespace rproxy::net::quic {

/// A bound UDP socket for QUIC: non-blocking, SO_REUSEPORT when asked (one per worker), IPv6
/// sockets IPv6-only (an IPv4 address gets its own socket).
inline result<asio::ip::udp::socket> open_udp_socket(const asio::any_io_executor& ex, const asio::ip::udp::endpoint& ep, bool reuse_port) {
  asio::ip::udp::socket s(ex);
  std::error_code ec;
  s.open(ep.protocol(), ec);
  if (ec) return failure(ec);
  s.set_option(asio::socket_base::reuse_address(true), ec);
  if (reuse_port) {
    const int one = 1;
    if (::setsockopt(s.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      return failure(std::error_code(errno, std::system_category()));
  }
  if (ep.address().is_v6()) s.set_option(asio::ip::v6_only(true), ec);
  if (ec) return failure(ec);
  s.set_option(asio::socket_base::receive_buffer_size(4 << 20), ec);  // best effort (capped by rmem_max)
  s.set_option(asio::socket_base::send_buffer_size(4 << 20), ec);
  ec = {};
  s.bind(ep, ec);
  if (ec) return failure(ec);
  s.non_blocking(true, ec);
  if (ec) return failure(ec);
  return s;
}

/// An ngtcp2_path over its own address storage (copies point at their own storage).
struct path_storage {
  sockaddr_storage local_addr{}, remote_addr{};
  ngtcp2_path path{};

  path_storage() { bind(); }
  path_storage(const asio::ip::udp::endpoint& local, const asio::ip::udp::endpoint& remote) {
    set(local_addr, path.local, local.data(), local.size());
    set(remote_addr, path.remote, remote.data(), remote.size());
    bind();
  }
  path_storage(const path_storage& o) : local_addr(o.local_addr), remote_addr(o.remote_addr), path(o.path) { bind(); }
  path_storage& operator=(const path_storage& o) {
    local_addr = o.local_addr;
    remote_addr = o.remote_addr;
    path = o.path;
    bind();
    return *this;
  }
  /// Copies an ngtcp2 path (as ngtcp2 hands one out) into this storage.
  void assign(const ngtcp2_path& p) {
    set(local_addr, path.local, p.local.addr, static_cast<std::size_t>(p.local.addrlen));
    set(remote_addr, path.remote, p.remote.addr, static_cast<std::size_t>(p.remote.addrlen));
    path.user_data = p.user_data;
    bind();
  }
  asio::ip::udp::endpoint remote() const { return endpoint_of(path.remote); }
  asio::ip::udp::endpoint local() const { return endpoint_of(path.local); }

  static asio::ip::udp::endpoint endpoint_of(const ngtcp2_addr& a) {
    asio::ip::udp::endpoint ep;
    if (a.addrlen > 0 && static_cast<std::size_t>(a.addrlen) <= ep.capacity()) {
      std::memcpy(ep.data(), a.addr, static_cast<std::size_t>(a.addrlen));
      ep.resize(static_cast<std::size_t>(a.addrlen));
    }
    return ep;
  }

private:
  static void set(sockaddr_storage& st, ngtcp2_addr& a, const void* sa, std::size_t len) {
    len = len > sizeof st ? sizeof st : len;
    std::memcpy(&st, sa, len);
    a.addrlen = static_cast<ngtcp2_socklen>(len);
  }
  void bind() {
    path.local.addr = reinterpret_cast<ngtcp2_sockaddr*>(&local_addr);
    path.remote.addr = reinterpret_cast<ngtcp2_sockaddr*>(&remote_addr);
  }
};

/// Sends datagrams on one socket; counts what it sent and dropped.
class udp_sender {
public:
  explicit udp_sender(int fd = -1) noexcept : fd_(fd) {}
  void reset(int fd) noexcept { fd_ = fd; }

  /// Sends `data` to `to`; with `segment` > 0 and below data.size(), `data` holds several
  /// packets of `segment` bytes (the last may be shorter), sent with one GSO call where the
  /// kernel can, else one by one. Errors other than "would block" are returned.
  std::error_code send(const ngtcp2_addr& to, std::span<const std::uint8_t> data, std::size_t segment = 0) noexcept {
    if (segment == 0 || segment >= data.size()) return send_one(to, data, 0);
    if (gso_) {
      auto ec = send_one(to, data, segment);
      if (ec != std::errc::invalid_argument && ec != std::errc::io_error) return ec;
      gso_ = false;  // not supported here: one by one from now on
    }
    for (std::size_t at = 0; at < data.size(); at += segment)
      if (auto ec = send_one(to, data.subspan(at, std::min(segment, data.size() - at)), 0)) return ec;
    return {};
  }

  bool gso() const noexcept { return gso_; }
  std::uint64_t datagrams() const noexcept { return datagrams_; }
  std::uint64_t dropped() const noexcept { return dropped_; }

private:
  std::error_code send_one(const ngtcp2_addr& to, std::span<const std::uint8_t> data, std::size_t segment) noexcept {
    iovec iov{const_cast<std::uint8_t*>(data.data()), data.size()};
    msghdr m{};
    m.msg_name = to.addr;
    m.msg_namelen = static_cast<socklen_t>(to.addrlen);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    alignas(cmsghdr) unsigned char control[CMSG_SPACE(sizeof(std::uint16_t))]{};
    if (segment > 0) {
      m.msg_control = control;
      m.msg_controllen = sizeof control;
      auto* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      const auto seg = static_cast<std::uint16_t>(segment);
      std::memcpy(CMSG_DATA(c), &seg, sizeof seg);
    }
    for (;;) {
      const auto n = ::sendmsg(fd_, &m, MSG_DONTWAIT);
      if (n >= 0) {
        datagrams_ += segment > 0 ? (data.size() + segment - 1) / segment : 1;
        return {};
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
        dropped_ += segment > 0 ? (data.size() + segment - 1) / segment : 1;
        return {};
      }
      return std::error_code(errno, std::system_category());
    }
  }

  int fd_;
  bool gso_ = true;
  std::uint64_t datagrams_ = 0, dropped_ = 0;
};

}  // namespace rproxy::net::quic
