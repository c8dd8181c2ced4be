#include <rproxy/middleware/rate_limit.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

namespace mw = rproxy::middleware;
using namespace std::chrono_literals;

namespace {

struct fake_clock {
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;
  static inline time_point t{std::chrono::hours(1)};
  static time_point now() { return t; }
};

// A request view as an HTTP or WebSocket codec would provide.
struct fake_request {
  std::map<std::string, std::string, std::less<>> headers;
  std::string op;
  std::optional<std::string_view> header(std::string_view n) const {
    auto it = headers.find(n);
    return it == headers.end() ? std::nullopt : std::optional<std::string_view>(it->second);
  }
  std::string_view operation() const { return op; }
};

struct fake_protocol {
  using flow = rproxy::flow_info;
  using hello = fake_request;
  using message = fake_request;
  using response = int;
};

struct lines {
  std::vector<std::string> out;
  void operator()(const mw::audit_record&, std::string_view line) { out.emplace_back(line); }
};

using limiter = mw::basic_rate_limit<mw::local_counter_store, void, fake_clock>;

mw::rate_limit_config base_config() {
  mw::rate_limit_config cfg;
  cfg.hello_operation = "request";
  cfg.message_operation = "message";
  cfg.tiers = {{"default",
                {{"request", {mw::rate_algorithm::token_bucket, 2, 1min}},
                 {"message", {mw::rate_algorithm::sliding_window, 3, 10s}},
                 {"join", {mw::rate_algorithm::token_bucket, 1, 1min}}}}};
  return cfg;
}

}  // namespace

TEST_CASE("rate_limit stage: hello limit, headers and Retry-After", "[middleware][rate_limit]") {
  auto cfg = base_config();
  mw::local_counter_store store;
  lines sink;
  auto log = mw::audit_log::to(sink);
  auto p = rproxy::make_pipeline<fake_protocol>(limiter{&cfg, &store, &log});
  STATIC_REQUIRE_FALSE(decltype(p)::is_async(rproxy::phase::hello));

  fake_request req;
  auto hello = [&](const char* ip) {
    auto ctx = p.make_context();
    ctx.client = {asio::ip::make_address(ip), 5000};
    ctx.id = 42;
    auto v = p.hello(ctx, req);
    return std::pair(v, ctx.state<limiter>().headers);
  };
  auto [v1, h1] = hello("198.51.100.7");
  CHECK(v1.is_next());
  CHECK(h1.present);
  CHECK(h1.limit == 2);
  CHECK(h1.remaining == 1);
  CHECK(h1.reset_s == 30);
  auto [v2, h2] = hello("198.51.100.7");
  CHECK(v2.is_next());
  CHECK(h2.remaining == 0);
  auto [v3, h3] = hello("198.51.100.7");
  REQUIRE(v3.is_reject());
  CHECK(v3.reason().code == rproxy::reject_code::rate_limited);
  CHECK(v3.reason().message == "rate limit exceeded");
  CHECK(v3.reason().retry_after_s == 30);
  CHECK(h3.retry_after_s == 30);

  std::vector<std::pair<std::string, std::string>> rendered;
  h3.render([&](std::string_view n, std::string_view v) { rendered.emplace_back(n, v); });
  CHECK(rendered == std::vector<std::pair<std::string, std::string>>{{"X-RateLimit-Limit", "2"},
                                                                      {"X-RateLimit-Remaining", "0"},
                                                                      {"X-RateLimit-Reset", "60"},
                                                                      {"Retry-After", "30"}});
  // another client is independent
  CHECK(hello("198.51.100.8").first.is_next());

  REQUIRE(sink.out.size() == 1);
  CHECK(sink.out[0].find("code=rate_limited") != std::string::npos);
  CHECK(sink.out[0].find("client=198.51.100.7") != std::string::npos);
  CHECK(sink.out[0].find("198.51.100.7/32") != std::string::npos);  // the key
  CHECK(sink.out[0].find("flow=42") != std::string::npos);

  fake_clock::t += 30s;  // one token back
  CHECK(hello("198.51.100.7").first.is_next());
  CHECK(hello("198.51.100.7").first.is_reject());
}

