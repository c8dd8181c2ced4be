// Compiled by expect_diagnostic.cmake with -DCASE_<name>: each case is a stage that breaks its
// contract, and must fail with make_pipeline's static_assert naming the stage and the rule.
#include <rproxy/pipeline/basic_pipeline.hpp>

struct good_stage {
  template <class Ctx>
  rproxy::verdict on_accept(Ctx&) { return rproxy::next; }
};

#if defined(CASE_bad_return)
struct deny_at_night {  // on_route returns bool instead of a verdict
  template <class Ctx>
  bool on_route(Ctx&) { return true; }
};
#elif defined(CASE_no_hook)
struct deny_at_night {  // misspelt hook: implements nothing the pipeline knows
  template <class Ctx>
  rproxy::verdict on_acept(Ctx&) { return rproxy::next; }
};
#elif defined(CASE_virtual_stage)
struct deny_at_night {  // stages are values, not interfaces
  virtual ~deny_at_night() = default;
  template <class Ctx>
  rproxy::verdict on_accept(Ctx&) { return rproxy::next; }
};
#endif

int main() {
  auto p = rproxy::make_pipeline(good_stage{}, deny_at_night{});
  (void)p;
}
