// rproxy/rproxy.hpp: the umbrella header, for users. rproxy's own headers never include it.
// It covers the dependency-free core; optional parts (TLS, config, observe, app) have their own
// headers and targets: include <rproxy/config/...> and link rproxy::config, and so on.
#pragma once

#include <rproxy/core/error.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>
#include <rproxy/pipeline/context.hpp>
#include <rproxy/pipeline/stage.hpp>
#include <rproxy/pipeline/verdict.hpp>