TEST_CASE("rate_limit stage: IPv6 clients share their /64", "[middleware][rate_limit]") {
  auto cfg = base_config();
  mw::local_counter_store store;
  auto p = rproxy::make_pipeline<fake_protocol>(limiter{&cfg, &store, nullptr});
  fake_request req;
  auto hello = [&](const char* ip) {
    auto ctx = p.make_context();
    ctx.client = {asio::ip::make_address(ip), 1};
    return p.hello(ctx, req);
  };
  CHECK(hello("2001:db8:1:2::1").is_next());
  CHECK(hello("2001:db8:1:2:ffff:ffff:ffff:ffff").is_next());
  CHECK(hello("2001:db8:1:2::99").is_reject());  // same /64
  CHECK(hello("2001:db8:1:3::1").is_next());     // next /64
  // an IPv4-mapped client counts as its IPv4 address
  CHECK(hello("192.0.2.1").is_next());
  CHECK(hello("::ffff:192.0.2.1").is_next());
  CHECK(hello("192.0.2.1").is_reject());
}

TEST_CASE("rate_limit stage: per-operation limits on messages", "[middleware][rate_limit]") {
  auto cfg = base_config();
  mw::local_counter_store store;
  auto p = rproxy::make_pipeline<fake_protocol>(limiter{&cfg, &store, nullptr});
  auto ctx = p.make_context();
  ctx.client = {asio::ip::make_address("203.0.113.1"), 1};
  fake_request msg;  // no own operation: counted as "message"
  for (int i = 0; i < 3; ++i) CHECK(p.message(ctx, msg).is_next());
  CHECK(p.message(ctx, msg).is_reject());
  fake_request join;
  join.op = "join";  // the codec classifies it
  CHECK(p.message(ctx, join).is_next());
  CHECK(p.message(ctx, join).is_reject());
  fake_request ping;
  ping.op = "status";  // no limit configured for it
  for (int i = 0; i < 10; ++i) CHECK(p.message(ctx, ping).is_next());
}

TEST_CASE("rate_limit stage: keys from header and route", "[middleware][rate_limit]") {
  auto cfg = base_config();
  cfg.key = {{mw::rate_key_part::source::header, "X-Tenant"}, {mw::rate_key_part::source::route, ""}};
  mw::local_counter_store store;
  auto p = rproxy::make_pipeline<fake_protocol>(limiter{&cfg, &store, nullptr});
  auto hello = [&](const char* tenant, std::string_view route, const char* ip) {
    auto ctx = p.make_context();
    ctx.client = {asio::ip::make_address(ip), 1};
    ctx.route = route;
    fake_request r;
    r.headers["X-Tenant"] = tenant;
    return p.hello(ctx, r).is_next();
  };
  CHECK(hello("acme", "api", "192.0.2.1"));
  CHECK(hello("acme", "api", "192.0.2.2"));  // IP is not part of this key
  CHECK_FALSE(hello("acme", "api", "192.0.2.3"));
  CHECK(hello("acme", "web", "192.0.2.1"));
  CHECK(hello("globex", "api", "192.0.2.1"));
  // parts are length-prefixed: "a|b" + "c" cannot collide with "a" + "b|c"
  auto k1 = mw::rate_key<rproxy::basic_context<rproxy::flow_info>, fake_request>(cfg, {}, "op", "t", nullptr);
  CHECK(k1.find("2:op") == 0);
}

TEST_CASE("rate_limit stage: anonymous identity keys fall back to the client IP", "[middleware][rate_limit]") {
  auto cfg = base_config();
  cfg.key = {{mw::rate_key_part::source::identity, ""}};
  mw::local_counter_store store;
  auto p = rproxy::make_pipeline<fake_protocol>(limiter{&cfg, &store, nullptr});
  auto hello = [&](std::string identity, const char* ip) {
    auto ctx = p.make_context();
    ctx.client = {asio::ip::make_address(ip), 1};
    ctx.identity = std::move(identity);
    return p.hello(ctx, fake_request{}).is_next();
  };
  CHECK(hello("alice", "192.0.2.1"));
  CHECK(hello("alice", "192.0.2.2"));
  CHECK_FALSE(hello("alice", "192.0.2.3"));  // alice's bucket, wherever she connects from
  CHECK(hello("", "192.0.2.1"));
  CHECK(hello("", "192.0.2.1"));
  CHECK_FALSE(hello("", "192.0.2.1"));
  CHECK(hello("", "192.0.2.2"));  // another anonymous client: its own bucket
}

