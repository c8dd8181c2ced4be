// rproxy/net/pool_executors.hpp: the executors of an io_pool's workers, index i being worker
// i's: what per-worker parts (a roster of flows, a hub, links to Redis) are built from.
#pragma once

#include <asio/any_io_executor.hpp>

#include <cstddef>
#include <vector>

#include <rproxy/net/io_pool.hpp>

namespace rproxy::net {

inline std::vector<asio::any_io_executor> executors_of(io_pool& pool) {
  std::vector<asio::any_io_executor> out;
  out.reserve(pool.size());
  for (std::size_t i = 0; i < pool.size(); ++i) out.push_back(pool.executor(i));
  return out;
}

}  // namespace rproxy::net
