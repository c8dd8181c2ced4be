// rproxy/app/runtime_fwd.hpp: the name of an app's runtime (app/runtime.hpp), for a header that
// only declares functions taking one, so that it does not pay for the whole app kit:
//
//     int serve(rproxy::app::runtime<config>& rt);   // defined in the app's serve.cpp
#pragma once

namespace rproxy::app {

template <class Config>
class runtime;

}  // namespace rproxy::app
