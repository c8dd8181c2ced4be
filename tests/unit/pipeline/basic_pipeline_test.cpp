#include <rproxy/pipeline/basic_pipeline.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

namespace {

using trace_t = std::vector<std::string>;

// A stage that records each hook it sees, and can be told to stop a phase.
template <int N>
struct recorder {
  trace_t* trace;
  rproxy::verdict on_accept_verdict = rproxy::next;

  struct state {
    int accepts = 0;
  };

  template <class Ctx>
  rproxy::verdict on_accept(Ctx& ctx) {
    ctx.template state<recorder>().accepts++;
    trace->push_back("accept" + std::to_string(N));
    return on_accept_verdict;
  }
  template <class Ctx>
  rproxy::verdict on_response(Ctx&, const std::span<const std::byte>&) {
    trace->push_back("response" + std::to_string(N));
    return rproxy::next;
  }
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {
    trace->push_back("close" + std::to_string(N));
  }
};

// Only a route hook, no state.
struct router {
  trace_t* trace;
  template <class Ctx>
  rproxy::verdict on_route(Ctx& ctx) {
    ctx.route = "main";
    trace->push_back("route");
    return rproxy::next;
  }
};

// An asynchronous route hook (as a Redis lookup would be).
struct async_router {
  trace_t* trace;
  template <class Ctx>
  asio::awaitable<rproxy::verdict> on_route(Ctx&) {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    trace->push_back("async-route");
    co_return rproxy::reject(rproxy::reject_code::rate_limited, "slow down", 7);
  }
};

// A stage whose (large) state is made on demand: only when a hello names a user.
struct namer {
  static constexpr bool state_on_demand = true;
  struct state {
    std::string user;
    char big[256] = {};
  };
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const std::string& name) {
    if (!name.empty()) ctx.template state<namer>().user = name;
    return rproxy::next;
  }
};

struct message_protocol {
  using flow = rproxy::flow_info;
  using hello = std::string;
  using message = int;
  using response = int;
};

struct hello_checker {
  template <class Ctx>
  rproxy::verdict on_hello(Ctx&, const std::string& host) {
    return host == "ok" ? rproxy::next : rproxy::reject(rproxy::reject_code::not_found, "no route");
  }
};

}  // namespace

TEST_CASE("stages run in order and response/close hooks in reverse", "[pipeline]") {
  trace_t t;
  auto p = rproxy::make_pipeline(recorder<1>{&t}, router{&t}, recorder<2>{&t});
  auto ctx = p.make_context();

  STATIC_REQUIRE(std::is_same_v<decltype(p.accept(ctx)), rproxy::verdict>);
  STATIC_REQUIRE_FALSE(p.is_async(rproxy::phase::route));

  REQUIRE(p.accept(ctx).is_next());
  REQUIRE(p.route(ctx).is_next());
  REQUIRE(ctx.route == "main");
  std::span<const std::byte> bytes;
  REQUIRE(p.response(ctx, bytes).is_next());
  p.close(ctx, {});
  REQUIRE(t == trace_t{"accept1", "accept2", "route", "response2", "response1", "close2", "close1"});
  REQUIRE(ctx.state<recorder<1>>().accepts == 1);
  REQUIRE(ctx.state<recorder<2>>().accepts == 1);
}

TEST_CASE("the first verdict that is not next stops the phase", "[pipeline]") {
  trace_t t;
  recorder<1> first{&t, rproxy::reject(rproxy::reject_code::banned, "banned")};
  auto p = rproxy::make_pipeline(first, recorder<2>{&t});
  auto ctx = p.make_context();
  auto v = p.accept(ctx);
  REQUIRE(v.is_reject());
  REQUIRE(v.reason().code == rproxy::reject_code::banned);
  REQUIRE(v.reason().message == "banned");
  REQUIRE(t == trace_t{"accept1"});
  REQUIRE(ctx.state<recorder<2>>().accepts == 0);

  p.close(ctx, {});  // on_close runs for every stage even after a reject
  REQUIRE(t == trace_t{"accept1", "close2", "close1"});
}

TEST_CASE("replied stops quietly", "[pipeline]") {
  trace_t t;
  auto p = rproxy::make_pipeline(recorder<1>{&t, rproxy::replied}, recorder<2>{&t});
  auto ctx = p.make_context();
  REQUIRE(p.accept(ctx).is_replied());
  REQUIRE(t == trace_t{"accept1"});
}

TEST_CASE("a phase with an async hook becomes an awaitable, others stay sync", "[pipeline]") {
  trace_t t;
  auto p = rproxy::make_pipeline(router{&t}, async_router{&t}, recorder<1>{&t});
  STATIC_REQUIRE(decltype(p)::is_async(rproxy::phase::route));
  STATIC_REQUIRE_FALSE(decltype(p)::is_async(rproxy::phase::accept));
  auto ctx = p.make_context();
  STATIC_REQUIRE(std::is_same_v<decltype(p.route(ctx)), asio::awaitable<rproxy::verdict>>);

  asio::io_context io;
  rproxy::verdict v;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> { v = co_await p.route(ctx); }, asio::detached);
  io.run();
  REQUIRE(v.is_reject());
  REQUIRE(v.reason().code == rproxy::reject_code::rate_limited);
  REQUIRE(v.reason().retry_after_s == 7);
  REQUIRE(t == trace_t{"route", "async-route"});
}

