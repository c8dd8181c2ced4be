// rproxy/config/reference_markdown.hpp: the config reference for docs/, generated from the
// same struct declarations that decode the file, so it cannot drift from the code.
//
//     std::ofstream("docs/mc-proxy-config.md") << rproxy::config::reference_markdown<proxy_config>("mc-proxy configuration");
//
// One section per struct type, in the order they are first reached from T, headed by the key
// path where it appears (`routes.<name>`, `backends[]`), with a table:
//
//     | key | type | default | description |
//     |---|---|---|---|
//     | `listen` | endpoint | **required** | address to accept players on |
//     | `idle_timeout` | duration | `30s` | close connections idle this long |
#pragma once

#include <cstddef>
#include <optional>
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
  const void* id;
  std::string path;
  std::string type;
  std::string summary;
  std::vector<std::string> rows;
};

template <reflected T>
void collect_sections(const std::string& path, std::vector<md_section>& out);

/// Finds the structs reachable through a member type and collects their sections.
template <class M>
void collect_nested(const std::string& path, std::vector<md_section>& out) {
  if constexpr (optional_value<M>) collect_nested<typename M::value_type>(path, out);
  else if constexpr (list_value<M>) collect_nested<typename M::value_type>(path + "[]", out);
  else if constexpr (map_value<M>) collect_nested<typename M::mapped_type>(path + ".<name>", out);
  else if constexpr (reflected<M>) collect_sections<M>(path, out);
}

template <class M>
std::string section_of(const std::string& path) {
  if constexpr (optional_value<M>) return section_of<typename M::value_type>(path);
  else if constexpr (list_value<M>) return section_of<typename M::value_type>(path + "[]");
  else if constexpr (map_value<M>) return section_of<typename M::mapped_type>(path + ".<name>");
  else return path;
}

template <class M>
constexpr bool contains_struct() {
  if constexpr (optional_value<M> || list_value<M>) return contains_struct<typename M::value_type>();
  else if constexpr (map_value<M>) return contains_struct<typename M::mapped_type>();
  else return reflected<M>;
}

template <reflected T>
void collect_sections(const std::string& path, std::vector<md_section>& out) {
  const void* id = &field_metas<T>();
  for (const auto& s : out)
    if (s.id == id) return;
  md_section sec{id, path, type_name<T>(), {}, {}};
  if constexpr (requires { std::string_view{T::summary}; }) sec.summary = std::string(T::summary);
  const auto& metas = field_metas<T>();
  const T defaults{};
  std::size_t i = 0;
  for_each_field(defaults, [&](std::string_view name, const auto& member) {
    using M = std::remove_cvref_t<decltype(member)>;
    const field_meta& meta = metas[i++];
    const std::string child = child_path(path, name);
    std::string type = type_label<M>();
    if constexpr (contains_struct<M>()) type += ", see `" + section_of<M>(child) + "`";
    std::string def;
    if (meta.required) {
      def = "**required**";
    } else if constexpr (optional_value<M>) {
      def = member ? "`" + flow(member).value_or("") + "`" : "none";
      if (member && !flow(member)) def = "see `" + section_of<M>(child) + "`";
    } else if constexpr (reflected<M>) {
      def = "see `" + child + "`";
    } else if constexpr (list_value<M> || map_value<M>) {
      auto f = flow(member);
      def = f ? "`" + *f + "`" : std::to_string(member.size()) + " entries";
    } else {
      def = "`" + *flow(member) + "`";
    }
    sec.rows.push_back("| `" + std::string(name) + "` | " + md_cell(type) + " | " + md_cell(def) + " | " +
                       md_cell(meta.description) + " |");
  });
  out.push_back(std::move(sec));
  for_each_field(defaults, [&](std::string_view name, const auto& member) {
    collect_nested<std::remove_cvref_t<decltype(member)>>(child_path(path, name), out);
  });
}

}  // namespace detail

/// Markdown reference for T: a `# title` heading, then one section per struct type.
template <reflected T>
std::string reference_markdown(std::string_view title = "Configuration reference") {
  std::vector<detail::md_section> sections;
  detail::collect_sections<T>("", sections);
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
