// rproxy/app/cli.hpp: the command line every rproxy app shares (CLI11), parsed into app::options
// (app/options.hpp, which units other than main include instead: CLI11 is a heavy header).
//
//   APP [run] [--config FILE]      serve (the default command)
//   APP validate FILE              exit 0, or 1 after printing file:line:col errors
//   APP init                       print a commented starter config
//   APP --version
// Options for every command: --workers N, --log-format text|json, --log-level LEVEL,
// --drain-timeout SECONDS.
//
//     auto parsed = rproxy::app::parse_cli(argc, argv, {"mc-proxy", "0.1.0", "mc-proxy.yaml"});
//     if (!parsed) return parsed.error();   // --help, --version or a usage error: exit code
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <string>

#include <rproxy/app/options.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/observe/log.hpp>

namespace rproxy::app {

/// Parses argv. On --help, --version or a usage error, prints what CLI11 prints and returns
/// the process exit code as the error.
inline result<options, int> parse_cli(int argc, const char* const* argv, const app_info& info) {
  CLI::App cli{info.description.empty() ? info.name : info.description, info.name};
  cli.set_version_flag("--version", info.name + " " + info.version);
  cli.require_subcommand(0, 1);

  options o;
  o.config_path = info.default_config;
  std::string format = "text";
  std::string level = "info";
  double drain_s = 10;
  cli.add_option("--workers", o.workers, "worker threads (default: one per core)")->check(CLI::Range(0u, 1024u));
  cli.add_option("--log-format", format, "log format")->check(CLI::IsMember({"text", "json"}));
  cli.add_option("--log-level", level, "trace, debug, info, warn, error, critical, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  cli.add_option("--drain-timeout", drain_s, "seconds to drain flows on SIGTERM/SIGINT")->check(CLI::Range(0.0, 3600.0));
  auto* top_config = cli.add_option("-c,--config", o.config_path, "config file (run)");

  auto* run = cli.add_subcommand("run", "serve (the default)");
  auto* run_config = run->add_option("-c,--config", o.config_path, "config file");
  auto* validate = cli.add_subcommand("validate", "check a config file and exit");
  validate->add_option("file", o.config_path, "config file")->required();
  cli.add_subcommand("init", "print a commented starter config");

  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return failure(cli.exit(e));
  }
  if (validate->parsed()) o.cmd = command::validate;
  else if (cli.got_subcommand("init")) o.cmd = command::init;
  else o.cmd = command::run;
  o.format = format == "json" ? log_format::json : log_format::text;
  o.log_level = *observe::parse_log_level(level);  // checked by IsMember above
  o.config_given = top_config->count() > 0 || run_config->count() > 0 || o.cmd == command::validate;
  o.drain_timeout = std::chrono::milliseconds(static_cast<long long>(drain_s * 1000));
  return o;
}

}  // namespace rproxy::app
