// Cost of a deadline on every read, in one run side by side: each op writes one byte into one
// end of a socketpair (a blocking write) and reads it from the other end in a coroutine, so the
// read completes at once (asio's speculative read) and what differs is the deadline machinery:
//   bare          co_await s.async_read_some(buf, as_tuple(use_awaitable))
//   with_deadline co_await net::with_deadline(s.async_read_some(buf, deferred), 30s)
//   ... busy      the same with another timer pending that expires first (a busy worker: the new
//                 deadline is not the earliest, so the reactor does not re-arm its timerfd)
//   parallel_group  make_parallel_group(read, timer.async_wait).async_wait(wait_for_one(), ...)
//   operator||    co_await (read(use_awaitable) || timer.async_wait(use_awaitable))
// Prints ns per op (best of 5 rounds of N ops, in CPU time of the thread: user and kernel, so the
// figure holds on a loaded machine) and the ratio to bare.
//
//     bench_deadline [ops per round, default 200000] [only this variant]
#include <rproxy/net/deadline.hpp>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using asio::experimental::as_tuple;
using asio::experimental::deferred;
using stream = asio::local::stream_protocol::socket;
namespace net = rproxy::net;

enum class variant { bare, with_deadline, with_deadline_busy, parallel_group, operator_or };

asio::awaitable<void> loop(stream& a, stream& b, variant v, long ops, long& done) {
  char in = 0;
  const char out = 'x';
  for (long i = 0; i < ops; ++i) {
    if (::write(b.native_handle(), &out, 1) != 1) throw std::runtime_error("write failed");
    std::size_t n = 0;
    std::error_code ec;
    switch (v) {
      case variant::bare: {
        auto [e, k] = co_await a.async_read_some(asio::buffer(&in, 1), as_tuple(asio::use_awaitable));
        ec = e, n = k;
        break;
      }
      case variant::with_deadline:
      case variant::with_deadline_busy: {
        auto [e, k] = co_await net::with_deadline(a.async_read_some(asio::buffer(&in, 1), deferred), 30s);
        ec = e, n = k;
        break;
      }
      case variant::parallel_group: {
        asio::steady_timer t(a.get_executor(), 30s);
        auto [order, e, k, te] = co_await asio::experimental::make_parallel_group(
                                     a.async_read_some(asio::buffer(&in, 1), deferred), t.async_wait(deferred))
                                     .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
        (void)order, (void)te;
        ec = e, n = k;
        break;
      }
      case variant::operator_or: {
        using namespace asio::experimental::awaitable_operators;
        asio::steady_timer t(a.get_executor(), 30s);
        auto r = co_await (a.async_read_some(asio::buffer(&in, 1), asio::use_awaitable) || t.async_wait(asio::use_awaitable));
        n = r.index() == 0 ? std::get<0>(r) : 0;
        break;
      }
    }
    if (ec || n != 1) throw std::runtime_error("read failed: " + ec.message());
  }
  done = ops;
}

double thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double ns_per_op(variant v, long ops) {
  asio::io_context ioc(1);
  stream a(ioc), b(ioc);
  asio::local::connect_pair(a, b);
  asio::steady_timer earlier(ioc);
  if (v == variant::with_deadline_busy) {
    earlier.expires_after(10s);  // pending all along, and earlier than every 30 s deadline
    earlier.async_wait([](std::error_code) {});
  }
  long done = 0;
  asio::co_spawn(ioc, loop(a, b, v, ops, done), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  const double t0 = thread_cpu_ns();
  while (done == 0) ioc.run_one();
  const double t1 = thread_cpu_ns();
  return (t1 - t0) / static_cast<double>(ops);
}

}  // namespace

int main(int argc, char** argv) {
  const long ops = argc > 1 ? std::atol(argv[1]) : 200000;
  const std::vector<std::pair<variant, const char*>> variants{
      {variant::bare, "bare"},
      {variant::with_deadline, "with_deadline"},
      {variant::with_deadline_busy, "with_deadline, busy"},
      {variant::parallel_group, "parallel_group"},
      {variant::operator_or, "operator||"},
  };
  const std::string only = argc > 2 ? argv[2] : "";
  std::vector<double> best(variants.size(), 1e300);
  for (int round = 0; round < 5; ++round)  // interleaved, so drift hits every variant alike
    for (std::size_t i = 0; i < variants.size(); ++i)
      if (only.empty() || only == variants[i].second) best[i] = std::min(best[i], ns_per_op(variants[i].first, ops));
  std::printf("%-22s %10s %8s %10s\n", "variant", "ns/op", "x bare", "+ns/op");
  for (std::size_t i = 0; i < variants.size(); ++i) {
    if (!only.empty() && only != variants[i].second) continue;
    if (!only.empty()) std::printf("%-22s %10.0f\n", variants[i].second, best[i]);
    else std::printf("%-22s %10.0f %8.2f %10.0f\n", variants[i].second, best[i], best[i] / best[0], best[i] - best[0]);
  }
}
