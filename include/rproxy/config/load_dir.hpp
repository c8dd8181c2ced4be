// rproxy/config/load_dir.hpp: one config item per file in a directory (one file per server,
// the way Infrarust users keep them).
//
//     servers/lobby.yaml     domains: [lobby.example.com]
//     servers/survival.yaml  domains: [survival.example.com]
//
//     auto servers = rproxy::config::load_dir<server>("servers", "*.yaml");
//     if (!servers) std::cerr << servers.error();   // servers/survival.yaml:2:9: ...
//     for (const auto& s : *servers) use(s.name, s.value);   // name "lobby", from the file name
//
// Files are read in name order; every file is decoded and all errors are collected, each
// naming its file. Hidden files (".lobby.yaml.swp") never match. A missing directory is an
// error; an empty one is an empty list.
//
// Each item keeps the positions of its file, so a check that spans files (a domain claimed by
// two servers) reports at the right file:line:col after loading:
//
//     d.add(s.pos.file(), s.pos.find("domains[1]"), error::invalid, "domain claimed twice");
//     // servers/survival.yaml:3:5: domain claimed twice
#pragma once

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::config {

/// One decoded file of a directory.
template <class T>
struct file_item {
  std::string name;             ///< the file name without its extension: "lobby"
  std::filesystem::path path;   ///< dir / file name, as opened
  T value;
  positions pos;                ///< where each node of `value` was in the file (pos.file() is `path`)
};

/// Whether a file name matches a shell pattern ("*.yaml"); names starting with '.' need an
/// explicit leading '.' in the pattern.
inline bool matches_pattern(std::string_view file_name, std::string_view pattern) {
  return ::fnmatch(std::string(pattern).c_str(), std::string(file_name).c_str(), FNM_PERIOD) == 0;
}

/// Every regular file in `dir` (not recursive) whose name matches `pattern`, sorted by name.
inline result<std::vector<std::filesystem::path>, diagnostics> list_dir(const std::filesystem::path& dir,
                                                                        std::string_view pattern) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  std::vector<std::filesystem::path> files;
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;  // follows symlinks
    if (matches_pattern(it->path().filename().string(), pattern)) files.push_back(it->path());
  }
  if (ec) {
    diagnostics d;
    d.add(dir.string(), {}, error::unreadable, "cannot read directory: " + ec.message());
    return failure(std::move(d));
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// Decodes every file in `dir` matching `pattern` as a T.
template <reflected T>
result<std::vector<file_item<T>>, diagnostics> load_dir(const std::filesystem::path& dir,
                                                        std::string_view pattern = "*.yaml") {
  auto files = list_dir(dir, pattern);
  if (!files) return failure(std::move(files).error());
  std::vector<file_item<T>> items;
  diagnostics all;
  for (const auto& f : *files) {
    positions pos;
    auto r = load_file<T>(f, &pos);
    if (!r) {
      all.append(r.error());
      continue;
    }
    items.push_back({f.stem().string(), f, std::move(*r), std::move(pos)});
  }
  if (!all.empty()) return failure(std::move(all));
  return items;
}

}  // namespace rproxy::config
