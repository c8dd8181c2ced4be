#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

namespace mw = rproxy::middleware;

namespace {
asio::ip::address addr(const char* s) { return asio::ip::make_address(s); }
}

TEST_CASE("conn_limit: per-address cap, release on close, memory follows live connections",
          "[middleware][conn_limit]") {
  mw::conn_limit_config cfg;
  cfg.max_per_ip = 2;
  mw::conn_counter counter;
  auto p = rproxy::make_pipeline(mw::conn_limit{&cfg, &counter, nullptr});
  using ctx_t = decltype(p.make_context());
  std::vector<ctx_t> flows;
  auto open = [&](const char* ip) {
    flows.push_back(p.make_context());
    flows.back().client = {addr(ip), 1};
    return p.accept(flows.back());
  };
  CHECK(open("192.0.2.1").is_next());
  CHECK(open("192.0.2.1").is_next());
  auto v = open("192.0.2.1");
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::too_many_connections);
  CHECK(open("192.0.2.2").is_next());
  CHECK(open("2001:db8::1").is_next());
  CHECK(open("2001:db8::2").is_next());
  CHECK(open("2001:db8::3").is_reject());  // same /64
  CHECK(counter.total() == 5);
  CHECK(counter.keys() == 3);

  for (auto& f : flows) p.close(f, {});  // rejected flows did not count: no underflow
  CHECK(counter.total() == 0);
  CHECK(counter.keys() == 0);
  p.close(flows[0], {});  // closing twice is harmless
  CHECK(counter.total() == 0);
  flows.clear();
  CHECK(open("192.0.2.1").is_next());
}

TEST_CASE("conn_limit: total cap and concurrent workers", "[middleware][conn_limit]") {
  mw::conn_counter counter;
  auto k = [](int i) { return mw::to_ip_key(asio::ip::address_v4(static_cast<std::uint32_t>(0x0A000000 + i))); };
  CHECK(counter.try_acquire(k(1), 0, 2) == mw::conn_counter::outcome::ok);
  CHECK(counter.try_acquire(k(2), 0, 2) == mw::conn_counter::outcome::ok);
  CHECK(counter.try_acquire(k(3), 0, 2) == mw::conn_counter::outcome::total_full);
  counter.release(k(1));
  CHECK(counter.try_acquire(k(3), 0, 2) == mw::conn_counter::outcome::ok);
  counter.release(k(9));  // never acquired: ignored
  CHECK(counter.total() == 2);

  mw::conn_counter shared;
  std::atomic<int> ok{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&] {
      for (int i = 0; i < 500; ++i)
        if (shared.try_acquire(k(7), 100, 0) == mw::conn_counter::outcome::ok) ok.fetch_add(1);
    });
  for (auto& t : workers) t.join();
  CHECK(ok.load() == 100);
  CHECK(shared.count(k(7)) == 100);
}
