// apps/h3-gateway/flows.hpp: the gateway's three flows (app/http_listeners.hpp), each instantiated in a
// unit of its own: HTTP/1.1 or h2c over TCP in flows.cpp, HTTP/2 over TLS in flows_h2_tls.cpp,
// HTTP/1.1 over TLS in flows_h1_tls.cpp. Other units see them extern: one unit with all of
// them costs more memory than a build machine may have.
#pragma once

#include <optional>
#include <string_view>
#include <system_error>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <rproxy/flow/h2.hpp>
#include <rproxy/flow/h3.hpp>
#include <rproxy/net/quic/server_endpoint.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/net/listener.hpp>
#include <rproxy/net/tls_stream.hpp>

#include "gateway.hpp"

namespace h3_gateway {

using connection_pipeline_type = decltype(world::connections)::value_type;
using request_pipeline_type = decltype(world::pipelines)::value_type;

/// Opens the `quic:` listener (flows_h3.cpp): one QUIC endpoint per worker on the UDP port,
/// HTTP/3 into the world's pipelines. False (logged): it cannot listen.
bool open_quic(runtime& rt, rproxy::app::versions<world>& worlds, const config& c, const rproxy::net::quic::endpoint_settings& s,
               const rproxy::flow::h3_adapter& a);

}  // namespace h3_gateway

extern template asio::awaitable<std::error_code>
rproxy::flow::serve_http<h3_gateway::connection_pipeline_type, h3_gateway::request_pipeline_type>(
    h3_gateway::connection_pipeline_type&, h3_gateway::request_pipeline_type&, const rproxy::flow::http1_adapter&,
    const rproxy::flow::h2_adapter&, asio::ip::tcp::socket, const rproxy::flow::options&,
    std::optional<rproxy::net::accepted_endpoints>);

extern template asio::awaitable<std::error_code>
rproxy::flow::serve_h2<h3_gateway::connection_pipeline_type, h3_gateway::request_pipeline_type, rproxy::net::tls_stream>(
    h3_gateway::connection_pipeline_type&, h3_gateway::request_pipeline_type&, const rproxy::flow::h2_adapter&,
    rproxy::net::tls_stream&, const rproxy::flow::options&, std::optional<rproxy::net::accepted_endpoints>, std::string_view);

extern template asio::awaitable<std::error_code>
rproxy::flow::serve<h3_gateway::connection_pipeline_type, h3_gateway::request_pipeline_type, rproxy::flow::http1_adapter,
                    rproxy::net::tls_stream>(h3_gateway::connection_pipeline_type&, h3_gateway::request_pipeline_type&,
                                             const rproxy::flow::http1_adapter&, rproxy::net::tls_stream,
                                             const rproxy::flow::options&, std::optional<rproxy::net::accepted_endpoints>);
