// Test helper for the observe tests: a tiny strict JSON parser (RFC 8259) written independently
// of the library, so log lines are checked against the grammar, not against our own escaper.
// Objects keep member order; parse_json() returns nullopt on any syntax error or invalid UTF-8.
#pragma once

#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace test_json {

struct member;

struct value {
  enum class kind { null, boolean, number, string, array, object } k = kind::null;
  bool b = false;
  double n = 0;
  std::string s;  // decoded string, or the number's text
  std::vector<value> items;
  std::vector<member> members;

  const value* get(std::string_view key) const;
  std::size_t count(std::string_view key) const;
};

struct member {
  std::string key;
  value val;
};

inline const value* value::get(std::string_view key) const {
  for (const auto& m : members)
    if (m.key == key) return &m.val;
  return nullptr;
}
inline std::size_t value::count(std::string_view key) const {
  std::size_t c = 0;
  for (const auto& m : members) c += m.key == key;
  return c;
}

class parser {
public:
  explicit parser(std::string_view in) : in_(in) {}

  std::optional<value> parse() {
    value v;
    ws();
    if (!parse_value(v, 0)) return std::nullopt;
    ws();
    if (pos_ != in_.size()) return std::nullopt;
    return v;
  }

private:
  void ws() {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r'))
      ++pos_;
  }
  bool eat(char c) {
    if (pos_ < in_.size() && in_[pos_] == c) return ++pos_, true;
    return false;
  }
  bool literal(std::string_view lit) {
    if (in_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }

  bool parse_value(value& v, int depth) {
    if (depth > 64 || pos_ >= in_.size()) return false;
    switch (in_[pos_]) {
      case '{': return parse_object(v, depth);
      case '[': return parse_array(v, depth);
      case '"': v.k = value::kind::string; return parse_string(v.s);
      case 't': v.k = value::kind::boolean; v.b = true; return literal("true");
      case 'f': v.k = value::kind::boolean; return literal("false");
      case 'n': return literal("null");
      default: return parse_number(v);
    }
  }

  bool parse_object(value& v, int depth) {
    v.k = value::kind::object;
    ++pos_;
    ws();
    if (eat('}')) return true;
    for (;;) {
      ws();
      std::string key;
      if (pos_ >= in_.size() || in_[pos_] != '"' || !parse_string(key)) return false;
      ws();
      if (!eat(':')) return false;
      ws();
      value m;
      if (!parse_value(m, depth + 1)) return false;
      v.members.push_back({std::move(key), std::move(m)});
      ws();
      if (eat('}')) return true;
      if (!eat(',')) return false;
    }
  }

  bool parse_array(value& v, int depth) {
    v.k = value::kind::array;
    ++pos_;
    ws();
    if (eat(']')) return true;
    for (;;) {
      ws();
      value item;
      if (!parse_value(item, depth + 1)) return false;
      v.items.push_back(std::move(item));
      ws();
      if (eat(']')) return true;
      if (!eat(',')) return false;
    }
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  bool parse_number(value& v) {
    const std::size_t start = pos_;
    eat('-');
    if (pos_ >= in_.size()) return false;
    if (in_[pos_] == '0') ++pos_;
    else if (digit(in_[pos_])) while (pos_ < in_.size() && digit(in_[pos_])) ++pos_;
    else return false;
    if (eat('.')) {
      if (pos_ >= in_.size() || !digit(in_[pos_])) return false;
      while (pos_ < in_.size() && digit(in_[pos_])) ++pos_;
    }
    if (pos_ < in_.size() && (in_[pos_] == 'e' || in_[pos_] == 'E')) {
      ++pos_;
      if (!eat('+')) eat('-');
      if (pos_ >= in_.size() || !digit(in_[pos_])) return false;
      while (pos_ < in_.size() && digit(in_[pos_])) ++pos_;
    }
    v.k = value::kind::number;
    v.s = std::string(in_.substr(start, pos_ - start));
    std::istringstream is(v.s);
    is >> v.n;
    return true;
  }

  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) out.push_back(static_cast<char>(cp));
    else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool hex4(std::uint32_t& out) {
    if (pos_ + 4 > in_.size()) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = in_[pos_++];
      out <<= 4;
      if (digit(c)) out |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') out |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') out |= static_cast<std::uint32_t>(c - 'A' + 10);
      else return false;
    }
    return true;
  }

  // Strict: no raw control characters, valid escapes, valid UTF-8 (no overlongs, surrogates).
  bool parse_string(std::string& out) {
    ++pos_;  // opening quote
    while (pos_ < in_.size()) {
      const auto c = static_cast<unsigned char>(in_[pos_]);
      if (c == '"') return ++pos_, true;
      if (c < 0x20) return false;
      if (c == '\\') {
        if (++pos_ >= in_.size()) return false;
        const char e = in_[pos_++];
        switch (e) {
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case '/': out += '/'; break;
          case 'b': out += '\b'; break;
          case 'f': out += '\f'; break;
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case 'u': {
            std::uint32_t cp = 0;
            if (!hex4(cp)) return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              std::uint32_t lo = 0;
              if (!literal("\\u") || !hex4(lo) || lo < 0xDC00 || lo > 0xDFFF) return false;
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              return false;
            }
            put_utf8(out, cp);
            break;
          }
          default: return false;
        }
        continue;
      }
      if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      std::size_t n = 0;
      std::uint32_t cp = 0;
      if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
      else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
      else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
      else return false;
      if (pos_ + n > in_.size()) return false;
      for (std::size_t k = 1; k < n; ++k) {
        const auto cc = static_cast<unsigned char>(in_[pos_ + k]);
        if ((cc & 0xC0) != 0x80) return false;
        cp = (cp << 6) | (cc & 0x3F);
      }
      static constexpr std::uint32_t min_for[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < min_for[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
      out.append(in_.substr(pos_, n));
      pos_ += n;
    }
    return false;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
};

inline std::optional<value> parse_json(std::string_view s) { return parser(s).parse(); }

/// Splits text into lines (without the '\n'); a trailing newline ends the last line.
inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

}  // namespace test_json
