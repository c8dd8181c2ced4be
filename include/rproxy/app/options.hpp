// rproxy/app/options.hpp: what an app says about itself (app_info) and what its command line
// asked for (options): app/cli.hpp fills them from argv, app::runtime runs with them. Apart
// from CLI11, so that an app's units other than main do not compile the command-line parser.
#pragma once

#include <chrono>
#include <string>
#include <thread>

#include <rproxy/observe/log.hpp>

namespace rproxy::app {

enum class command { run, validate, init };
using observe::log_format;

/// What an app says about itself on the command line.
struct app_info {
  std::string name;            ///< program name, e.g. "mc-proxy"
  std::string version;         ///< printed by --version
  std::string default_config;  ///< used by `run` when --config is not given
  std::string description{};
};

struct options {
  command cmd = command::run;
  std::string config_path;
  unsigned workers = 0;  ///< 0: one per core
  log_format format = log_format::text;
  observe::log_level log_level = observe::log_level::info;
  bool config_given = false;  ///< --config was on the command line (else the default path)
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(10)};

  unsigned worker_count() const {
    unsigned n = workers ? workers : std::thread::hardware_concurrency();
    return n ? n : 1;
  }
};

}  // namespace rproxy::app
