#include <rproxy/pipeline/gated.hpp>

#include <rproxy/pipeline/basic_pipeline.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace {

using trace_t = std::vector<std::string>;

struct proto {
  using flow = rproxy::flow_info;
  using hello = std::string;
  using message = std::string;
  using response = std::string;
};

// Picks the route from the hello (the request's "path").
struct router {
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const std::string& h) {
    ctx.route = h == "/a" ? "a" : "b";
    return rproxy::next;
  }
};

// Records its hooks and counts in its state; refuses "/a" hellos that carry "deny" in identity.
struct guard {
  trace_t* trace;
  struct state {
    int accepts = 0;
    int hellos = 0;
  };
  template <class Ctx>
  rproxy::verdict on_accept(Ctx& ctx) {
    ++ctx.template state<guard>().accepts;
    trace->push_back("accept");
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_hello(Ctx& ctx, const std::string&) {
    ++ctx.template state<guard>().hellos;
    trace->push_back("hello");
    if (ctx.identity == "deny") return rproxy::reject(rproxy::reject_code::forbidden, "no");
    return rproxy::next;
  }
  template <class Ctx>
  rproxy::verdict on_message(Ctx&, const std::string& m) {
    trace->push_back("message " + m);
    return rproxy::next;
  }
  template <class Ctx>
  void on_close(Ctx&, std::error_code) {
    trace->push_back("close");
  }
};

// The same with an asynchronous hello hook.
struct async_guard {
  trace_t* trace;
  template <class Ctx>
  asio::awaitable<rproxy::verdict> on_hello(Ctx&, const std::string&) {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    trace->push_back("async hello");
    co_return rproxy::reject(rproxy::reject_code::unauthorized, "async no");
  }
};

struct on_route_a {
  bool operator()(const rproxy::flow_info& f) const { return f.route == "a"; }
};

}  // namespace

TEST_CASE("gated: a stage runs only on the flows its predicate picks, accept deferred to hello", "[pipeline]") {
  trace_t t;
  auto p = rproxy::make_pipeline<proto>(router{}, rproxy::gated{guard{&t}, on_route_a{}});
  STATIC_REQUIRE(!decltype(p)::is_async(rproxy::phase::hello));

  SECTION("route a: accept then hello run at on_hello, with the stage's own state") {
    auto ctx = p.make_context();
    REQUIRE(p.accept(ctx).is_next());
    CHECK(t.empty());  // the route is not known yet
    REQUIRE(p.hello(ctx, std::string("/a")).is_next());
    REQUIRE(p.message(ctx, std::string("x")).is_next());
    p.close(ctx, {});
    CHECK(t == trace_t{"accept", "hello", "message x", "close"});
    CHECK(ctx.state<guard>().accepts == 1);
    CHECK(ctx.state<guard>().hellos == 1);
  }
  SECTION("route b: nothing runs but on_close") {
    auto ctx = p.make_context();
    REQUIRE(p.hello(ctx, std::string("/b")).is_next());
    REQUIRE(p.message(ctx, std::string("x")).is_next());
    p.close(ctx, {});
    CHECK(t == trace_t{"close"});
    CHECK(ctx.state<guard>().hellos == 0);
  }
  SECTION("a refusal of the gated stage stops the phase") {
    auto ctx = p.make_context();
    ctx.identity = "deny";
    auto v = p.hello(ctx, std::string("/a"));
    REQUIRE(v.is_reject());
    CHECK(v.reason().message == "no");
    ctx.identity = "deny";
    auto ctx2 = p.make_context();
    ctx2.identity = "deny";
    CHECK(p.hello(ctx2, std::string("/b")).is_next());
  }
}

TEST_CASE("gated: an asynchronous hook stays asynchronous and is skipped off its routes", "[pipeline]") {
  trace_t t;
  auto p = rproxy::make_pipeline<proto>(router{}, rproxy::gated{async_guard{&t}, on_route_a{}});
  STATIC_REQUIRE(decltype(p)::is_async(rproxy::phase::hello));
  asio::io_context io;
  std::vector<rproxy::verdict> got;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    for (std::string path : {"/a", "/b"}) {
      auto ctx = p.make_context();
      got.push_back(co_await p.hello(ctx, path));
    }
  }, asio::detached);
  io.run();
  REQUIRE(got.size() == 2);
  CHECK(got[0].is_reject());
  CHECK(got[0].reason().code == rproxy::reject_code::unauthorized);
  CHECK(got[1].is_next());
  CHECK(t == trace_t{"async hello"});
}
