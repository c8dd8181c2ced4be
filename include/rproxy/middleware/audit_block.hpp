// rproxy/middleware/audit_block.hpp: the YAML block of the security audit log, declared once,
// and the sink it names: a file of its own, or the main log.
//
//     audit: { file: audit.log, per_second: 20, burst: 100 }
//
//     mw::audit_block audit{};                      // in the app's config struct
//     mw::audit_file sink(&log, c.audit.file);      // check sink.ok()
//     auto audit = c.audit.make(sink);              // the audit_log the stages point at
#pragma once

#include <cstdint>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>

#include <rproxy/config/field.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/observe/log.hpp>

namespace rproxy::middleware {

/// Where audit lines go: a file of their own (appended), or the main log. Called from any worker.
class audit_file {
public:
  audit_file(const observe::logger* log, const std::string& file) : log_(log) {
    if (!file.empty()) file_.open(file, std::ios::app);
  }
  bool ok() const { return !file_.is_open() || file_.good(); }
  void operator()(const audit_record&, std::string_view line) {
    if (!file_.is_open()) return log_->warn(line);
    std::lock_guard lock(mu_);
    file_ << line << '\n' << std::flush;
  }

private:
  const observe::logger* log_;
  std::mutex mu_;
  std::ofstream file_;
};

struct audit_block {
  std::string file;
  double per_second = 20;
  std::uint32_t burst = 100;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&audit_block::file>("append audit lines here; empty: the main log"),
                       cfg::doc<&audit_block::per_second>("audit lines per second (more are counted, not written)"),
                       cfg::doc<&audit_block::burst>("audit lines at once"));
  }
  /// The audit log writing to `sink` (which must outlive it) at this block's rate.
  template <class Sink>
  audit_log make(Sink& sink) const {
    return audit_log::to(sink, {.per_second = per_second, .burst = burst});
  }
};

}  // namespace rproxy::middleware
