// rproxy/config/validator.hpp: checks that need more than one field, reported at the right line.
//
// After a file decodes without errors, decode() calls `void validate(validator&) const` on every
// reflected struct that has one (children before their parent). The validator is positioned at
// that struct; at() walks down by field, map key or list index, and error() reports at the
// line of that node in the file (or of its nearest ancestor present in the file):
//
//     struct proxy_config {
//       std::map<std::string, route> routes;
//       std::map<std::string, pool> pools;
//       void validate(rproxy::config::validator& v) const {
//         for (const auto& [name, r] : routes)
//           if (!pools.contains(r.pool))
//             v.at(&proxy_config::routes).at(name).at(&route::pool)
//                 .error("route '" + name + "' names unknown backend pool '" + r.pool + "'");
//       }
//     };
//     // proxy.yaml:7:11: route 'lobby' names unknown backend pool 'mini'
//
// Paths are written "routes.lobby.pool", "backends[2].address"; positions maps them to marks.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/field.hpp>

namespace rproxy::config {

/// Where each decoded node was in its file, by path ("" is the document itself).
class positions {
public:
  positions() = default;
  explicit positions(std::string file) : file_(std::move(file)) {}

  const std::string& file() const noexcept { return file_; }
  void set(std::string path, mark m) { marks_.insert_or_assign(std::move(path), m); }

  /// The mark of `path`, or of its nearest ancestor that was in the file, or {0, 0}.
  mark find(std::string_view path) const {
    std::string p(path);
    for (;;) {
      if (auto it = marks_.find(p); it != marks_.end()) return it->second;
      if (p.empty()) return {};
      const auto cut = p.find_last_of(".[");
      p.resize(cut == std::string::npos ? 0 : cut);
    }
  }

  bool contains(std::string_view path) const { return marks_.find(std::string(path)) != marks_.end(); }

private:
  std::string file_;
  std::unordered_map<std::string, mark> marks_;
};

/// Reports validation errors at the position of a node, found by path.
class validator {
public:
  validator(diagnostics& out, const positions& pos, std::string path = {})
      : out_(&out), pos_(&pos), path_(std::move(path)) {}

  /// This node's path, e.g. "routes.lobby".
  const std::string& path() const noexcept { return path_; }
  /// This node's position (or its nearest ancestor's).
  mark position() const { return pos_->find(path_); }

  /// A field or map key below this node ("pool", or "lobby" in a map; dots go deeper).
  validator at(std::string_view key) const { return {*out_, *pos_, detail::child_path(path_, key)}; }
  /// A list element below this node.
  validator at(std::size_t index) const { return {*out_, *pos_, path_ + "[" + std::to_string(index) + "]"}; }
  /// A field of the struct at this node, named by member pointer; the member must be listed in
  /// its struct's describe().
  template <class C, class M>
  validator at(M C::*member) const {
    static_assert(reflected<C>, "rproxy::config::validator::at: the struct has no describe() listing its fields");
    return at(field_name(member));
  }

  /// Reports `message` at this node.
  void error(std::string message) const { out_->add(pos_->file(), position(), config::error::invalid, std::move(message)); }
  /// Reports `message` at a field of the struct at this node.
  template <class C, class M>
  void error(M C::*member, std::string message) const {
    at(member).error(std::move(message));
  }

  /// Errors reported so far by anyone on this load.
  std::size_t error_count() const noexcept { return out_->size(); }

private:
  diagnostics* out_;
  const positions* pos_;
  std::string path_;
};

}  // namespace rproxy::config
