// apps/h3-gateway/flows_h2_tls.cpp: the one unit that instantiates HTTP/2 over TLS (ALPN "h2")
// over the gateway's pipelines (flows.hpp).
#include "flows.hpp"

template asio::awaitable<std::error_code>
rproxy::flow::serve_h2<h3_gateway::connection_pipeline_type, h3_gateway::request_pipeline_type, rproxy::net::tls_stream>(
    h3_gateway::connection_pipeline_type&, h3_gateway::request_pipeline_type&, const rproxy::flow::h2_adapter&,
    rproxy::net::tls_stream&, const rproxy::flow::options&, std::optional<rproxy::net::accepted_endpoints>, std::string_view);
