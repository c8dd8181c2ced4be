// rproxy/codec/mc/text_component.hpp: Minecraft JSON text components ("chat" JSON), as used by
// disconnect messages and the status description (MOTD).
//
//     mc::text_component("Server is starting, try again in a minute");
//         // {"text":"Server is starting, try again in a minute"}
//     mc::text_component("Banned", "red");         // {"text":"Banned","color":"red"}
//     mc::plain_text(R"({"text":"A ","extra":[{"text":"B","bold":true}]})");   // "A B"
//
// Legacy formatting codes (§ + char) inside the text are kept; clients still render them.
// JSON is read and written with rproxy/core/json.hpp (strict: duplicate member names, invalid
// UTF-8 and lone surrogate escapes are refused), within mc::json_limits.
#pragma once

#include <string>
#include <string_view>

#include <rproxy/core/json.hpp>

namespace rproxy::codec::mc {

/// Bounds for the JSON codec/mc reads (status responses, text components): a status string is at
/// most 32767 UTF-16 units, so at most 3 * 32767 bytes of UTF-8; these leave room for that.
inline constexpr json::limits json_limits{256 * 1024, 64, 64 * 1024};

/// A text component showing `text` (UTF-8; \n makes a new line), optionally coloured with a
/// named colour ("red", "gold", ...) or "#rrggbb" (1.16+).
inline std::string text_component(std::string_view text, std::string_view color = {}) {
  std::string out = "{\"text\":";
  json::append_string(out, text);
  if (!color.empty()) {
    out += ",\"color\":";
    json::append_string(out, color);
  }
  out.push_back('}');
  return out;
}

namespace detail {
inline void flatten_component(std::string& out, json::value v) {
  switch (v.type()) {
    case json::kind::string: out += v.as_string(); return;
    case json::kind::array:
      for (json::value item : v.children()) flatten_component(out, item);
      return;
    case json::kind::object: {
      if (auto t = v.find("text"); t && t->is_string()) {
        out += t->as_string();
      } else if (auto k = v.find("translate"); k && k->is_string()) {
        out += k->as_string();
      }
      if (auto extra = v.find("extra")) flatten_component(out, *extra);
      return;
    }
    default: return;
  }
}
}  // namespace detail

/// The text of a component without formatting: "text" (or the "translate" key) of each part, in
/// order, through "extra". Text that is not valid JSON is returned as is.
inline std::string plain_text(std::string_view component_json) {
  auto doc = json::parse(component_json, json_limits);
  if (!doc) return std::string(component_json);
  std::string out;
  detail::flatten_component(out, doc->root());
  return out;
}

}  // namespace rproxy::codec::mc
