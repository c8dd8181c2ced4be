// rproxy/rproxy.hpp: the umbrella header, for users. rproxy's own headers never include it.
// It covers the parts that need nothing but Asio: core, pipeline, balancing and health, the
// HTTP/1.1 codec, PROXY protocol, and the TCP transport. Parts with other dependencies (TLS,
// config, observe, app, middleware, the Minecraft codec) have their own headers and targets:
// include <rproxy/config/...> and link rproxy::config, and so on.
#pragma once

#include <rproxy/core/error.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/pipeline/context.hpp>
#include <rproxy/pipeline/stage.hpp>
#include <rproxy/pipeline/verdict.hpp>
#include <rproxy/balance/consistent_hash.hpp>
#include <rproxy/balance/ip_hash.hpp>
#include <rproxy/balance/least_conn.hpp>
#include <rproxy/balance/p2c_ewma.hpp>
#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/random.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/balance/stage.hpp>
#include <rproxy/balance/sticky.hpp>
#include <rproxy/balance/weighted_round_robin.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/health/checker.hpp>
#include <rproxy/health/circuit_breaker.hpp>
#include <rproxy/health/load_report.hpp>
#include <rproxy/health/outlier.hpp>
#include <rproxy/health/probe.hpp>
#include <rproxy/health/retry_budget.hpp>
#include <rproxy/flow/l4.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/net/connector.hpp>
#include <rproxy/net/listener.hpp>
#include <rproxy/net/proxy_protocol.hpp>
#include <rproxy/net/relay.hpp>
#include <rproxy/net/relay_pool.hpp>