namespace {
// A store that must be awaited, as a Redis store will be: answers after a post().
struct async_store {
  mw::local_counter_store inner;
  int calls = 0;
  asio::awaitable<mw::rate_decision> async_acquire(std::string_view key, const mw::rate_policy& p,
                                                   mw::rate_clock::time_point now) {
    std::string k(key);  // copy before suspending
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    ++calls;
    co_return inner.acquire(k, p, now);
  }
};
}  // namespace

TEST_CASE("rate_limit stage over an asynchronous store", "[middleware][rate_limit]") {
  STATIC_REQUIRE(mw::async_counter_store<async_store>);
  STATIC_REQUIRE_FALSE(mw::counter_store<async_store>);
  auto cfg = base_config();
  async_store store;
  auto p = rproxy::make_pipeline<fake_protocol>(mw::basic_rate_limit<async_store, void, fake_clock>{&cfg, &store, nullptr});
  STATIC_REQUIRE(decltype(p)::is_async(rproxy::phase::hello));
  asio::io_context io;
  std::vector<rproxy::verdict> got;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 3; ++i) {
          auto ctx = p.make_context();
          ctx.client = {asio::ip::make_address("192.0.2.9"), 1};
          fake_request req;  // a named message: g++ 12 mishandles temporaries inside co_await
          got.push_back(co_await p.hello(ctx, req));
        }
      },
      asio::detached);
  io.run();
  REQUIRE(got.size() == 3);
  CHECK(got[0].is_next());
  CHECK(got[1].is_next());
  CHECK(got[2].is_reject());
  CHECK(got[2].reason().retry_after_s > 0);
  CHECK(store.calls == 3);
}

TEST_CASE("rate_limit stage: a repeat offender is blocked and logged once per flow", "[middleware][rate_limit]") {
  auto cfg = base_config();
  cfg.penalty = {2, 5min, 1h, 1h};
  mw::local_counter_store store;
  lines sink;
  auto log = mw::audit_log::to(sink);
  auto p = rproxy::make_pipeline<fake_protocol>(limiter{&cfg, &store, &log});
  auto ctx = p.make_context();
  ctx.client = {asio::ip::make_address("192.0.2.50"), 1};
  for (int i = 0; i < 3; ++i) CHECK(p.message(ctx, fake_request{}).is_next());
  CHECK(p.message(ctx, fake_request{}).is_reject());
  auto v = p.message(ctx, fake_request{});
  REQUIRE(v.is_reject());
  CHECK(v.reason().retry_after_s == 300);
  CHECK(sink.out.size() == 1);  // the same flow is not logged twice
  CHECK(ctx.rejected.has_value());
}

namespace {
/// A wrapper that keeps no state (as ws-server's): its flows render no rate-limit headers.
struct stateless_limiter {
  limiter inner;
  template <class Ctx, class Msg>
  rproxy::verdict on_message(Ctx& ctx, const Msg& m) {
    return inner.count_message(ctx, m);
  }
  template <class Ctx>
  rproxy::verdict on_accept(Ctx& ctx) {
    return inner.count_accept(ctx);
  }
};
}  // namespace

TEST_CASE("rate_limit stage: count_message and count_accept decide without a state slot", "[middleware][rate_limit]") {
  auto cfg = base_config();
  cfg.accept_operation = "request";
  mw::local_counter_store store;
  lines sink;
  auto log = mw::audit_log::to(sink);
  auto p = rproxy::make_pipeline<fake_protocol>(stateless_limiter{{&cfg, &store, &log}});
  auto ctx = p.make_context();
  STATIC_REQUIRE(sizeof(ctx) == sizeof(rproxy::basic_context<rproxy::flow_info>));  // no slot for the limiter
  ctx.client = {asio::ip::make_address("198.51.100.9"), 5000};
  fake_request msg;
  msg.op = "message";
  for (int i = 0; i < 3; ++i) CHECK(p.message(ctx, msg).is_next());  // 3 per 10 s
  auto v = p.message(ctx, msg);
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::rate_limited);
  CHECK(v.reason().retry_after_s > 0);
  REQUIRE(sink.out.size() == 1);
  CHECK(sink.out[0].find("code=rate_limited") != std::string::npos);
  // The accept limit: 2 per minute for this client.
  CHECK(p.accept(ctx).is_next());
  CHECK(p.accept(ctx).is_next());
  CHECK(p.accept(ctx).is_reject());
}
