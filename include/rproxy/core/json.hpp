// rproxy/core/json.hpp: the project's one strict JSON reader (RFC 8259) and JSON string writer.
// It reads network-facing text (JWT headers and claims, JWKS files, Minecraft status responses
// and text components), so it is bounded and fuzzed (tests/fuzz/jwt.cpp, tests/fuzz/mc_status.cpp):
//
//   - input size, nesting depth and node count are limited (json::limits);
//   - strings must be valid UTF-8 (core/utf8.hpp), escapes are decoded (\uXXXX with surrogate
//     pairs; a lone surrogate is refused), control characters are refused; a member name that
//     repeats in one object is an error;
//   - numbers follow the JSON grammar exactly and must fit a double (their text is kept too);
//     no trailing commas, comments, NaN, single quotes or trailing bytes.
//
//     auto doc = rproxy::json::parse(R"({"sub":"alice","aud":["a","b"]})");
//     if (!doc) return doc.error();                 // rproxy::json::error::*
//     auto sub = doc->root().find("sub");            // std::optional<json::value>
//     if (sub && sub->is_string()) use(sub->as_string());
//     for (json::value a : doc->root().find("aud")->children()) ...
//     std::string out;
//     json::append_string(out, "say \"hi\"\n");        // "say \"hi\"\n", escaped and quoted
//     json::dump(doc->root());                       // compact text, same escaping
//
// A document owns one node vector and one string arena; json::value is a cheap view into it.
// Areas map json::error to their own codes (middleware::error::json_*, codec::mc::error::bad_json).
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <rproxy/core/error.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/core/utf8.hpp>

namespace rproxy::json {

enum class error {
  syntax = 1,     ///< not strict JSON (RFC 8259)
  too_deep,       ///< nesting deeper than limits::max_depth
  too_large,      ///< input over limits::max_bytes or node count over limits::max_nodes
  duplicate_key,  ///< an object with the same member name twice
  bad_encoding,   ///< invalid UTF-8, bad escape, lone surrogate or control character in a string
};

namespace detail {
class error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.json"; }
  std::string message(int c) const override {
    switch (static_cast<error>(c)) {
      case error::syntax: return "malformed JSON";
      case error::too_deep: return "JSON nested too deeply";
      case error::too_large: return "JSON too large";
      case error::duplicate_key: return "JSON object has a duplicate member name";
      case error::bad_encoding: return "JSON string is not valid UTF-8 or has a bad escape";
    }
    return "unknown rproxy.json error";
  }
  // The text read was wrong; whoever sent it, nothing was forwarded because of it.
  rproxy::condition source(int) const noexcept override { return rproxy::condition::downstream; }
  bool retry_safe(int) const noexcept override { return true; }
};
}  // namespace detail

inline const std::error_category& error_category() noexcept {
  static const detail::error_category c;
  return c;
}

