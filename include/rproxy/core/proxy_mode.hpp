// rproxy/core/proxy_mode.hpp: the PROXY protocol modes a listener and a backend can have, as
// plain enums every layer may name (config blocks, flow contexts, the transport).
//
//     rproxy::proxy_accept::optional   // read a header when a trusted peer sends one
//     rproxy::proxy_send::v2           // send this backend a binary header first
#pragma once

#include <cstdint>

namespace rproxy {

/// Whether clients may (or must) start with a PROXY header. Only trusted peers are believed.
enum class proxy_accept : std::uint8_t { none, optional, required };

/// Which PROXY header, if any, a backend gets before the client's bytes.
enum class proxy_send : std::uint8_t { none, v1, v2 };

}  // namespace rproxy
