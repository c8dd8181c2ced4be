// rproxy/config/decode.hpp: YAML to a typed config struct, with every error at file:line:col.
//
//     auto cfg = rproxy::config::load_file<proxy_config>("proxy.yaml");
//     if (!cfg) {
//       std::cerr << cfg.error();   // proxy.yaml:3:3: unknown key 'lisen' (did you mean 'listen'?)
//       return 1;                   // proxy.yaml:9:16: value 70000 out of range for uint16 (0..65535)
//     }
//     use(cfg->listen);
//
// load_string<T>(text, name) does the same for text in memory, decode<T>(node, file) for a
// YAML::Node already parsed. What decoding checks:
//   - every key is a field of its struct ("unknown key 'x' (did you mean 'y'?)") and appears once;
//   - each value has its field's type (scalars per scalar.hpp, lists, maps, nested structs);
//   - required fields (field.hpp) are present; absent optional ones keep their defaults;
//   - null (`key:` or `key: ~`) empties an optional, list, map or struct;
//   - then, if all that passed, validate() hooks (validator.hpp).
// All problems are collected, sorted by position. A YAML syntax error comes out the same way.
#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/config/diagnostics.hpp>
#include <rproxy/config/error.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/schema.hpp>
#include <rproxy/config/suggest.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::config {

namespace detail {

struct decode_context {
  diagnostics& diags;
  positions& pos;

  void fail(mark m, error code, std::string message) { diags.add(pos.file(), m, code, std::move(message)); }
};

inline mark mark_of(const YAML::Node& n, mark fallback = {1, 1}) {
  const auto m = n.Mark();
  if (m.is_null()) return fallback;
  return {m.line + 1, m.column + 1};
}

/// What a node is, for "expected X, got Y".
inline std::string kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar: return quote_text(n.Scalar());
    default: return "nothing";
  }
}

inline std::string line_ref(mark m) { return "line " + std::to_string(m.line); }

template <class T>
void decode_value(const YAML::Node& n, mark at, T& out, decode_context& c, const std::string& path);

/// Decodes one field of a struct (`obj` is the struct): one function per field, so that the
/// walk over a map's keys (decode_fields) is compiled once, not once per struct.
using field_decoder = void (*)(const YAML::Node&, mark, void* obj, decode_context&, const std::string& path);

template <class T, class Doc>
void decode_field(const YAML::Node& n, mark at, void* obj, decode_context& c, const std::string& path) {
  decode_value(n, at, static_cast<T*>(obj)->*(Doc::member), c, path);
}

template <reflected T>
inline constexpr auto field_decoders = []<class... Docs>(std::type_identity<std::tuple<Docs...>>) {
  return std::array<field_decoder, sizeof...(Docs)>{&decode_field<T, Docs>...};
}(std::type_identity<field_list<T>>{});