inline std::error_code make_error_code(error e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace rproxy::json

template <>
struct std::is_error_code_enum<rproxy::json::error> : std::true_type {};

namespace rproxy::json {

enum class kind : std::uint8_t { null, boolean, number, string, array, object };

/// Bounds on what the reader accepts.
struct limits {
  std::size_t max_bytes = 16 * 1024;  ///< input size
  std::size_t max_depth = 16;         ///< nesting of arrays and objects (the root is depth 1)
  std::size_t max_nodes = 2048;       ///< values in the document, members and elements included
};

class document;

namespace detail {
struct node {
  kind type = kind::null;
  bool boolean = false;
  double number = 0;
  std::uint32_t key_off = 0, key_len = 0;  ///< member name in the arena (object members only)
  std::uint32_t str_off = 0, str_len = 0;  ///< string value, or a number's text, in the arena
  std::uint32_t first = 0;                 ///< first child (0: none; the root is node 0)
  std::uint32_t next = 0;                  ///< next sibling (0: none)
  std::uint32_t count = 0;                 ///< number of children
};
class parser;
}  // namespace detail

/// A view of one value of a document; valid while the document lives.
class value {
public:
  value() = default;

  kind type() const noexcept { return n().type; }
  bool is_null() const noexcept { return type() == kind::null; }
  bool is_bool() const noexcept { return type() == kind::boolean; }
  bool is_number() const noexcept { return type() == kind::number; }
  bool is_string() const noexcept { return type() == kind::string; }
  bool is_array() const noexcept { return type() == kind::array; }
  bool is_object() const noexcept { return type() == kind::object; }

  bool as_bool() const noexcept { return n().boolean; }
  double as_number() const noexcept { return n().number; }
  /// A string's decoded text, or a number's text exactly as written.
  std::string_view as_string() const noexcept;
  /// A number written as an integer (no fraction or exponent) in [min, max], else nullopt.
  std::optional<std::int64_t> as_int(std::int64_t min = INT64_MIN, std::int64_t max = INT64_MAX) const noexcept;
  /// The member name when this value is an object member, else empty.
  std::string_view key() const noexcept;

  /// Elements of an array or members of an object.
  std::size_t size() const noexcept { return n().count; }

  /// The member `name` of an object (nullopt when absent or not an object).
  std::optional<value> find(std::string_view name) const noexcept;

  class iterator {
  public:
    using value_type = json::value;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    json::value operator*() const noexcept { return json::value(doc_, i_); }
    iterator& operator++() noexcept;
    iterator operator++(int) noexcept {
      auto t = *this;
      ++*this;
      return t;
    }
    friend bool operator==(const iterator& a, const iterator& b) noexcept { return a.i_ == b.i_; }

  private:
    friend class json::value;
    iterator(const document* d, std::uint32_t i) : doc_(d), i_(i) {}
    const document* doc_ = nullptr;
    std::uint32_t i_ = 0;  // 0: end
  };
  struct range {
    iterator b, e;
    iterator begin() const noexcept { return b; }
    iterator end() const noexcept { return e; }
  };
  /// Elements or members, in document order.
  range children() const noexcept;

private:
  friend class document;
  value(const document* d, std::uint32_t i) : doc_(d), i_(i) {}
  const detail::node& n() const noexcept;
  const document* doc_ = nullptr;
  std::uint32_t i_ = 0;
};

/// A parsed JSON text.
class document {
public:
  value root() const noexcept { return value(this, 0); }
  std::size_t node_count() const noexcept { return nodes_.size(); }

private:
  friend class value;
  friend class detail::parser;
  std::vector<detail::node> nodes_;
  std::string arena_;
};

inline const detail::node& value::n() const noexcept { return doc_->nodes_[i_]; }
inline std::string_view value::as_string() const noexcept {
  const auto& x = n();
  return std::string_view(doc_->arena_).substr(x.str_off, x.str_len);
}
inline std::optional<std::int64_t> value::as_int(std::int64_t min, std::int64_t max) const noexcept {
  if (!is_number()) return std::nullopt;
  const std::string_view text = as_string();
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p != text.data() + text.size() || v < min || v > max) return std::nullopt;
  return v;
}
inline std::string_view value::key() const noexcept {
  const auto& x = n();
  return std::string_view(doc_->arena_).substr(x.key_off, x.key_len);
}
inline value::iterator& value::iterator::operator++() noexcept {
  i_ = doc_->nodes_[i_].next;
  return *this;
}
inline value::range value::children() const noexcept {
  const auto& x = n();
  if (x.type != kind::array && x.type != kind::object) return {};
  return {iterator(doc_, x.first), iterator(doc_, 0)};
}
inline std::optional<value> value::find(std::string_view name) const noexcept {
  if (!is_object()) return std::nullopt;
  for (value m : children())
    if (m.key() == name) return m;
  return std::nullopt;
}

namespace detail {

class parser {
public:
  parser(std::string_view in, const limits& lim, document& doc) : in_(in), lim_(lim), doc_(doc) {}

  std::error_code run() {
    if (in_.size() > lim_.max_bytes || in_.size() > 0xFFFFFFF0u) return error::too_large;
    doc_.nodes_.reserve(16);
    doc_.arena_.reserve(in_.size());
    skip_ws();
    if (auto ec = parse_value(1)) return ec;
    skip_ws();
    if (pos_ != in_.size()) return error::syntax;
    return {};
  }

private:
  bool at_end() const noexcept { return pos_ >= in_.size(); }
  char peek() const noexcept { return in_[pos_]; }

  void skip_ws() noexcept {
    while (!at_end()) {
      char c = peek();
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }

  std::error_code new_node(kind k, std::uint32_t& out) {
    if (doc_.nodes_.size() >= lim_.max_nodes) return error::too_large;
    out = static_cast<std::uint32_t>(doc_.nodes_.size());
    doc_.nodes_.push_back(node{});
    doc_.nodes_.back().type = k;
    return {};
  }

  bool literal(std::string_view word) noexcept {
    if (in_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // Parses one value into a new node; `idx` receives its index.
  std::error_code parse_value(std::size_t depth, std::uint32_t* idx = nullptr) {
    if (at_end()) return error::syntax;
    std::uint32_t me = 0;
    char c = peek();
    std::error_code ec;
    switch (c) {
      case '{': ec = parse_object(depth, me); break;
      case '[': ec = parse_array(depth, me); break;
      case '"': {
        if ((ec = new_node(kind::string, me))) return ec;
        std::uint32_t off = 0, len = 0;
        if ((ec = parse_string(off, len))) return ec;
        doc_.nodes_[me].str_off = off;
        doc_.nodes_[me].str_len = len;
        break;
      }
      case 't':
      case 'f':
        if ((ec = new_node(kind::boolean, me))) return ec;
        if (literal("true")) doc_.nodes_[me].boolean = true;
        else if (!literal("false")) return error::syntax;
        break;
      case 'n':
        if ((ec = new_node(kind::null, me))) return ec;
        if (!literal("null")) return error::syntax;
        break;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) {
          if ((ec = new_node(kind::number, me))) return ec;
          ec = parse_number(me);
        } else {
          return error::syntax;
        }
    }
    if (ec) return ec;
    if (idx) *idx = me;
    return {};
  }

  std::error_code parse_number(std::uint32_t me) {
    const std::size_t start = pos_;
    auto digit = [&] { return !at_end() && peek() >= '0' && peek() <= '9'; };
    if (peek() == '-') ++pos_;
    if (!digit()) return error::syntax;
    if (peek() == '0') {
      ++pos_;
    } else {
      while (digit()) ++pos_;
    }
    if (!at_end() && peek() == '.') {
      ++pos_;
      if (!digit()) return error::syntax;
      while (digit()) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (!digit()) return error::syntax;
      while (digit()) ++pos_;
    }
    std::string_view text = in_.substr(start, pos_ - start);
    double v = 0;
    std::int64_t i = 0;  // integers first: libstdc++'s from_chars for double is many times slower
    if (auto [ip, iec] = std::from_chars(text.data(), text.data() + text.size(), i);
        iec == std::errc{} && ip == text.data() + text.size()) {
      v = i == 0 && text.front() == '-' ? -0.0 : static_cast<double>(i);  // rounded to nearest, as strtod would
    } else {
      auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc{} || p != text.data() + text.size() || !std::isfinite(v)) return error::syntax;
    }
    auto& nd = doc_.nodes_[me];
    nd.number = v;
    nd.str_off = static_cast<std::uint32_t>(doc_.arena_.size());
    nd.str_len = static_cast<std::uint32_t>(text.size());
    doc_.arena_.append(text);
    return {};
  }

  bool hex4(std::uint32_t& v) noexcept {
    if (in_.size() - pos_ < 4) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = in_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else return false;
    }
    return true;
  }

  // A string starting at the opening quote; its decoded text is appended to the arena.
  std::error_code parse_string(std::uint32_t& off, std::uint32_t& len) {
    ++pos_;  // opening quote
    std::string& out = doc_.arena_;
    const std::size_t start = out.size();
    for (;;) {
      if (at_end()) return error::syntax;
      unsigned char c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        break;
      }
      if (c < 0x20) return error::bad_encoding;
      if (c == '\\') {
        ++pos_;
        if (at_end()) return error::syntax;
        char e = in_[pos_++];
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
            std::uint32_t cp = 0;
            if (!hex4(cp)) return error::bad_encoding;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return error::bad_encoding;  // lone low half
            if (cp >= 0xD800 && cp <= 0xDBFF) {
              std::uint32_t lo = 0;
              if (!literal("\\u") || !hex4(lo) || lo < 0xDC00 || lo > 0xDFFF)
                return error::bad_encoding;
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            utf8::append(out, cp);
            break;
          }
          default: return error::bad_encoding;
        }
      } else if (c < 0x80) {
        out.push_back(static_cast<char>(c));
        ++pos_;
      } else {
        const std::size_t s = pos_;
        if (!utf8::decode(in_, pos_)) return error::bad_encoding;
        out.append(in_.substr(s, pos_ - s));
      }
    }
    off = static_cast<std::uint32_t>(start);
    len = static_cast<std::uint32_t>(out.size() - start);
    return {};
  }

  void link_child(std::uint32_t parent, std::uint32_t& last, std::uint32_t child) {
    if (last == 0) doc_.nodes_[parent].first = child;
    else doc_.nodes_[last].next = child;
    last = child;
    ++doc_.nodes_[parent].count;
  }

  std::error_code parse_array(std::size_t depth, std::uint32_t& me) {
    if (depth > lim_.max_depth) return error::too_deep;
    if (auto ec = new_node(kind::array, me)) return ec;
    ++pos_;
    skip_ws();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return {};
    }
    std::uint32_t last = 0;
    for (;;) {
      skip_ws();
      std::uint32_t child = 0;
      if (auto ec = parse_value(depth + 1, &child)) return ec;
      link_child(me, last, child);
      skip_ws();
      if (at_end()) return error::syntax;
      char c = in_[pos_++];
      if (c == ']') return {};
      if (c != ',') return error::syntax;
    }
  }

  std::error_code parse_object(std::size_t depth, std::uint32_t& me) {
    if (depth > lim_.max_depth) return error::too_deep;
    if (auto ec = new_node(kind::object, me)) return ec;
    ++pos_;
    skip_ws();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return {};
    }
    std::uint32_t last = 0;
    std::size_t members = 0;
    for (;;) {
      skip_ws();
      if (at_end() || peek() != '"') return error::syntax;
      std::uint32_t koff = 0, klen = 0;
      if (auto ec = parse_string(koff, klen)) return ec;
      if (members < small_object) {  // a few members: compared as they come
        const std::string_view key = std::string_view(doc_.arena_).substr(koff, klen);
        for (std::uint32_t m = doc_.nodes_[me].first; m != 0; m = doc_.nodes_[m].next) {
          const auto& mn = doc_.nodes_[m];
          if (std::string_view(doc_.arena_).substr(mn.key_off, mn.key_len) == key) return error::duplicate_key;
        }
      }
      skip_ws();
      if (at_end() || peek() != ':') return error::syntax;
      ++pos_;
      skip_ws();
      std::uint32_t child = 0;
      if (auto ec = parse_value(depth + 1, &child)) return ec;
      doc_.nodes_[child].key_off = koff;
      doc_.nodes_[child].key_len = klen;
      link_child(me, last, child);
      ++members;
      skip_ws();
      if (at_end()) return error::syntax;
      char c = in_[pos_++];
      if (c == '}') return members > small_object ? unique_keys(me) : std::error_code{};
      if (c != ',') return error::syntax;
    }
  }

  // Objects with more members are checked once, at their end, by sorting the names:
  // O(n log n), where comparing each name with all before it would be quadratic.
  static constexpr std::size_t small_object = 8;
  std::error_code unique_keys(std::uint32_t obj) {
    keys_.clear();
    const std::string_view arena = doc_.arena_;
    for (std::uint32_t m = doc_.nodes_[obj].first; m != 0; m = doc_.nodes_[m].next)
      keys_.push_back(arena.substr(doc_.nodes_[m].key_off, doc_.nodes_[m].key_len));
    std::sort(keys_.begin(), keys_.end());
    if (std::adjacent_find(keys_.begin(), keys_.end()) != keys_.end()) return error::duplicate_key;
    return {};
  }

  std::string_view in_;
  const limits& lim_;
  document& doc_;
  std::size_t pos_ = 0;
  std::vector<std::string_view> keys_;  // unique_keys()' scratch
};

}  // namespace detail

