// tests/support/run_until.hpp: drives an io_context until a condition holds, within a generous
// bound, so a bug fails the test instead of hanging it (not a timing assertion: 20 s is far
// beyond any expected wait).
#pragma once

#include <asio/io_context.hpp>

#include <chrono>

namespace rproxy::test {

template <class Pred>
bool run_until(asio::io_context& ioc, Pred done, std::chrono::steady_clock::duration bound = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    if (ioc.stopped()) ioc.restart();
    ioc.run_one_for(std::chrono::milliseconds(20));
  }
  return done();
}

}  // namespace rproxy::test
