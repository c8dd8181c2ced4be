// rproxy/config/reference_markdown.hpp: the config reference for docs/, generated from the
// same struct declarations that decode the file, so it cannot drift from the code.
//
//     std::ofstream("docs/mc-proxy-config.md") << rproxy::config::reference_markdown<proxy_config>("mc-proxy configuration");
//
// One section per struct type, in the order they are first reached from T, headed by the key
// path where it first appears (`routes.<name>`, `backends[]`; a struct used in several places
// is described once and referred to), with a table:
//
//     | key | type | default | description |
//     |---|---|---|---|
//     | `listen` | endpoint | **required** | address to accept players on |
//     | `idle_timeout` | duration | `30s` | close connections idle this long |
#pragma once

#include <cstddef>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/config/field.hpp>
#include <rproxy/config/schema.hpp>

namespace rproxy::config {

namespace detail {

/// A value in YAML flow style when it has one ("30s", "[a, b]", "{}"); structs have none.
template <class T>
std::optional<std::string> flow(const T& v) {
  if constexpr (optional_value<T>) {
    if (!v) return std::string("null");
    return flow(*v);
  } else if constexpr (list_value<T> || map_value<T>) {
    std::string s = list_value<T> ? "[" : "{";
    bool first = true;
    for (const auto& item : v) {
      if (!first) s += ", ";
      first = false;
      std::optional<std::string> e;
      if constexpr (list_value<T>) {
        e = flow(item);
      } else {
        e = flow(item.second);
        if (e) *e = item.first + ": " + *e;
      }
      if (!e) return std::nullopt;
      s += *e;
    }
    s += list_value<T> ? "]" : "}";
    return s;
  } else if constexpr (reflected<T>) {
    return std::nullopt;
  } else {
    return scalar_traits<T>::format(v);
  }
}

inline std::string md_cell(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out += c;
  }
  return out;
}

struct md_section {
  const void* id;    ///< identifies the struct type
  std::string path;  ///< where it is first reached
  void (*build)(md_section& self, const std::vector<md_section>& all);
  std::string type{};
  std::string summary{};
  std::vector<std::string> rows{};
};

template <reflected T>
const void* section_id() {
  return &field_metas<T>();
}

template <reflected T>
void build_section(md_section& sec, const std::vector<md_section>& all);

template <reflected T>
void register_sections(const std::string& path, std::vector<md_section>& out);

/// Registers the structs reachable through a member type, with their key paths.
template <class M>
void register_nested(const std::string& path, std::vector<md_section>& out) {
  if constexpr (optional_value<M>) register_nested<typename M::value_type>(path, out);
  else if constexpr (list_value<M>) register_nested<typename M::value_type>(path + "[]", out);
  else if constexpr (map_value<M>) register_nested<typename M::mapped_type>(path + ".<name>", out);
  else if constexpr (reflected<M>) register_sections<M>(path, out);
}

/// Sections in pre-order of first appearance: a struct, then the structs below it.
template <reflected T>
void register_sections(const std::string& path, std::vector<md_section>& out) {
  for (const auto& s : out)
    if (s.id == section_id<T>()) return;
  out.push_back({section_id<T>(), path, &build_section<T>});
  const auto owner = std::make_unique<const T>();  // on the heap: see field_index (g++ 12, -O3)
  const T& probe = *owner;
  for_each_field(probe, [&](std::string_view name, const auto& member) {
    register_nested<std::remove_cvref_t<decltype(member)>>(child_path(path, name), out);
  });
}

/// The section path of the struct inside M (through optional, list and map), if any.
template <class M>
std::optional<std::string> section_path(const std::vector<md_section>& all) {
  if constexpr (optional_value<M> || list_value<M>) {
    return section_path<typename M::value_type>(all);
  } else if constexpr (map_value<M>) {
    return section_path<typename M::mapped_type>(all);
  } else if constexpr (reflected<M>) {
    for (const auto& s : all)
      if (s.id == section_id<M>()) return s.path;
    return std::nullopt;
  } else {
    return std::nullopt;
  }
}

inline std::string entries(std::size_t n) { return std::to_string(n) + (n == 1 ? " entry" : " entries"); }

template <reflected T>
void build_section(md_section& sec, const std::vector<md_section>& all) {
  sec.type = type_name<T>();
  if constexpr (requires { std::string_view{T::summary}; }) sec.summary = std::string(T::summary);
  const auto& metas = field_metas<T>();
  const auto owner = std::make_unique<const T>();  // on the heap: see field_index (g++ 12, -O3)
  const T& defaults = *owner;
  std::size_t i = 0;
  for_each_field(defaults, [&](std::string_view name, const auto& member) {
    using M = std::remove_cvref_t<decltype(member)>;
    const field_meta& meta = metas[i++];
    const std::optional<std::string> ref = section_path<M>(all);
    std::string type = type_label<M>();
    if (ref) type += ", see `" + *ref + "`";
    std::string def;
    if (meta.required) {
      def = "**required**";
    } else if constexpr (optional_value<M>) {
      if (!member) def = "none";
      else if (auto f = flow(member)) def = "`" + *f + "`";
      else def = "set, see `" + ref.value_or("") + "`";
    } else if constexpr (reflected<M>) {
      def = "see `" + ref.value_or("") + "`";
    } else if constexpr (list_value<M> || map_value<M>) {
      auto f = flow(member);
      def = f ? "`" + *f + "`" : entries(member.size());
    } else {
      def = "`" + *flow(member) + "`";
    }
    sec.rows.push_back("| `" + std::string(name) + "` | " + md_cell(type) + " | " + md_cell(def) + " | " +
                       md_cell(meta.description) + " |");
  });
}

}  // namespace detail

/// Markdown reference for T: a `# title` heading, then one section per struct type.
template <reflected T>
std::string reference_markdown(std::string_view title = "Configuration reference") {
  std::vector<detail::md_section> sections;
  detail::register_sections<T>("", sections);
  for (auto& s : sections) s.build(s, sections);
  std::string out = "# " + std::string(title) + "\n";
  for (const auto& s : sections) {
    out += "\n## ";
    out += s.path.empty() ? "Top level" : "`" + s.path + "`";
    out += "\n\n";
    if (!s.path.empty()) out += "Type `" + s.type + "`" + (s.summary.empty() ? "." : ": " + s.summary) + "\n\n";
    else if (!s.summary.empty()) out += s.summary + "\n\n";
    out += "| key | type | default | description |\n|---|---|---|---|\n";
    for (const auto& row : s.rows) out += row + "\n";
  }
  return out;
}

}  // namespace rproxy::config
