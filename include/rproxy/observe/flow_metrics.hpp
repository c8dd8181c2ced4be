// rproxy/observe/flow_metrics.hpp: a pipeline stage that counts flows per route: started,
// active, finished by outcome, rejected by reason, bytes each way, and duration.
//
//     auto fam = rproxy::observe::flow_metrics::families::add_to(registry);   // once, at startup
//     auto p = rproxy::make_pipeline(rproxy::observe::flow_metrics{fam, "lobby"}, ...);
//
// Label values are bound when the stage is made (control path); the hooks only touch
// per-worker counters. Put it first in the pipeline so its on_close runs last and sees the
// whole flow (rejections, bytes, backend).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include <rproxy/core/error.hpp>
#include <rproxy/observe/metrics.hpp>
#include <rproxy/observe/registry.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::observe {

class flow_metrics {
public:
  /// The metric families, registered once per registry.
  struct families {
    counter_family* flows = nullptr;
    gauge_family* active = nullptr;
    counter_family* outcomes = nullptr;
    counter_family* rejects = nullptr;
    counter_family* bytes = nullptr;
    histogram_family* duration = nullptr;

    static families add_to(registry& reg, const std::string& prefix = "rproxy") {
      families f;
      f.flows = &reg.add_counter_family(prefix + "_flows", "Flows accepted.", {"route"});
      f.active = &reg.add_gauge_family(prefix + "_flows_in_progress", "Flows in progress.", {"route"});
      f.outcomes = &reg.add_counter_family(prefix + "_flows_closed",
                                           "Flows ended, by outcome: ok, rejected, downstream, upstream, internal.",
                                           {"route", "outcome"});
      f.rejects = &reg.add_counter_family(prefix + "_rejects", "Flows rejected by a stage, by reason.", {"route", "reason"});
      f.bytes = &reg.add_counter_family(prefix + "_bytes", "Bytes relayed, by direction.", {"route", "direction"});
      f.duration = &reg.add_histogram_family(prefix + "_flow_duration_seconds", "Flow duration.", {"route"},
                                             exponential_buckets(0.001, 4, 10));
      return f;
    }
  };

  flow_metrics(const families& f, std::string_view route)
      : flows_(&f.flows->with({route})),
        active_(&f.active->with({route})),
        ok_(&f.outcomes->with({route, "ok"})),
        rejected_(&f.outcomes->with({route, "rejected"})),
        downstream_(&f.outcomes->with({route, "downstream"})),
        upstream_(&f.outcomes->with({route, "upstream"})),
        internal_(&f.outcomes->with({route, "internal"})),
        in_(&f.bytes->with({route, "from_client"})),
        out_(&f.bytes->with({route, "to_client"})),
        duration_(&f.duration->with({route})),
        rejects_(f.rejects),
        route_(route) {}

  template <class Ctx>
  rproxy::verdict on_accept(Ctx&) {
    flows_->inc();
    active_->inc();
    return rproxy::next;
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code ec) {
    active_->dec();
    in_->inc(ctx.bytes_from_client);
    out_->inc(ctx.bytes_to_client);
    if (ctx.started != std::chrono::steady_clock::time_point{})
      duration_->observe(std::chrono::steady_clock::now() - ctx.started);
    if (ctx.rejected) {
      rejected_->inc();
      // one series per (route, reason): bound on first use (the reason set is closed)
      rejects_->with({route_, to_string(ctx.rejected->code)}).inc();
    } else if (!ec) {
      ok_->inc();
    } else if (ec == rproxy::condition::upstream) {
      upstream_->inc();
    } else if (ec == rproxy::condition::internal) {
      internal_->inc();
    } else {
      downstream_->inc();  // client errors, and errors from outside rproxy's categories
    }
  }

private:
  counter* flows_;
  gauge* active_;
  counter* ok_;
  counter* rejected_;
  counter* downstream_;
  counter* upstream_;
  counter* internal_;
  counter* in_;
  counter* out_;
  histogram* duration_;
  counter_family* rejects_;
  std::string route_;
};

}  // namespace rproxy::observe
