// rproxy/net/error.hpp: error codes of the transport area (connect, accept, relay).
//
// Every code knows where the failure came from and whether a retry is safe, so callers test
// against the project-wide conditions rather than a list of codes:
//
//     if (ec == rproxy::condition::retry_safe) try_next_backend();   // connect_refused, ...
//     if (ec == rproxy::condition::upstream) mark_backend_failed();
//
// `classify_connect(ec)` maps an asio/system error from a connect to one of these codes;
// `classify(ec, side)` maps an error from I/O on an established stream (relay) to
// client_* (downstream) or backend_* (upstream).
#pragma once

#include <asio/error.hpp>

#include <cerrno>
#include <string>
#include <system_error>

#include <rproxy/core/error.hpp>

namespace rproxy::net {

enum class error {
  // Connecting to a backend: nothing reached it, so all of these are upstream + retry_safe.
  connect_refused = 1,  ///< the backend refused the connection (nothing listens)
  connect_timeout,      ///< no endpoint answered within the connect timeout
  connect_unreachable,  ///< no route to the backend's host or network
  connect_failed,       ///< any other connect failure
  resolve_failed,       ///< the backend's name did not resolve
  no_endpoints,         ///< the name resolved to no usable address
  // Relaying an established flow.
  client_reset,    ///< the client reset the connection or went away mid-write (downstream)
  client_failed,   ///< another I/O error on the client stream (downstream)
  backend_reset,   ///< the backend reset the connection or died mid-stream (upstream)
  backend_failed,  ///< another I/O error on the backend stream (upstream)
  idle_timeout,    ///< no bytes moved either way for the idle timeout (downstream)
  // Accepting.
  accept_exhausted,  ///< accept hit a descriptor or memory limit (internal); the listener backs off
  accept_failed,     ///< any other accept failure (internal)
  splice_unsupported,  ///< splice(2) is not available for these descriptors (internal)
  /// No descriptor or memory here to open a backend socket (internal: not the backend's fault,
  /// so a balancer does not count it against the backend; not retry-safe).
  connect_exhausted,
  flow_aborted,        ///< an exception ended one flow (internal: a bug); the worker goes on
  // TLS to a backend (after the TCP connect; nothing of a request was sent: upstream + retry_safe).
  tls_handshake_failed,  ///< the backend's TLS handshake failed (no common protocol, not TLS, reset)
  tls_verify_failed,     ///< the backend's certificate was refused (unknown CA, wrong name, expired)
};

/// Which stream of a flow an I/O error happened on.
enum class side {
  downstream,  ///< the client's stream
  upstream,    ///< the backend's stream
};

namespace detail {

class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.net"; }

  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::connect_refused: return "backend refused the connection";
      case error::connect_timeout: return "connect to backend timed out";
      case error::connect_unreachable: return "backend host or network unreachable";
      case error::connect_failed: return "connect to backend failed";
      case error::resolve_failed: return "backend name did not resolve";
      case error::no_endpoints: return "backend name resolved to no address";
      case error::client_reset: return "client reset the connection";
      case error::client_failed: return "I/O error on the client connection";
      case error::backend_reset: return "backend reset the connection";
      case error::backend_failed: return "I/O error on the backend connection";
      case error::idle_timeout: return "connection idle for too long";
      case error::accept_exhausted: return "accept hit a descriptor or memory limit";
      case error::accept_failed: return "accept failed";
      case error::splice_unsupported: return "splice(2) unsupported for these descriptors";
      case error::connect_exhausted: return "no descriptor or memory to connect to the backend";
      case error::flow_aborted: return "flow ended by an exception";
      case error::tls_handshake_failed: return "TLS handshake with the backend failed";
      case error::tls_verify_failed: return "backend certificate verification failed";
    }
    return "unknown rproxy.net error";
  }

  condition source(int c) const noexcept override {
    switch (static_cast<error>(c)) {
      case error::connect_refused:
      case error::connect_timeout:
      case error::connect_unreachable:
      case error::connect_failed:
      case error::resolve_failed:
      case error::no_endpoints:
      case error::backend_reset:
      case error::backend_failed:
      case error::tls_handshake_failed:
      case error::tls_verify_failed: return condition::upstream;
      case error::client_reset:
      case error::client_failed:
      case error::idle_timeout: return condition::downstream;
      case error::accept_exhausted:
      case error::accept_failed:
      case error::splice_unsupported:
      case error::connect_exhausted:
      case error::flow_aborted: return condition::internal;
    }
    return condition::internal;
  }

  bool retry_safe(int c) const noexcept override {
    switch (static_cast<error>(c)) {
      case error::connect_refused:
      case error::connect_timeout:
      case error::connect_unreachable:
      case error::connect_failed:
      case error::resolve_failed:
      case error::no_endpoints:
      case error::tls_handshake_failed:
      case error::tls_verify_failed: return true;
      default: return false;
    }
  }
};

}  // namespace detail

inline const rproxy::error_category& error_category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// True for errors that already carry an rproxy source (any area's category).
inline bool is_classified(const std::error_code& ec) noexcept {
  return dynamic_cast<const rproxy::error_category*>(&ec.category()) != nullptr;
}

/// The errno behind a system error, whether asio's "asio.system" category, std::system_category
/// or std::generic_category produced it (they compare unequal to each other); 0 otherwise.
inline int system_errno(const std::error_code& ec) noexcept {
  const auto& c = ec.category();
  if (c == asio::error::get_system_category() || c == std::system_category() ||
      c == std::generic_category())
    return ec.value();
  return 0;
}

/// Maps an error from connecting (or resolving) to a net::error; rproxy codes pass unchanged,
/// success stays success. operation_aborted (the caller cancelled) passes unchanged too.
inline std::error_code classify_connect(const std::error_code& ec) noexcept {
  if (!ec || is_classified(ec)) return ec;
  switch (system_errno(ec)) {
    case ECANCELED: return ec;
    case ECONNREFUSED: return make_error_code(error::connect_refused);
    case ETIMEDOUT: return make_error_code(error::connect_timeout);
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ENETDOWN: return make_error_code(error::connect_unreachable);
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
    case ENOMEM: return make_error_code(error::connect_exhausted);
    default: break;
  }
  if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again ||
      ec == asio::error::no_data || ec == asio::error::no_recovery ||
      ec == asio::error::service_not_found)
    return make_error_code(error::resolve_failed);
  return make_error_code(error::connect_failed);
}

/// Maps an I/O error on one stream of an established flow to client_* or backend_*; rproxy codes
/// and operation_aborted pass unchanged, success stays success. eof in the middle of an
/// exchange, reset, broken pipe and the like become *_reset, anything else *_failed.
inline std::error_code classify(const std::error_code& ec, side s) noexcept {
  if (!ec || is_classified(ec)) return ec;
  bool reset = ec == asio::error::eof;
  switch (system_errno(ec)) {
    case ECANCELED: return ec;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
    case ENOTCONN:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH: reset = true; break;
    default: break;
  }
  if (s == side::downstream) return make_error_code(reset ? error::client_reset : error::client_failed);
  return make_error_code(reset ? error::backend_reset : error::backend_failed);
}

}  // namespace rproxy::net

template <>
struct std::is_error_code_enum<rproxy::net::error> : std::true_type {};
