// rproxy/app/run_main.hpp: the whole life of an app, from its main():
//
//     int main(int argc, char** argv) {
//       return rproxy::app::run_main<proxy_config>(argc, argv, {"tcp_proxy", "0.1.0", "proxy.yaml"},
//           [](rproxy::app::runtime<proxy_config>& rt) -> int {
//             // open listeners on rt.pool(), register rt.on_stop_accepting(...), metrics ...
//             return 0;                 // non-zero: startup failed, exit with it
//           });
//     }
//
// run_main handles the shared CLI (app/cli.hpp): `init` prints the starter config derived from
// Config, `validate FILE` prints file:line:col errors, `run` loads the config (or the embedded
// defaults when no file was named and the default file is absent), calls `serve`, then runs
// the runtime (app/runtime.hpp) until shutdown. Reloads read the --config file the same way.
// Only main includes this header: it brings the command-line parser and the config decoder.
#pragma once

#include <concepts>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include <rproxy/app/cli.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/config/decode.hpp>
#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/starter_config.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::app {

/// A config that reads itself (a main file plus a directory of per-item files, checks across
/// files): `static result<Config, config::diagnostics> load(const std::filesystem::path&)`.
template <class Config>
concept loads_itself = requires(const std::filesystem::path& p) {
  { Config::load(p) } -> std::same_as<result<Config, config::diagnostics>>;
};
/// Loads a config file: Config::load when it has one, else config::load_file.
template <class Config>
result<Config, config::diagnostics> load_config(const std::filesystem::path& path) {
  if constexpr (loads_itself<Config>) return Config::load(path);
  else return config::load_file<Config>(path);
}

/// The whole life of an app: CLI, config, then `serve(runtime&)` and the runtime's loop.
template <class Config, class Serve>
int run_main(int argc, const char* const* argv, const app_info& info, Serve&& serve) {
  auto parsed = parse_cli(argc, argv, info);
  if (!parsed) return parsed.error();
  options& o = *parsed;

  if (o.cmd == command::init) {
    std::cout << config::starter_config<Config>(info.name + " configuration");
    return 0;
  }

  const bool use_defaults =
      o.cmd == command::run && !o.config_given && !std::filesystem::exists(o.config_path);
  std::shared_ptr<const Config> cfg;
  if (use_defaults) {
    cfg = std::make_shared<const Config>();
  } else {
    auto loaded = load_config<Config>(o.config_path);
    if (!loaded) {
      std::cerr << loaded.error().to_string();
      if (o.cmd == command::validate) std::cerr << o.config_path << ": invalid\n";
      return 1;
    }
    if (o.cmd == command::validate) {
      std::cout << o.config_path << ": ok\n";
      return 0;
    }
    o.config_given = true;
    cfg = std::make_shared<const Config>(std::move(*loaded));
  }

  try {
    runtime<Config> rt(o, info, std::move(cfg));
    if (o.config_given)  // reloads read the same file (serve may set a loader of its own)
      rt.set_loader([path = std::filesystem::path(o.config_path)] { return load_config<Config>(path); });
    if (int rc = serve(rt); rc != 0) return rc;
    return rt.run();
  } catch (const std::exception& e) {
    std::cerr << info.name << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace rproxy::app
