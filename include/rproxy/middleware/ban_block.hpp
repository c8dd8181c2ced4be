// rproxy/middleware/ban_block.hpp: the YAML block of the ban_check stage, declared once.
//
//     bans: { file: bans.txt }
//
//     mw::ban_block bans{};                         // in the app's config struct
//     c.bans.load(list, log_error)                  // at start and on reload
#pragma once

#include <cstddef>
#include <string>
#include <system_error>

#include <rproxy/config/field.hpp>
#include <rproxy/middleware/ban.hpp>

namespace rproxy::middleware {

struct ban_block {
  std::string file;
  std::string message = "banned";

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&ban_block::file>("ban file (docs/security.md), re-read on reload; empty: none"),
                       cfg::doc<&ban_block::message>("what a banned client is told"));
  }
  ban_check_config config() const { return {.reject_message = message}; }

  /// Re-reads the file into `list`; a bad file keeps the old contents and calls
  /// fail(what, error, line). True when nothing failed.
  template <class Fail>
  bool load(ban_list& list, Fail&& fail) const {
    if (file.empty()) return true;
    std::size_t line = 0;
    if (auto r = list.load(file, &line); !r) return fail(file, r.error(), line), false;
    return true;
  }
};

}  // namespace rproxy::middleware
