// rproxy/pipeline/context.hpp: flow_info::rejected, an optional reject_reason kept out of line.
#include <rproxy/pipeline/context.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <stdexcept>
#include <utility>

using rproxy::reject_code;
using rproxy::reject_reason;
using rproxy::rejection;

TEST_CASE("rejection: a pointer's size, set and read as the std::optional it replaces", "[pipeline]") {
  STATIC_REQUIRE(sizeof(rejection) == sizeof(void*));
  rproxy::flow_info f;
  CHECK_FALSE(f.rejected);
  CHECK_FALSE(f.rejected.has_value());
  CHECK(f.rejected == std::nullopt);
  CHECK_THROWS_AS(f.rejected.value(), std::bad_optional_access);

  const reject_reason slow{reject_code::rate_limited, "slow down", 30};
  f.rejected = slow;
  REQUIRE(f.rejected);
  CHECK(f.rejected->code == reject_code::rate_limited);
  CHECK((*f.rejected).message == "slow down");
  CHECK(f.rejected.value().retry_after_s == 30);
  CHECK(f.rejected == slow);
  CHECK_FALSE(f.rejected == reject_reason{reject_code::forbidden, "no"});

  f.rejected = reject_reason{reject_code::forbidden, "no"};  // replaces the reason in place
  CHECK(f.rejected->code == reject_code::forbidden);
  f.rejected.reset();
  CHECK_FALSE(f.rejected);
}

TEST_CASE("rejection: from and to std::optional; copies are deep, moves take it", "[pipeline]") {
  rejection r;
  std::optional<reject_reason> none, some = reject_reason{reject_code::unauthorized, "token"};
  std::optional<reject_reason> chained;
  r = chained = some;  // as in `ctx.rejected = refused = v.reason()`
  REQUIRE(r);
  CHECK(r->code == reject_code::unauthorized);
  CHECK(r.get() == some);
  r = none;
  CHECK_FALSE(r);
  CHECK(r.get() == std::nullopt);

  r = *some;
  rejection copy = r;
  REQUIRE(copy);
  CHECK(&*copy != &*r);
  CHECK(copy == r);
  copy->message = "changed";
  CHECK(r->message == "token");
  CHECK_FALSE(copy == r);
  rejection moved = std::move(copy);
  CHECK(moved->message == "changed");
  copy = r;  // (a moved-from rejection is empty and assignable)
  CHECK(copy == r);
  r = std::nullopt;
  CHECK(r == rejection{});
}