/// Parses `text` strictly; the error is a json::error.
inline rproxy::result<document> parse(std::string_view text, const limits& lim = {}) {
  document doc;
  detail::parser p(text, lim, doc);
  if (auto ec = p.run()) return rproxy::failure(ec);
  return doc;
}

// --- writing -----------------------------------------------------------------------------------

/// Appends `s` (UTF-8) as a quoted JSON string (RFC 8259): `"` `\` and control characters
/// (and DEL) escaped, each invalid UTF-8 byte replaced by U+FFFD, everything else (including
/// non-ASCII) verbatim. `Buf` is std::string or anything with push_back and append(first,
/// last), e.g. fmt::memory_buffer (the logs write through this too: observe/escape.hpp).
template <class Buf>
void append_string(Buf& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";  // U+FFFD
  const auto put = [&](std::string_view t) { out.append(t.data(), t.data() + t.size()); };
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {  // a valid sequence verbatim, an invalid byte as U+FFFD
      const std::size_t start = i;
      put(utf8::decode(s, i) ? s.substr(start, i - start) : replacement);
      continue;
    }
    ++i;
    switch (c) {
      case '"': put("\\\""); continue;
      case '\\': put("\\\\"); continue;
      case '\n': put("\\n"); continue;
      case '\r': put("\\r"); continue;
      case '\t': put("\\t"); continue;
      case '\b': put("\\b"); continue;
      case '\f': put("\\f"); continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7F) {
      const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
      out.append(esc, esc + sizeof esc);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

/// Appends the compact text of `v` (no whitespace, members in document order, numbers as
/// written, strings escaped by append_string). Parsing the result gives the same document.
inline void append_compact(std::string& out, value v) {
  switch (v.type()) {
    case kind::null: out += "null"; return;
    case kind::boolean: out += v.as_bool() ? "true" : "false"; return;
    case kind::number: out += v.as_string(); return;
    case kind::string: append_string(out, v.as_string()); return;
    case kind::array:
    case kind::object: {
      const bool obj = v.is_object();
      out.push_back(obj ? '{' : '[');
      bool first = true;
      for (value c : v.children()) {
        if (!first) out.push_back(',');
        first = false;
        if (obj) {
          append_string(out, c.key());
          out.push_back(':');
        }
        append_compact(out, c);
      }
      out.push_back(obj ? '}' : ']');
      return;
    }
  }
}

/// The compact text of `v` (see append_compact).
inline std::string dump(value v) {
  std::string out;
  append_compact(out, v);
  return out;
}

}  // namespace rproxy::json
