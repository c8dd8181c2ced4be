// Builds against the installed rproxy: a one-stage pipeline that rejects every flow.
#include <rproxy/rproxy.hpp>

#include <cstdio>

struct deny_all {
  template <class Ctx>
  rproxy::verdict on_accept(Ctx&) { return rproxy::reject(rproxy::reject_code::forbidden, "closed"); }
};

int main() {
  auto p = rproxy::make_pipeline(deny_all{});
  auto ctx = p.make_context();
  auto v = p.accept(ctx);
  std::printf("consumer: %s\n", v.is_reject() ? "rejected" : "accepted");
  return v.is_reject() ? 0 : 1;
}
