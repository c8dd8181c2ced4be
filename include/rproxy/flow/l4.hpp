// rproxy/flow/l4.hpp: the L4 adapter: no hello, no message framing; after on_accept the flow
// routes, connects and relays bytes untouched (client bytes read with a PROXY header go first).
//
//     co_await rproxy::flow::serve(pipeline, rproxy::flow::l4_adapter{}, std::move(socket), options);
//
// A refusal closes the connection: a byte stream has no way to say why.
#pragma once

#include <string>

#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::flow {

struct l4_adapter {
  static constexpr bool reads_hello = false;

  template <class Ctx>
  std::string render(const Ctx&, const reject_reason&) const {
    return {};
  }
};

}  // namespace rproxy::flow
