// rproxy/middleware/ip_filter_block.hpp: the YAML block of the ip_filter stage, declared once;
// an app that lists the stage puts the block in its config struct and gets its keys, errors
// (file:line:col), `init` text and reference docs.
//
//     ip_filter:
//       default_allow: true
//       deny: [ 10.6.6.0/24 ]
//
//     mw::ip_filter_block ip_filter{};             // in the app's config struct
//     auto built = c.ip_filter.build();            // the stage's config and compiled rules
//     mw::ip_filter{&built.rules, &audit, &built.cfg}
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/middleware/ip_filter.hpp>

namespace rproxy::middleware {

struct ip_filter_block {
  bool default_allow = true;
  std::vector<std::string> allow;
  std::vector<std::string> deny;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&ip_filter_block::default_allow>("when no block matches the client"),
                       cfg::doc<&ip_filter_block::allow>("CIDRs let in (the most specific block decides)"),
                       cfg::doc<&ip_filter_block::deny>("CIDRs refused with 403"));
  }
  void validate(rproxy::config::validator& v) const {
    for (const auto* list : {&allow, &deny})
      for (std::size_t i = 0; i < list->size(); ++i)
        if (!cidr::parse((*list)[i]))
          v.at(list == &allow ? &ip_filter_block::allow : &ip_filter_block::deny).at(i).error("not a CIDR: '" + (*list)[i] + "'");
  }

  /// What the stage points at: its config and the compiled lists (keep it where it stays).
  struct built {
    ip_filter_config cfg;
    ip_rules rules;
  };
  built build() const {
    built b;
    b.cfg.default_allow = default_allow;
    b.cfg.allow = allow;
    b.cfg.deny = deny;
    b.rules = std::move(*ip_rules::build(b.cfg));  // validated with the config
    return b;
  }
};

}  // namespace rproxy::middleware
