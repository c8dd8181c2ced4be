// rproxy/config/dir_beside.hpp: a directory named in a config file, relative to that file's
// directory (config/load_dir.hpp reads one; an app's config watches it for reloads). Apart from
// load_dir, so that a config header can name it without the YAML decoder.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace rproxy::config {

/// A directory named in a file, relative to that file's directory (nullopt: none named).
inline std::optional<std::filesystem::path> dir_beside(const std::filesystem::path& file, const std::string& dir) {
  if (dir.empty()) return std::nullopt;
  std::filesystem::path d(dir);
  return d.is_absolute() ? d : file.parent_path() / d;
}

}  // namespace rproxy::config
