// rproxy/codec/mc/json.hpp: the little JSON codec/mc needs for status responses and text
// components: correct string escaping, and a strict, bounded parser into a small DOM.
//
//     std::string out;
//     mc::append_json_string(out, "say \"hi\"\n");      // "say \"hi\"\n" with the escapes
//     auto v = mc::parse_json(R"({"text":"hi"})");      // result<json_value>
//     v->find("text")->str;                             // "hi"
//     mc::dump(*v);                                     // compact form, same escaping
//
// Strings are UTF-8: invalid input bytes are written as U+FFFD, and \u escapes are decoded
// (an unpaired surrogate escape becomes U+FFFD). Numbers keep their exact text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/utf.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::codec::mc {

/// Appends `s` (UTF-8) as a quoted JSON string: `"` `\` and control characters escaped,
/// invalid UTF-8 replaced by U+FFFD, everything else verbatim.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  for_each_scalar(s, [&](char32_t cp) {
    switch (cp) {
      case '"': out += "\\\""; return;
      case '\\': out += "\\\\"; return;
      case '\b': out += "\\b"; return;
      case '\f': out += "\\f"; return;
      case '\n': out += "\\n"; return;
      case '\r': out += "\\r"; return;
      case '\t': out += "\\t"; return;
      default: break;
    }
    if (cp < 0x20) {
      out += "\\u00";
      out.push_back(hex[cp >> 4]);
      out.push_back(hex[cp & 0xF]);
    } else {
      append_utf8(out, cp);
    }
  });
  out.push_back('"');
}

/// A parsed JSON value. Objects keep their members in order (keys[i] names items[i]).
struct json_value {
  enum class kind : std::uint8_t { null, boolean, number, string, array, object };

  kind type = kind::null;
  bool boolean = false;
  std::string str;                ///< a string's value, or a number's exact text
  std::vector<std::string> keys;  ///< object member names
  std::vector<json_value> items;  ///< array elements, or object member values

  bool is(kind k) const noexcept { return type == k; }

  /// The first member named `key` of an object, or nullptr.
  const json_value* find(std::string_view key) const noexcept {
    if (type != kind::object) return nullptr;
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &items[i];
    return nullptr;
  }

  /// A number that is an integer in [min, max], or nullopt.
  std::optional<std::int64_t> as_int(std::int64_t min = INT32_MIN, std::int64_t max = INT32_MAX) const {
    if (type != kind::number || str.empty()) return std::nullopt;
    std::size_t i = str[0] == '-' ? 1 : 0;
    if (i == str.size()) return std::nullopt;
    std::int64_t v = 0;
    for (; i < str.size(); ++i) {
      const char c = str[i];
      if (c < '0' || c > '9') return std::nullopt;  // fraction or exponent
      if (v > (INT64_MAX - 9) / 10) return std::nullopt;
      v = v * 10 + (c - '0');
    }
    if (str[0] == '-') v = -v;
    if (v < min || v > max) return std::nullopt;
    return v;
  }

  friend bool operator==(const json_value&, const json_value&) = default;
};

namespace detail {

class json_parser {
public:
  json_parser(std::string_view in, std::size_t max_depth) : in_(in), max_depth_(max_depth) {}

