#include <rproxy/core/error.hpp>
#include <rproxy/core/result.hpp>

#include <catch2/catch.hpp>

namespace {
enum class demo_error { refused = 1, bad_input, oom };

class demo_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "demo"; }
  std::string message(int) const override { return "demo"; }
  rproxy::condition source(int c) const noexcept override {
    switch (static_cast<demo_error>(c)) {
      case demo_error::refused: return rproxy::condition::upstream;
      case demo_error::bad_input: return rproxy::condition::downstream;
      default: return rproxy::condition::internal;
    }
  }
  bool retry_safe(int c) const noexcept override { return c == 1; }
};
const demo_category demo_cat;
std::error_code make(demo_error e) { return {static_cast<int>(e), demo_cat}; }
}  // namespace

TEST_CASE("area error codes compare to project-wide conditions", "[core]") {
  auto refused = make(demo_error::refused);
  REQUIRE(refused == rproxy::condition::upstream);
  REQUIRE(refused == rproxy::condition::retry_safe);
  REQUIRE(refused != rproxy::condition::downstream);
  REQUIRE(make(demo_error::bad_input) == rproxy::condition::downstream);
  REQUIRE(make(demo_error::bad_input) != rproxy::condition::retry_safe);
  REQUIRE(make(demo_error::oom) == rproxy::condition::internal);
  // errors from outside rproxy match no rproxy condition
  REQUIRE(std::make_error_code(std::errc::connection_refused) != rproxy::condition::upstream);
}

TEST_CASE("result holds a value or an error", "[core]") {
  rproxy::result<int> ok = 42;
  REQUIRE(ok);
  REQUIRE(*ok == 42);
  rproxy::result<int> bad = rproxy::failure(std::make_error_code(std::errc::invalid_argument));
  REQUIRE_FALSE(bad);
  REQUIRE(bad.error() == std::errc::invalid_argument);
  REQUIRE(bad.value_or(7) == 7);

  rproxy::result<void> done;
  REQUIRE(done);
  rproxy::result<void, std::string> failed = rproxy::failure(std::string("nope"));
  REQUIRE_FALSE(failed);
  REQUIRE(failed.error() == "nope");
}
