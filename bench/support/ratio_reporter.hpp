// bench/support/ratio_reporter.hpp: a Google Benchmark reporter that prints the usual table and
// then, for every run, its time as a ratio of a baseline measured in the same run (same
// arguments, same thread count), so results read the same on any machine.
//
//     rproxy_bench::ratio_reporter rep([](std::string_view name) { return "mt19937_pick"; });
//     benchmark::RunSpecifiedBenchmarks(&rep);
//
// baseline_of(family) names the baseline family of a benchmark family (the run name up to the
// first '/'); an empty name, or the family itself, means none. The baseline run of
// "random/30/real_time/threads:2" is then "mt19937_pick/30/real_time/threads:2".
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rproxy_bench {

class ratio_reporter : public benchmark::ConsoleReporter {
public:
  using baseline_fn = std::function<std::string(std::string_view family)>;

  // Plain text (no colour codes): the report is read in logs.
  explicit ratio_reporter(baseline_fn baseline_of)
      : ConsoleReporter(OO_Tabular), baseline_of_(std::move(baseline_of)) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.error_occurred || r.run_type != Run::RT_Iteration) continue;
      const std::string name = r.benchmark_name();
      // Real time for the runs that asked for it (threads sharing state), else CPU time: on a
      // shared machine the wall clock of a single-threaded loop measures the neighbours.
      const double t = r.run_name.time_type.empty() ? r.GetAdjustedCPUTime() : r.GetAdjustedRealTime();
      seconds_[name] = t / benchmark::GetTimeUnitMultiplier(r.time_unit);
      order_.push_back(name);
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    auto& os = GetOutputStream();
    os << "\nratio to the baseline of the same run (CPU time per operation, real time for real_time runs;"
          " lower is faster):\n";
    for (const auto& name : order_) {
      const auto slash = name.find('/');
      const std::string family = name.substr(0, slash);
      const std::string base_family = baseline_of_(family);
      if (base_family.empty() || base_family == family) continue;
      const std::string base = base_family + (slash == std::string::npos ? "" : name.substr(slash));
      const auto it = seconds_.find(base);
      char line[256];
      if (it == seconds_.end() || it->second <= 0) {
        std::snprintf(line, sizeof line, "  %-52s (no baseline %s in this run)\n", name.c_str(), base.c_str());
      } else {
        std::snprintf(line, sizeof line, "  %-52s %8.2fx  %s\n", name.c_str(), seconds_.at(name) / it->second,
                      base.c_str());
      }
      os << line;
    }
  }

private:
  baseline_fn baseline_of_;
  std::map<std::string, double> seconds_;
  std::vector<std::string> order_;
};

}  // namespace rproxy_bench
