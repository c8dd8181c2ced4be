// rproxy/codec/mc/protocol.hpp: the Minecraft protocol as a pipeline sees it: the flow fields a
// Minecraft connection has, and the hello message (handshake plus status request or Login Start,
// or a legacy ping) that the on_hello hooks receive.
//
//     struct my_flow : rproxy::codec::mc::flow { const server* target = nullptr; };
//     using proto = rproxy::codec::mc::pipeline_protocol<my_flow>;
//     auto p = rproxy::make_pipeline<proto>(rproxy::middleware::ban_check{&bans}, ...);
//
// hello satisfies the request_view concepts of middleware/request_view.hpp: username() (the
// Login Start name) and operation() ("login" or "status"), so the shared ban and rate-limit
// stages work on Minecraft flows unchanged: one rate_limit stage with a "login" and a "status"
// limit keeps separate buckets for the two.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include <rproxy/codec/mc/handshake.hpp>
#include <rproxy/codec/mc/legacy.hpp>
#include <rproxy/codec/mc/login.hpp>
#include <rproxy/codec/mc/packet.hpp>
#include <rproxy/pipeline/context.hpp>

namespace rproxy::codec::mc {

/// What a Minecraft flow knows beyond flow_info, filled in by flow/mc.hpp as it reads.
struct flow : flow_info {
  std::string host;                  ///< routing host: handshake address, normalized (handshake.hpp)
  std::int32_t protocol = 0;         ///< the client's protocol version (0: legacy ping)
  intent next = intent::status;      ///< what the handshake asked for
  state at = state::handshaking;     ///< the protocol state reached (for rendering a refusal)
  std::optional<legacy_ping_kind> legacy;  ///< set for a pre-1.7 server list ping
  // (The Login Start name, once read, is flow_base::identity.)
  /// Set by a stage before it returns `replied`: the bytes to send the client (a status response,
  /// a legacy kick). For a status reply the flow then answers the ping itself and closes.
  bytes reply;
  /// Set by the stage that picks the backend: the hostname to write into the handshake sent to
  /// it ("" keeps the client's). (The PROXY header it gets is flow_info::proxy_out.)
  std::string_view rewrite_host{};
  /// Keep client-sent forwarding data (BungeeCord "\0ip\0uuid...") in the handshake sent on;
  /// false (default): it is stripped, Forge markers stay (handshake.hpp).
  bool keep_forwarding_data = false;
};

/// The message of the hello phase: views into what the flow read.
struct hello {
  const handshake* hs = nullptr;        ///< null for a legacy ping
  const login_start* login = nullptr;   ///< the Login Start, for login and transfer intents
  const legacy_ping* legacy = nullptr;   ///< a legacy ping (nothing else is set)

  std::optional<std::string_view> username() const {
    if (login) return std::string_view(login->username);
    return std::nullopt;
  }
  std::string_view operation() const { return login ? "login" : "status"; }
};

template <class Flow = flow>
struct pipeline_protocol {
  static_assert(std::is_base_of_v<mc::flow, Flow>, "rproxy::codec::mc::pipeline_protocol: Flow must derive from mc::flow");
  using flow = Flow;
  using hello = mc::hello;
  using message = std::span<const std::byte>;
  using response = std::span<const std::byte>;
};

}  // namespace rproxy::codec::mc