namespace {
// An asynchronous hello hook that counts its calls (the call makes the coroutine frame) and
// skips the flows whose identity is "skip".
template <int N>
struct async_hello {
  trace_t* trace;
  int* calls;
  bool refuse = false;
  template <class Ctx>
  bool skip(const Ctx& ctx) const {
    return ctx.identity == "skip";
  }
  template <class Ctx>
  asio::awaitable<rproxy::verdict> on_hello(Ctx& ctx, const std::string& m) {
    ++*calls;
    return run(ctx, m);
  }
  template <class Ctx>
  asio::awaitable<rproxy::verdict> run(Ctx&, std::string m) {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    trace->push_back("async" + std::to_string(N) + ":" + m);
    co_return refuse ? rproxy::reject(rproxy::reject_code::forbidden, "no") : rproxy::verdict(rproxy::next);
  }
};
template <int N>
struct sync_hello {
  trace_t* trace;
  template <class Ctx>
  rproxy::verdict on_hello(Ctx&, const std::string& m) {
    trace->push_back("sync" + std::to_string(N) + ":" + m);
    return rproxy::next;
  }
};
}  // namespace

TEST_CASE("an asynchronous phase: sync and async hooks in order in one coroutine; a stage that skips the flow is not called", "[pipeline]") {
  trace_t t;
  int calls = 0;
  auto p = rproxy::make_pipeline<message_protocol>(sync_hello<1>{&t}, async_hello<2>{&t, &calls}, sync_hello<3>{&t},
                                                   sync_hello<4>{&t}, async_hello<5>{&t, &calls}, sync_hello<6>{&t});
  asio::io_context io;
  auto run = [&](std::string identity, std::string hello) {
    t.clear();
    calls = 0;
    rproxy::verdict v;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      auto ctx = p.make_context();
      ctx.identity = identity;
      v = co_await rproxy::run_phase<rproxy::phase::hello>(p, ctx, hello);
    }, asio::detached);
    io.restart();
    io.run();
    return v;
  };
  SECTION("every hook, in order") {
    REQUIRE(run("", "m").is_next());
    CHECK(t == trace_t{"sync1:m", "async2:m", "sync3:m", "sync4:m", "async5:m", "sync6:m"});
    CHECK(calls == 2);
  }
  SECTION("skipped: the asynchronous hooks are never called, the others run") {
    REQUIRE(run("skip", "m").is_next());
    CHECK(t == trace_t{"sync1:m", "sync3:m", "sync4:m", "sync6:m"});
    CHECK(calls == 0);
  }
  SECTION("an asynchronous refusal stops the phase") {
    p.stage<async_hello<2>>().refuse = true;
    auto v = run("", "m");
    REQUIRE(v.is_reject());
    CHECK(v.reason().message == "no");
    CHECK(t == trace_t{"sync1:m", "async2:m"});
    CHECK(calls == 1);
  }
}

TEST_CASE("protocol message types reach hello hooks", "[pipeline]") {
  auto p = rproxy::make_pipeline<message_protocol>(hello_checker{});
  auto ctx = p.make_context();
  REQUIRE(p.hello(ctx, std::string("ok")).is_next());
  auto v = p.hello(ctx, std::string("nope"));
  REQUIRE(v.is_reject());
  REQUIRE(v.reason().code == rproxy::reject_code::not_found);
}

TEST_CASE("stage concepts describe each hook", "[pipeline]") {
  using ctx_t = rproxy::basic_context<rproxy::flow_info, router>;
  STATIC_REQUIRE(rproxy::route_stage<router, ctx_t>);
  STATIC_REQUIRE_FALSE(rproxy::accept_stage<router, ctx_t>);
  STATIC_REQUIRE(rproxy::route_stage<async_router, ctx_t>);
  STATIC_REQUIRE(rproxy::hello_stage<hello_checker, ctx_t, std::string>);
  STATIC_REQUIRE(rproxy::close_stage<recorder<1>, rproxy::basic_context<rproxy::flow_info, recorder<1>>>);
}

TEST_CASE("a state made on demand: a pointer until the first ctx.state<S>(), then kept; copies copy it", "[pipeline]") {
  using inline_ctx = rproxy::basic_context<rproxy::flow_info, recorder<1>>;
  using demand_ctx = rproxy::basic_context<rproxy::flow_info, namer>;
  STATIC_REQUIRE(rproxy::stage_with_state_on_demand<namer>);
  STATIC_REQUIRE_FALSE(rproxy::stage_with_state_on_demand<recorder<1>>);
  STATIC_REQUIRE(sizeof(demand_ctx) == sizeof(rproxy::flow_info) + sizeof(void*));  // not the 288-byte state
  STATIC_REQUIRE(sizeof(inline_ctx) >= sizeof(rproxy::flow_info) + sizeof(int));

  auto p = rproxy::make_pipeline<message_protocol>(namer{});
  auto ctx = p.make_context();
  REQUIRE(p.hello(ctx, std::string()).is_next());
  CHECK(ctx.find_state<namer>() == nullptr);         // not needed: not made
  CHECK(std::as_const(ctx).state<namer>().user.empty());  // read-only: a default state, still not made
  CHECK(ctx.find_state<namer>() == nullptr);
  REQUIRE(p.hello(ctx, std::string("ann")).is_next());
  const auto* made = ctx.find_state<namer>();
  REQUIRE(made != nullptr);
  CHECK(made->user == "ann");
  CHECK(&ctx.state<namer>() == made);  // kept
  auto copy = ctx;
  REQUIRE(copy.find_state<namer>() != nullptr);
  CHECK(copy.find_state<namer>() != made);
  CHECK(copy.state<namer>().user == "ann");
  auto moved = std::move(copy);
  CHECK(moved.state<namer>().user == "ann");
}
