// apps/h3-gateway/flows.cpp: the one unit that instantiates the plain listener's flow: HTTP/1.1,
// or HTTP/2 after the h2c preface, over the gateway's pipelines (flows.hpp).
#include "flows.hpp"

template asio::awaitable<std::error_code>
rproxy::flow::serve_http<h3_gateway::connection_pipeline_type, h3_gateway::request_pipeline_type>(
    h3_gateway::connection_pipeline_type&, h3_gateway::request_pipeline_type&, const rproxy::flow::http1_adapter&,
    const rproxy::flow::h2_adapter&, asio::ip::tcp::socket, const rproxy::flow::options&,
    std::optional<rproxy::net::accepted_endpoints>);
