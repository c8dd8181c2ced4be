// apps/h3-gateway/flows_h1_tls.cpp: the one unit that instantiates HTTP/1.1 over TLS over the
// gateway's pipelines (flows.hpp).
#include "flows.hpp"

template asio::awaitable<std::error_code>
rproxy::flow::serve<h3_gateway::connection_pipeline_type, h3_gateway::request_pipeline_type, rproxy::flow::http1_adapter,
                    rproxy::net::tls_stream>(h3_gateway::connection_pipeline_type&, h3_gateway::request_pipeline_type&,
                                             const rproxy::flow::http1_adapter&, rproxy::net::tls_stream,
                                             const rproxy::flow::options&, std::optional<rproxy::net::accepted_endpoints>);
