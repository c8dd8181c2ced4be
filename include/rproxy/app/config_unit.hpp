// rproxy/app/config_unit.hpp: what run_main needs to decode an app's config (the file, the
// starter config of `init`), as one class an app instantiates in one translation unit of its
// own, so that the YAML decoder (the heavy instantiation) is compiled there only:
//
//     // config.cpp
//     #include <rproxy/app/config_unit.hpp>
//     #include "my_app.hpp"
//     template struct rproxy::app::config_unit<my_app::config>;
//
//     // main.cpp (run_main.hpp includes this header)
//     extern template struct rproxy::app::config_unit<my_app::config>;
//
// A config that reads itself (a main file plus a directory of per-item files, checks across
// files) declares `static result<Config, config::diagnostics> load(const std::filesystem::path&)`;
// config_unit calls it, else config::load_file.
#pragma once

#include <concepts>
#include <filesystem>
#include <string>
#include <string_view>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/starter_config.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::app {

/// A config that reads itself: `static result<Config, config::diagnostics> load(const std::filesystem::path&)`.
template <class Config>
concept loads_itself = requires(const std::filesystem::path& p) {
  { Config::load(p) } -> std::same_as<result<Config, config::diagnostics>>;
};

template <class Config>
struct config_unit {
  /// Loads a config file: Config::load when it has one, else config::load_file.
  static result<Config, config::diagnostics> load(const std::filesystem::path& path);
  /// The starter config `init` prints, under `title`.
  static std::string starter(std::string_view title);
};

// Defined out of the class (not inline), so that `extern template` keeps them out of a unit.
template <class Config>
result<Config, config::diagnostics> config_unit<Config>::load(const std::filesystem::path& path) {
  if constexpr (loads_itself<Config>) return Config::load(path);
  else return config::load_file<Config>(path);
}

template <class Config>
std::string config_unit<Config>::starter(std::string_view title) {
  return config::starter_config<Config>(title);
}

}  // namespace rproxy::app
