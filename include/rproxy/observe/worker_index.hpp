// rproxy/observe/worker_index.hpp: which worker the calling thread is, for per-worker metric
// shards.
//
// The io_pool calls `set_worker_index(i)` once at the start of worker thread i; every metric
// increment on that thread then lands in shard i (modulo the registry's shard count). Threads
// that never call it (main, admin, tests) use shard 0.
//
//     std::thread t([&, i] { rproxy::observe::set_worker_index(i); ctx.run(); });
#pragma once

#include <cstddef>

namespace rproxy::observe {

namespace detail {
// Constant-initialized and trivially destructible: reading it is one TLS load, no init guard.
inline constinit thread_local std::size_t worker_index_ = 0;
}  // namespace detail

/// Marks the calling thread as worker `i` (its metric increments go to shard `i`).
inline void set_worker_index(std::size_t i) noexcept { detail::worker_index_ = i; }

/// The calling thread's worker index (0 unless set_worker_index was called on this thread).
inline std::size_t worker_index() noexcept { return detail::worker_index_; }

}  // namespace rproxy::observe
