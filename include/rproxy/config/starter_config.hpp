// rproxy/config/starter_config.hpp: the commented YAML that an app's `init` command prints.
//
//     std::cout << rproxy::config::starter_config<proxy_config>("mc-proxy configuration");
//
// Every field appears with its description as a comment above it and its default value, so the
// output decodes back to T{} (required fields are written with their default value and marked
// "(required)": edit them). Optional fields without a value are written commented out. An empty
// list or map of structs is followed by a commented example entry.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/config/field.hpp>
#include <rproxy/config/schema.hpp>

namespace rproxy::config {

namespace detail {

struct rendered {
  bool is_inline = true;
  std::string text;                // when inline
  std::vector<std::string> lines;  // when a block (relative indentation)
};

/// A map key as YAML: plain when that is unambiguous, quoted otherwise.
inline std::string yaml_key(std::string_view k) {
  bool plain = !k.empty() && k != "null" && k != "Null" && k != "NULL" && k != "~";
  for (std::size_t i = 0; plain && i < k.size(); ++i) {
    const char c = k[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    (i > 0 && (c == '-' || c == '.' || c == '/'));
    plain = ok;
  }
  return plain ? std::string(k) : yaml_quote(k);
}

inline void indent_into(std::vector<std::string>& out, const std::vector<std::string>& lines, std::string_view first,
                        std::string_view rest) {
  for (std::size_t i = 0; i < lines.size(); ++i) out.push_back(std::string(i == 0 ? first : rest) + lines[i]);
}

template <class T>
rendered render(const T& v, bool comments);
template <reflected T>
std::vector<std::string> render_fields(const T& v, bool comments);

template <class M>
struct element_of {
  using type = typename M::value_type;
};
template <map_value M>
struct element_of<M> {
  using type = typename M::mapped_type;
};

/// The lines of one field: its comment, its key and value, any example. One function per
/// field type (not per struct), so that structs with fields of the same types share it.
template <class M>
void render_field(std::string_view name, const M& member, const field_meta& meta, bool comments, std::vector<std::string>& out) {
  if (comments && (!meta.description.empty() || meta.required)) {
    std::string c = "#";
    if (!meta.description.empty()) c += " " + std::string(meta.description);
    if (meta.required) c += " (required)";
    out.push_back(std::move(c));
  }
  if constexpr (optional_value<M>) {
    if (!member.has_value()) {
      out.push_back("# " + std::string(name) + ": <" + type_label<M>() + ">");
      return;
    }
  }
  const rendered r = render(member, comments);
  if (r.is_inline) {
    out.push_back(std::string(name) + ": " + r.text);
  } else {
    out.push_back(std::string(name) + ":");
    indent_into(out, r.lines, "  ", "  ");
  }
  // An empty list or map of structs: show what an entry looks like.
  if constexpr (list_value<M> || map_value<M>) {
    using E = typename element_of<M>::type;
    if constexpr (reflected<E>) {
      if (comments && member.empty()) {
        const auto entry = std::make_unique<const E>();  // on the heap: see field_index (g++ 12, -O3)
        const std::vector<std::string> example = render_fields(*entry, false);
        out.push_back("#   for example:");
        if constexpr (list_value<M>) {
          for (std::size_t k = 0; k < example.size(); ++k) out.push_back((k == 0 ? "#   - " : "#     ") + example[k]);
        } else {
          out.push_back("#   example:");
          for (const auto& line : example) out.push_back("#     " + line);
        }
      }
    }
  }
}

/// One group of lines per field: its comment, its key and value, any example.
template <reflected T>
std::vector<std::vector<std::string>> render_field_groups(const T& v, bool comments) {
  std::vector<std::vector<std::string>> groups;
  const auto& metas = field_metas<T>();
  std::size_t i = 0;
  for_each_field(v, [&](std::string_view name, const auto& member) {
    render_field(name, member, metas[i++], comments, groups.emplace_back());
  });
  return groups;
}

template <reflected T>
std::vector<std::string> render_fields(const T& v, bool comments) {
  std::vector<std::string> out;
  for (auto& g : render_field_groups(v, comments)) out.insert(out.end(), g.begin(), g.end());
  return out;
}

template <class T>
rendered render(const T& v, bool comments) {
  rendered r;
  if constexpr (optional_value<T>) {
    if (!v) {
      r.text = "null";
      return r;
    }
    return render(*v, comments);
  } else if constexpr (list_value<T>) {
    if (v.empty()) {
      r.text = "[]";
      return r;
    }
    r.is_inline = false;
    for (const auto& item : v) {
      const rendered e = render(item, comments);
      if (e.is_inline) r.lines.push_back("- " + e.text);
      else indent_into(r.lines, e.lines, "- ", "  ");
    }
  } else if constexpr (map_value<T>) {
    if (v.empty()) {
      r.text = "{}";
      return r;
    }
    r.is_inline = false;
    for (const auto& [key, item] : v) {
      const rendered e = render(item, comments);
      if (e.is_inline) {
        r.lines.push_back(yaml_key(key) + ": " + e.text);
      } else {
        r.lines.push_back(yaml_key(key) + ":");
        indent_into(r.lines, e.lines, "  ", "  ");
      }
    }
  } else if constexpr (reflected<T>) {
    r.lines = render_fields(v, comments);
    if (r.lines.empty()) r.text = "{}";
    else r.is_inline = false;
  } else {
    static_assert(scalar<T>, "rproxy::config: not a config type");
    r.text = scalar_traits<T>::format(v);
  }
  return r;
}

}  // namespace detail

/// Commented YAML for T{}: `header` (any number of lines) comes first as comments.
template <reflected T>
std::string starter_config(std::string_view header = {}) {
  std::string out;
  auto comment_lines = [&](std::string_view text) {
    while (!text.empty()) {
      const auto nl = text.find('\n');
      const auto line = text.substr(0, nl);
      out += line.empty() ? "#\n" : "# " + std::string(line) + "\n";
      if (nl == std::string_view::npos) break;
      text.remove_prefix(nl + 1);
    }
  };
  comment_lines(header);
  if constexpr (requires { std::string_view{T::summary}; }) comment_lines(T::summary);
  const auto owner = std::make_unique<const T>();  // on the heap: see field_index (g++ 12, -O3)
  const T& defaults = *owner;
  // A blank line before each top-level field (and its comment) keeps the file readable.
  for (const auto& group : detail::render_field_groups(defaults, true)) {
    if (!out.empty()) out += '\n';
    for (const auto& line : group) {
      out += line;
      out += '\n';
    }
  }
  return out;
}

}  // namespace rproxy::config