/// A map's keys to the fields of a struct: unknown, duplicate and missing required keys are
/// reported; each present field is decoded by its decoder. `label` names the struct's type.
inline void decode_fields(const YAML::Node& n, mark at, void* obj, const std::vector<field_meta>& metas,
                          const field_decoder* decoders, std::string (*label)(), decode_context& c, const std::string& path) {
  struct entry {
    YAML::Node key, value;
    bool present = false;
  };
  std::vector<entry> found(metas.size());
  if (!n.IsNull()) {
    if (!n.IsMap()) {
      c.fail(at, error::wrong_type, "expected a map (" + label() + "), got " + kind_of(n));
      return;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node key = it->first;  // copies: `it->` yields a temporary pair
      const YAML::Node value = it->second;
      const mark km = mark_of(key, at);
      if (!key.IsScalar()) {
        c.fail(km, error::wrong_type, "expected a key, got " + kind_of(key));
        continue;
      }
      const std::string& name = key.Scalar();
      std::size_t idx = 0;
      while (idx < metas.size() && metas[idx].name != name) ++idx;
      if (idx == metas.size()) {
        std::vector<std::string_view> names;
        for (const auto& m : metas) names.push_back(m.name);
        std::string msg = "unknown key " + quote_text(name);
        if (auto s = did_you_mean(name, names)) {
          msg += " (did you mean '" + *s + "'?)";
        } else {
          msg += " (expected one of: ";
          for (std::size_t i = 0; i < names.size(); ++i) msg += (i ? ", " : "") + std::string(names[i]);
          msg += ")";
        }
        c.fail(km, error::unknown_key, std::move(msg));
        continue;
      }
      if (found[idx].present) {
        c.fail(km, error::duplicate_key,
               "duplicate key " + quote_text(name) + " (first at " + line_ref(mark_of(found[idx].key, at)) + ")");
        continue;
      }
      found[idx] = {key, value, true};
    }
  }
  for (std::size_t i = 0; i < metas.size(); ++i) {
    const entry& e = found[i];
    if (e.present) {
      const mark km = mark_of(e.key, at);
      // A null value has no useful mark of its own (yaml-cpp puts it on the next line).
      const mark vm = e.value.IsNull() ? km : mark_of(e.value, km);
      decoders[i](e.value, vm, obj, c, child_path(path, metas[i].name));
    } else if (metas[i].required) {
      std::string msg = "missing required key '" + std::string(metas[i].name) + "'";
      if (!path.empty()) msg += " in " + path;
      c.fail(at, error::missing_required, std::move(msg));
    }
  }
}

template <reflected T>
void decode_struct(const YAML::Node& n, mark at, T& out, decode_context& c, const std::string& path) {
  static_assert(checked_fields<T>::value);
  decode_fields(n, at, &out, field_metas<T>(), field_decoders<T>.data(), &type_label<T>, c, path);
}

template <class T>
void decode_value(const YAML::Node& n, mark at, T& out, decode_context& c, const std::string& path) {
  c.pos.set(path, at);
  if constexpr (optional_value<T>) {
    if (n.IsNull()) {
      out.reset();
      return;
    }
    using V = typename T::value_type;  // on the heap: see field_index (g++ 12, -O3)
    const auto v = out.has_value() ? std::make_unique<V>(*out) : std::make_unique<V>();
    const std::size_t before = c.diags.size();
    decode_value(n, at, *v, c, path);
    if (c.diags.size() == before) out = std::move(*v);
  } else if constexpr (list_value<T>) {
    out.clear();
    if (n.IsNull()) return;
    if (!n.IsSequence()) {
      c.fail(at, error::wrong_type, "expected a " + type_label<T>() + ", got " + kind_of(n));
      return;
    }
    std::size_t i = 0;
    for (const auto& item : n) {  // decoded in place (see field_index on g++ 12's false positive)
      decode_value(item, mark_of(item, at), out.emplace_back(), c, path + "[" + std::to_string(i++) + "]");
    }
  } else if constexpr (map_value<T>) {
    out.clear();
    if (n.IsNull()) return;
    if (!n.IsMap()) {
      c.fail(at, error::wrong_type, "expected a " + type_label<T>() + ", got " + kind_of(n));
      return;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node key_node = it->first;  // copies: `it->` yields a temporary pair
      const YAML::Node value = it->second;
      const mark km = mark_of(key_node, at);
      if (!key_node.IsScalar()) {
        c.fail(km, error::wrong_type, "expected a key, got " + kind_of(key_node));
        continue;
      }
      const std::string key = key_node.Scalar();
      if (out.contains(key)) {
        c.fail(km, error::duplicate_key, "duplicate key " + quote_text(key));
        continue;
      }
      typename T::mapped_type v{};
      const mark vm = value.IsNull() ? km : mark_of(value, km);
      decode_value(value, vm, v, c, child_path(path, key));
      out.emplace(key, std::move(v));
    }
  } else if constexpr (reflected<T>) {
    decode_struct(n, at, out, c, path);
  } else if constexpr (scalar<T>) {
    if (!n.IsScalar()) {
      c.fail(at, error::wrong_type, "expected " + scalar_traits<T>::type_name() + ", got " + kind_of(n));
      return;
    }
    auto r = scalar_traits<T>::parse(n.Scalar());
    if (!r) {
      c.fail(at, r.error().code, r.error().message);
      return;
    }
    out = std::move(*r);
  } else {
    static_assert(config_value<T>,
                  "rproxy::config: no decoder for this type; use a scalar, std::optional, std::vector, "
                  "std::map<std::string, T>, a struct with describe() (field.hpp), or specialize "
                  "rproxy::config::scalar_traits");
  }
}

