// Compiled by expect_config_diagnostic.cmake with -DCASE_<name>: each case is a config struct
// whose describe() is wrong, and must fail with one static_assert of config/field.hpp.
#include <rproxy/config/field.hpp>

struct other_config {
  int port = 0;
};

struct opening_hours {
  int open_hour = 8;
  int close_hour = 20;
  static constexpr auto describe() {
    using namespace rproxy::config;
#if defined(CASE_listed_twice)
    return fields(doc<&opening_hours::open_hour>("first"), doc<&opening_hours::open_hour>("again"));
#elif defined(CASE_other_struct)
    return fields(doc<&opening_hours::open_hour>("first"), doc<&other_config::port>("not ours"));
#endif
  }
};

int main() { return static_cast<int>(rproxy::config::field_metas<opening_hours>().size()); }
