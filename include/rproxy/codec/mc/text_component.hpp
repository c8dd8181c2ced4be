// rproxy/codec/mc/text_component.hpp: Minecraft JSON text components ("chat" JSON), as used by
// disconnect messages and the status description (MOTD).
//
//     mc::text_component("Server is starting, try again in a minute");
//         // {"text":"Server is starting, try again in a minute"}
//     mc::text_component("Banned", "red");         // {"text":"Banned","color":"red"}
//     mc::plain_text(R"({"text":"A ","extra":[{"text":"B","bold":true}]})");   // "A B"
//
// Legacy formatting codes (§ + char) inside the text are kept; clients still render them.
#pragma once

#include <string>
#include <string_view>

#include <rproxy/codec/mc/json.hpp>

namespace rproxy::codec::mc {

/// A text component showing `text` (UTF-8; \n makes a new line), optionally coloured with a
/// named colour ("red", "gold", ...) or "#rrggbb" (1.16+).
inline std::string text_component(std::string_view text, std::string_view color = {}) {
  std::string out = "{\"text\":";
  append_json_string(out, text);
  if (!color.empty()) {
    out += ",\"color\":";
    append_json_string(out, color);
  }
  out.push_back('}');
  return out;
}

namespace detail {
inline void flatten_component(std::string& out, const json_value& v) {
  switch (v.type) {
    case json_value::kind::string: out += v.str; return;
    case json_value::kind::array:
      for (const auto& item : v.items) flatten_component(out, item);
      return;
    case json_value::kind::object: {
      if (const auto* t = v.find("text"); t && t->is(json_value::kind::string)) {
        out += t->str;
      } else if (const auto* k = v.find("translate"); k && k->is(json_value::kind::string)) {
        out += k->str;
      }
      if (const auto* extra = v.find("extra")) flatten_component(out, *extra);
      return;
    }
    default: return;
  }
}
}  // namespace detail

/// The text of a component without formatting: "text" (or the "translate" key) of each part, in
/// order, through "extra". Text that is not valid JSON is returned as is.
inline std::string plain_text(std::string_view component_json) {
  auto v = parse_json(component_json);
  if (!v) return std::string(component_json);
  std::string out;
  detail::flatten_component(out, *v);
  return out;
}

}  // namespace rproxy::codec::mc
