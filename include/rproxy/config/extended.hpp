// rproxy/config/extended.hpp: an app's config plus blocks of a user's own, as one config: the
// extra blocks are top-level keys of the same file, decoded, validated, documented and printed
// by `init` like the app's own.
//
//     struct hours_block {                          // the user's block(s)
//       business_hours::config business_hours{};
//       static constexpr auto describe() {
//         return rproxy::config::fields(rproxy::config::doc<&hours_block::business_hours>("opening hours"));
//       }
//     };
//     using my_config = rproxy::config::extended<mc_proxy::config, hours_block>;
//     // my_config has every mc-proxy field and `business_hours`; it converts to mc_proxy::config
//
// The app's own loader (a static load_as<Self>(path), e.g. one that also reads a directory of
// per-item files) is used when it has one; both validate() are run.
#pragma once

#include <filesystem>
#include <tuple>

#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::config {

template <class Base, class Extra>
struct extended : Base, Extra {
  static constexpr auto describe() { return std::tuple_cat(Base::describe(), Extra::describe()); }

  void validate(validator& v) const {
    if constexpr (requires(const Base& b) { b.validate(v); }) Base::validate(v);
    if constexpr (requires(const Extra& e) { e.validate(v); }) Extra::validate(v);
  }

  /// The app's own loader, reading into the extended config.
  static result<extended, diagnostics> load(const std::filesystem::path& p)
    requires requires { Base::template load_as<extended>(p); }
  {
    return Base::template load_as<extended>(p);
  }
};

}  // namespace rproxy::config