template <class T>
void validate_value(const T& v, const validator& at) {
  if constexpr (optional_value<T>) {
    if (v) validate_value(*v, at);
  } else if constexpr (list_value<T>) {
    for (std::size_t i = 0; i < v.size(); ++i) validate_value(v[i], at.at(i));
  } else if constexpr (map_value<T>) {
    for (const auto& [key, item] : v) validate_value(item, at.at(std::string_view{key}));
  } else if constexpr (reflected<T>) {
    for_each_field(v, [&](std::string_view name, const auto& member) { validate_value(member, at.at(name)); });
    if constexpr (requires(validator& w) { v.validate(w); }) {
      validator here = at;
      v.validate(here);
    }
  }
}

inline diagnostics syntax_error(const std::string& file, const YAML::Exception& e) {
  diagnostics d;
  const mark m = e.mark.is_null() ? mark{1, 1} : mark{e.mark.line + 1, e.mark.column + 1};
  d.add(file, m, error::syntax, e.msg.empty() ? std::string(e.what()) : e.msg);
  return d;
}

}  // namespace detail

/// Decodes `node` into T and runs validate() hooks. `file` names the source in diagnostics.
/// `pos`, when given, receives every decoded node's position (for checks made later).
template <reflected T>
result<T, diagnostics> decode(const YAML::Node& node, std::string_view file = "<input>", positions* pos = nullptr) {
  diagnostics diags;
  positions local{std::string(file)};
  positions& p = pos != nullptr ? (*pos = positions{std::string(file)}, *pos) : local;
  detail::decode_context c{diags, p};
  const auto out = std::make_unique<T>();  // on the heap: see field_index (g++ 12, -O3)
  detail::decode_value(node, detail::mark_of(node), *out, c, "");
  if (diags.empty()) detail::validate_value(*out, validator{diags, p});
  if (!diags.empty()) {
    diags.sort();
    return failure(std::move(diags));
  }
  return std::move(*out);
}

/// Parses YAML text and decodes it; `name` is the file name shown in diagnostics.
template <reflected T>
result<T, diagnostics> load_string(std::string_view text, std::string_view name = "<string>",
                                   positions* pos = nullptr) {
  YAML::Node node;
  try {
    node = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return failure(detail::syntax_error(std::string(name), e));
  }
  return decode<T>(node, name, pos);
}

/// Reads the whole file into memory; "file: cannot read: reason" when that fails.
inline result<std::string, diagnostics> read_text_file(const std::filesystem::path& path) {
  std::error_code dir_ec;
  if (std::filesystem::is_directory(path, dir_ec)) {
    diagnostics d;
    d.add(path.string(), {}, error::unreadable, "cannot read: is a directory");
    return failure(std::move(d));
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    diagnostics d;
    d.add(path.string(), {}, error::unreadable, std::string("cannot read: ") + (err ? std::strerror(err) : "open failed"));
    return failure(std::move(d));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    diagnostics d;
    d.add(path.string(), {}, error::unreadable, "cannot read: I/O error");
    return failure(std::move(d));
  }
  return std::move(ss).str();
}

/// Reads, parses and decodes a file; diagnostics name it as given.
template <reflected T>
result<T, diagnostics> load_file(const std::filesystem::path& path, positions* pos = nullptr) {
  auto text = read_text_file(path);
  if (!text) return failure(std::move(text).error());
  return load_string<T>(*text, path.string(), pos);
}

/// A loader that reads one file with load_file<T> (for config::reloader).
template <reflected T>
std::function<result<T, diagnostics>()> file_loader(std::filesystem::path path) {
  return [path = std::move(path)] { return load_file<T>(path); };
}

}  // namespace rproxy::config
