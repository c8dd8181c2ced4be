// rproxy/middleware/ip_filter.hpp: allow/deny lists of CIDR blocks (IPv4 and IPv6), checked on
// each new connection. The most specific block that contains the client decides (longest prefix
// match); the same block in both lists denies; no match applies the default action.
//
//     rproxy::middleware::ip_filter_config cfg;
//     cfg.deny = {"0.0.0.0/0", "::/0"};               // default-deny, then open up:
//     cfg.allow = {"10.0.0.0/8", "2001:db8::/32"};
//     cfg.deny.push_back("10.6.6.0/24");             // more specific: wins inside 10/8
//     auto rules = rproxy::middleware::ip_rules::build(cfg);   // result<ip_rules>: bad CIDRs fail here
//     auto p = rproxy::make_pipeline(rproxy::middleware::ip_filter{&*rules, &audit}, ...);
//
// Decision logic without a pipeline: rules->allows(address).
#pragma once

#include <asio/ip/address.hpp>

#include <string>
#include <vector>

#include <rproxy/core/result.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/ip.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct ip_filter_config {
  std::vector<std::string> allow;  ///< CIDRs or single addresses
  std::vector<std::string> deny;
  bool default_allow = true;       ///< when no block matches
  std::string reject_message = "forbidden";
};

/// The compiled lists (immutable once built; share one per config snapshot).
class ip_rules {
public:
  /// Parses the lists; the first bad entry fails with error::bad_cidr, naming it in `bad_entry`.
  static rproxy::result<ip_rules> build(const ip_filter_config& cfg, std::string* bad_entry = nullptr) {
    ip_rules r;
    r.default_allow_ = cfg.default_allow;
    for (const auto* list : {&cfg.allow, &cfg.deny}) {
      const bool allow = list == &cfg.allow;
      for (const auto& s : *list) {
        auto c = cidr::parse(s);
        if (!c) {
          if (bad_entry) *bad_entry = s;
          return rproxy::failure(c.error());
        }
        r.table_.insert(*c, allow);  // denies come second: they replace an identical allow
      }
    }
    return r;
  }

  bool allows(const ip_key& k) const noexcept {
    const bool* v = table_.longest_match(k);
    return v ? *v : default_allow_;
  }
  bool allows(const asio::ip::address& a) const noexcept { return allows(to_ip_key(a)); }
  std::size_t size() const noexcept { return table_.size(); }

private:
  cidr_table<bool> table_;  // true: allow
  bool default_allow_ = true;
};

/// The stage: rejects with reject_code::forbidden on accept.
struct ip_filter {
  const ip_rules* rules = nullptr;
  audit_log* audit = nullptr;
  const ip_filter_config* cfg = nullptr;  ///< optional: for the reject message

  template <class Ctx>
  rproxy::verdict on_accept(Ctx& ctx) {
    if (rules->allows(ctx.client.address())) return rproxy::next;
    return reject_and_audit(ctx, audit, {reject_code::forbidden, cfg ? std::string_view(cfg->reject_message) : "forbidden"},
                            "ip_filter", "address not allowed");
  }
};

}  // namespace rproxy::middleware
