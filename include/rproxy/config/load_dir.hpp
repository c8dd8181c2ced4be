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
//
// load_with_dir reads a main file whose list (`servers:`) may also come from such a directory
// (`servers_dir:`, relative to the main file): the directory's items join the list, an item
// without a name takes its file's, a name declared twice is an error where the second one is,
// and each item keeps where it was declared for the app's own checks across files:
//
//     auto r = load_with_dir<config, &config::servers, &config::servers_dir, &server::name>(path);
//     r->add(d, i, "domains[1]", "domain claimed twice");   // main.yaml:7:9: or lobby.yaml:3:5:
#pragma once

#include <fnmatch.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/config/decode.hpp>
#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/dir_beside.hpp>
#include <rproxy/config/field.hpp>
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

/// A main file whose list was completed from a directory of per-item files.
template <class Main>
struct with_dir {
  /// Where an item of the list was declared: a file (0: the main one, i: files[i - 1]) and the
  /// item's path in it ("servers[2]"; empty for an item that is a file of its own).
  struct origin {
    std::size_t file = 0;
    std::string prefix;
  };

  Main value;
  positions main;                ///< the main file's
  std::vector<positions> files;  ///< the directory's, one per item read from it
  std::vector<origin> origins;   ///< one per item of the list, in order

  const positions& pos_of(std::size_t item) const { return origins[item].file == 0 ? main : files[origins[item].file - 1]; }
  /// The position of `field` ("domains[1]") of list item `item`, in its own file.
  mark find(std::size_t item, std::string_view field) const {
    const auto& o = origins[item];
    return pos_of(item).find(o.prefix.empty() ? std::string(field) : o.prefix + "." + std::string(field));
  }
  /// Adds an error at `field` of list item `item`, naming the file the item came from.
  void add(diagnostics& d, std::size_t item, std::string_view field, std::string message) const {
    d.add(pos_of(item).file(), find(item, field), error::invalid, std::move(message));
  }
};

/// Reads the main file, then every file of the directory that Dir names (matching `pattern`)
/// as one more item of List; an item's Name defaults to its file's name.
template <reflected Main, auto List, auto Dir, auto Name>
result<with_dir<Main>, diagnostics> load_with_dir(const std::filesystem::path& path, std::string_view pattern = "*.yaml") {
  using item_type = typename std::remove_cvref_t<decltype(std::declval<Main&>().*List)>::value_type;
  with_dir<Main> out;
  auto main = load_file<Main>(path, &out.main);
  if (!main) return failure(std::move(main).error());
  out.value = std::move(*main);
  auto& list = out.value.*List;
  for (std::size_t i = 0; i < list.size(); ++i)
    out.origins.push_back({0, std::string(member_name<List>) + "[" + std::to_string(i) + "]"});
  const auto dir = dir_beside(path, out.value.*Dir);
  if (!dir) return out;
  auto items = load_dir<item_type>(*dir, pattern);
  if (!items) return failure(std::move(items).error());
  diagnostics d;
  for (auto& item : *items) {
    auto& name = item.value.*Name;
    if (name.empty()) name = item.name;
    for (std::size_t i = 0; i < list.size(); ++i)
      if (list[i].*Name == name)
        d.add(item.pos.file(), item.pos.find(member_name<Name>), error::invalid,
              std::string(member_name<Name>) + " '" + name + "' is also declared in " + out.pos_of(i).file());
    list.push_back(std::move(item.value));
    out.files.push_back(std::move(item.pos));
    out.origins.push_back({out.files.size(), ""});
  }
  if (!d.empty()) return failure(std::move(d));
  return out;
}

}  // namespace rproxy::config
