// tcp_proxy: an L4 proxy from a YAML file, made of rproxy parts (see tcp_proxy.hpp).
//   tcp_proxy [run] --config tcp_proxy.yaml | validate FILE | init | --version
#include <filesystem>
#include <string>
#include <string_view>

#include <rproxy/app/run_main.hpp>
#include <rproxy/config/decode.hpp>
#include <rproxy/config/starter_config.hpp>

#include "tcp_proxy.hpp"

// Decoded in config.cpp only (the YAML decoder is the heavy instantiation; serve.cpp never uses it).
extern template rproxy::result<tcp_proxy::config, rproxy::config::diagnostics>
rproxy::config::load_file<tcp_proxy::config>(const std::filesystem::path&, rproxy::config::positions*);
extern template std::string rproxy::config::starter_config<tcp_proxy::config>(std::string_view);

int main(int argc, char** argv) {
  return rproxy::app::run_main<tcp_proxy::config>(
      argc, argv, {"tcp_proxy", "0.1.0", "tcp_proxy.yaml", "rproxy example: an L4 (TCP) proxy"},
      [](tcp_proxy::runtime& rt) { return tcp_proxy::serve(rt); });
}
