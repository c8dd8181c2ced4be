// rproxy/cluster/shares.hpp: what one worker's flows use of a cluster::instance
// (cluster/instance.hpp): its connection slots, its rate-limit counters, the bans made on any
// instance and the roster a new ban ends flows from, each through the middleware's own types.
// An app hands these to its stages; the unit that compiles its flows then includes this file
// (interfaces only), not the instance with Redis' client, and does not compile the stores' code.
//
//     const auto sh = instance.shares_of(worker);                 // where the instance is made
//     mw::shared_conn_limit{&conn_cfg, sh.conns, audit};          // in the flows' pipeline
//     mw::basic_rate_limit<mw::shared_counter_store>{&rl_cfg, sh.limits, audit};
//     mw::ban_check{&file_list, audit, &ban_cfg, sh.bans};
//     mw::ban_kick{sh.kicks, &file_list, sh.bans, &ban_cfg, audit};
#pragma once

#include <rproxy/middleware/ban.hpp>
#include <rproxy/middleware/ban_kick.hpp>
#include <rproxy/middleware/conn_limit.hpp>
#include <rproxy/middleware/rate_limit_store.hpp>

namespace rproxy::cluster {

struct shares {
  middleware::shared_conn_slots* conns = nullptr;      ///< this worker's connection slots
  middleware::shared_counter_store* limits = nullptr;  ///< this worker's rate-limit counters (null: the instance has none)
  const middleware::ban_list* bans = nullptr;          ///< bans made on any instance
  middleware::ban_roster* kicks = nullptr;             ///< open flows, ended by a new ban
};

}  // namespace rproxy::cluster