  bool parse(json_value& out) {
    ws();
    if (!value(out, 0)) return false;
    ws();
    return pos_ == in_.size();
  }

private:
  void ws() {
    while (pos_ < in_.size() &&
           (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    if (pos_ < in_.size() && in_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  bool value(json_value& v, std::size_t depth) {
    if (pos_ >= in_.size() || depth > max_depth_) return false;
    switch (in_[pos_]) {
      case '{': return object(v, depth);
      case '[': return array(v, depth);
      case '"': v.type = json_value::kind::string; return string(v.str);
      case 't': v.type = json_value::kind::boolean; v.boolean = true; return literal("true");
      case 'f': v.type = json_value::kind::boolean; return literal("false");
      case 'n': v.type = json_value::kind::null; return literal("null");
      default: return number(v);
    }
  }

  bool object(json_value& v, std::size_t depth) {
    v.type = json_value::kind::object;
    ++pos_;
    ws();
    if (eat('}')) return true;
    for (;;) {
      ws();
      std::string key;
      if (pos_ >= in_.size() || in_[pos_] != '"' || !string(key)) return false;
      ws();
      if (!eat(':')) return false;
      ws();
      json_value item;
      if (!value(item, depth + 1)) return false;
      v.keys.push_back(std::move(key));
      v.items.push_back(std::move(item));
      ws();
      if (eat('}')) return true;
      if (!eat(',')) return false;
    }
  }

  bool array(json_value& v, std::size_t depth) {
    v.type = json_value::kind::array;
    ++pos_;
    ws();
    if (eat(']')) return true;
    for (;;) {
      ws();
      json_value item;
      if (!value(item, depth + 1)) return false;
      v.items.push_back(std::move(item));
      ws();
      if (eat(']')) return true;
      if (!eat(',')) return false;
    }
  }

  bool hex4(unsigned& u) {
    if (in_.size() - pos_ < 4) return false;
    u = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in_[pos_++];
      u <<= 4;
      if (c >= '0' && c <= '9') u |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') u |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') u |= static_cast<unsigned>(c - 'A' + 10);
      else return false;
    }
    return true;
  }

  bool string(std::string& out) {
    ++pos_;  // opening quote
    for (;;) {
      if (pos_ >= in_.size()) return false;
      const auto c = static_cast<unsigned char>(in_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return false;
      if (c != '\\') {
        const auto start = pos_;
        if (!detail::next_scalar(in_, pos_)) return false;  // invalid UTF-8
        out.append(in_.substr(start, pos_ - start));
        continue;
      }
      ++pos_;
      if (pos_ >= in_.size()) return false;
      const char e = in_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          unsigned u = 0;
          if (!hex4(u)) return false;
          char32_t cp = u;
          if (u >= 0xD800 && u <= 0xDBFF && in_.substr(pos_, 2) == "\\u") {
            const auto save = pos_;
            pos_ += 2;
            unsigned lo = 0;
            if (!hex4(lo)) return false;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + (((u - 0xD800) << 10) | (lo - 0xDC00));
            } else {
              pos_ = save;  // not a pair: the high surrogate alone becomes U+FFFD
            }
          }
          append_utf8(out, cp);  // lone surrogates become U+FFFD
          break;
        }
        default: return false;
      }
    }
  }

  bool digits() {
    const auto start = pos_;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }

  bool number(json_value& v) {
    const auto start = pos_;
    eat('-');
    if (pos_ >= in_.size()) return false;
    if (in_[pos_] == '0') {
      ++pos_;
    } else if (!digits()) {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
      ++pos_;
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    v.type = json_value::kind::number;
    v.str.assign(in_.substr(start, pos_ - start));
    return true;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
  std::size_t max_depth_;
};

inline void dump_to(std::string& out, const json_value& v) {
  switch (v.type) {
    case json_value::kind::null: out += "null"; return;
    case json_value::kind::boolean: out += v.boolean ? "true" : "false"; return;
    case json_value::kind::number: out += v.str; return;
    case json_value::kind::string: append_json_string(out, v.str); return;
    case json_value::kind::array:
      out.push_back('[');
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i) out.push_back(',');
        dump_to(out, v.items[i]);
      }
      out.push_back(']');
      return;
    case json_value::kind::object:
      out.push_back('{');
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i) out.push_back(',');
        append_json_string(out, v.keys[i]);
        out.push_back(':');
        dump_to(out, v.items[i]);
      }
      out.push_back('}');
      return;
  }
}

}  // namespace detail

/// Parses one JSON document (RFC 8259, UTF-8), nesting at most `max_depth` levels deep.
inline result<json_value> parse_json(std::string_view text, std::size_t max_depth = 64) {
  json_value v;
  detail::json_parser p{text, max_depth};
  if (!p.parse(v)) return failure(make_error_code(error::bad_json));
  return v;
}

/// The compact text of a value (no whitespace; strings escaped by append_json_string).
inline std::string dump(const json_value& v) {
  std::string out;
  detail::dump_to(out, v);
  return out;
}

}  // namespace rproxy::codec::mc
