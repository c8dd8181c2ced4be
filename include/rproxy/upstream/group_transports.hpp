// rproxy/upstream/group_transports.hpp: how one config version's flows reach each group's
// backends: what upstream::backends (upstream/backends.hpp) stages for a version, and all its
// flows need of it. Apart, so that the units that compile an app's flows need not include the
// backends' stand-ins (HTTP/2 and HTTP/3 connections to backends) that build it.
#pragma once

#include <memory>
#include <vector>

#include <rproxy/flow/upstream.hpp>
#include <rproxy/flow/upstream_redirect.hpp>

namespace rproxy::net {
class tls_client_context;
}

namespace rproxy::upstream {

/// How one config version's flows reach each group's backends.
struct group_transports {
  /// The client contexts of the groups with TLS (shared: the HTTP/2 connections of proto: h2
  /// groups keep theirs past this version).
  std::vector<std::shared_ptr<const net::tls_client_context>> contexts;
  std::vector<flow::upstream_settings> by_group;           ///< per group (no TLS: plain TCP; h2, h3: the plain stand-in)
  std::shared_ptr<const flow::upstream_redirect> redirect;  ///< the stand-ins of h2c, h2 and h3 groups (null: none)
};

}  // namespace rproxy::upstream
