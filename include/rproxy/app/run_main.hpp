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
// Config, `validate FILE` prints file:line:col errors (or "ok", then the keys a reload does not
// apply, when Config lists them: app/restart_only.hpp; a reload that changes one says so), `run` loads the config (or the embedded
// defaults when no file was named and the default file is absent), calls `serve`, then runs
// the runtime (app/runtime.hpp) until shutdown. Reloads read the --config file the same way.
// If Config has `admin.listen` (an optional config::endpoint), /metrics /healthz /readyz and
// POST /reload are served there, from the control thread, until shutdown starts.
// Only main includes this header: it brings the command-line parser, the config decoder and
// the admin server. The decoder's instantiation may live in a unit of its own: see
// app/config_unit.hpp.
#pragma once

#include <concepts>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>

#include <rproxy/admin/server.hpp>
#include <rproxy/app/cli.hpp>
#include <rproxy/app/config_unit.hpp>
#include <rproxy/app/restart_only.hpp>
#include <rproxy/app/runtime.hpp>
#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/observe/log.hpp>

namespace rproxy::app {

/// Loads a config file: Config::load when it has one, else config::load_file (app/config_unit.hpp,
/// which an app may instantiate in a unit of its own).
template <class Config>
result<Config, config::diagnostics> load_config(const std::filesystem::path& path) {
  return config_unit<Config>::load(path);
}

/// A config with an admin block: `admin: {listen: 127.0.0.1:9901}`.
template <class Config>
concept has_admin = requires(const Config& c) {
  { c.admin.listen } -> std::convertible_to<std::optional<config::endpoint>>;
};

/// The admin block's token file and host names; a warning for an open, token-less endpoint.
template <class Config>
void admin_security(const Config& c, const asio::ip::address& addr, admin::server_options& o, const observe::logger& log) {
  if constexpr (requires { c.admin.token_file; c.admin.allowed_hosts; }) {
    o.allowed_hosts = c.admin.allowed_hosts;
    if (!c.admin.token_file.empty()) {
      auto t = admin::read_token_file(c.admin.token_file);
      if (!t) throw std::runtime_error("admin.token_file: " + c.admin.token_file + ": " + t.error().message());
      o.token = std::move(*t);
    }
  }
  if (!addr.is_loopback() && o.token.empty())
    log.warn("admin endpoint is not on loopback and has no token_file: anyone who reaches it can POST /reload",
             {{"address", addr.to_string()}});
}

/// Serves the admin endpoint when Config has `admin.listen` (an optional config::endpoint):
/// /metrics, /healthz, /readyz and POST /reload, from the control thread, until shutdown starts.
template <class Config>
void start_admin(runtime<Config>& rt) {
  if constexpr (has_admin<Config>) {
    const auto& listen = rt.config().get()->admin.listen;
    if (!listen) return;
    std::error_code ec;
    auto addr = asio::ip::make_address(listen->host, ec);
    if (ec) throw std::runtime_error("admin.listen: not an IP address: " + listen->host);
    admin::server_options aopt;
    admin_security(*rt.config().get(), addr, aopt, rt.log());
    auto admin = std::make_shared<admin::server>(rt.control(), asio::ip::tcp::endpoint{addr, listen->port}, std::move(aopt));
    admin->serve_metrics(rt.metrics());
    admin->set_ready([&rt] { return !rt.drain().draining(); });
    admin->handle("POST", "/reload", [&rt](const admin::request&) {
      return rt.reload_now() ? admin::text(200, "reloaded\n") : admin::text(422, "config kept: see log\n");
    });
    for (const auto& mount : rt.admin_mounts()) mount(*admin);
    admin->start();
    rt.on_stop_accepting([a = admin.get()] { a->stop(); });
    rt.keep(admin);  // destroyed with the app's objects, before the control loop it runs on
    rt.log().info("admin listening", {{"address", listen->to_string()}});
  }
}

/// The whole life of an app: CLI, config, then `serve(runtime&)` and the runtime's loop.
template <class Config, class Serve>
int run_main(int argc, const char* const* argv, const app_info& info, Serve&& serve) {
  auto parsed = parse_cli(argc, argv, info);
  if (!parsed) return parsed.error();
  options& o = *parsed;

  if (o.cmd == command::init) {
    std::cout << config_unit<Config>::starter(info.name + " configuration");
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
      if constexpr (lists_restart_keys<Config>) print_restart_keys(std::cout, loaded->restart_only());
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
    if constexpr (lists_restart_keys<Config>) warn_restart_changes(rt);
    start_admin(rt);
    return rt.run();
  } catch (const std::exception& e) {
    std::cerr << info.name << ": " << e.what() << "\n";
    return 1;
  }
}

}  // namespace rproxy::app
