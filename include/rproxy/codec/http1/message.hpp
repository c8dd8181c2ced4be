// rproxy/codec/http1/message.hpp: HTTP/1.x message heads, as views and as owning values.
//
// The parser hands out `request_head_view` / `response_head_view`: string_views into the
// caller's receive buffer, valid until the caller discards those bytes. `request_head` /
// `response_head` own their storage (for the serializer, for keeping a head, for tests):
//
//     http1::request_head h{"GET", "/index.html"};
//     h.fields.add("Host", "example.com").add("Accept", "*/*");
//     if (auto host = h.fields.find("host")) use(*host);   // case-insensitive, first match
//     auto kept = http1::request_head::from(parser.head());  // copy a parsed head
//
// Field containers keep insertion order and duplicates; lookups ignore ASCII case.
#pragma once

#include <rproxy/codec/http1/detail/chars.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rproxy::codec::http1 {

enum class http_version : std::uint8_t { http10 = 10, http11 = 11 };

constexpr std::string_view to_string(http_version v) noexcept {
  return v == http_version::http10 ? "HTTP/1.0" : "HTTP/1.1";
}

/// The protocol a request head arrived in. The HTTP/2 and HTTP/3 codecs map their requests onto
/// an HTTP/1.1 head (`version` http11, so stages and HTTP/1.1 backends see one shape) and say
/// here what the client spoke (metrics by protocol).
enum class wire_protocol : std::uint8_t { http1, h2, h3 };

/// One field line, as views into a buffer.
struct field_view {
  std::string_view name;
  std::string_view value;
  friend bool operator==(const field_view&, const field_view&) = default;
};

/// One field line that owns its text.
struct field {
  std::string name;
  std::string value;
  friend bool operator==(const field&, const field&) = default;
};

namespace detail {

/// Lookup shared by both containers (Derived has begin() / end() over name/value records).
template <class Derived>
class field_lookup {
public:
  /// Value of the first field named `name` (ASCII case-insensitive), if any.
  std::optional<std::string_view> find(std::string_view name) const noexcept {
    for (const auto& f : self())
      if (iequals(f.name, name)) return std::string_view(f.value);
    return std::nullopt;
  }
  std::size_t count(std::string_view name) const noexcept {
    std::size_t n = 0;
    for (const auto& f : self()) n += iequals(f.name, name) ? 1 : 0;
    return n;
  }
  bool contains(std::string_view name) const noexcept { return find(name).has_value(); }
  /// True when a comma-separated field `name` (over all its lines) lists `token`.
  bool has_token(std::string_view name, std::string_view token) const {
    for (const auto& f : self())
      if (iequals(f.name, name) && list_contains(f.value, token)) return true;
    return false;
  }

private:
  const Derived& self() const noexcept { return static_cast<const Derived&>(*this); }
};

}  // namespace detail

/// A read-only sequence of field views (the parser's headers and trailers).
class fields_view : public detail::field_lookup<fields_view> {
public:
  constexpr fields_view() noexcept = default;
  constexpr explicit fields_view(std::span<const field_view> list) noexcept : list_(list) {}

  auto begin() const noexcept { return list_.begin(); }
  auto end() const noexcept { return list_.end(); }
  std::size_t size() const noexcept { return list_.size(); }
  bool empty() const noexcept { return list_.empty(); }
  const field_view& operator[](std::size_t i) const noexcept { return list_[i]; }

private:
  std::span<const field_view> list_{};
};

/// True when `name` is a valid field name (a token).
constexpr bool is_valid_field_name(std::string_view name) noexcept {
  return detail::is_token(name);
}
/// True when `value` is a valid field value as the parser would return it: field-vchar, SP,
/// HTAB only (no CR, LF, NUL or other controls) and no leading or trailing whitespace.
constexpr bool is_valid_field_value(std::string_view value) noexcept {
  return detail::is_field_value(value);
}

/// An owning, ordered field list. add()/set() reject invalid names or values with
/// std::invalid_argument (a programmer error: check untrusted text with is_valid_field_*).
/// clear() keeps the lines' storage for the next ones, so a list kept across messages (a
/// head rebuilt per request on one connection) stops allocating once it has grown.
class fields : public detail::field_lookup<fields> {
public:
  fields() = default;
  fields(std::initializer_list<std::pair<std::string_view, std::string_view>> init) {
    for (const auto& [n, v] : init) add(n, v);
  }
  /// Copies a view (the parser's fields are valid already).
  static fields from(const fields_view& v) {
    fields f;
    f.list_.reserve(v.size());
    for (const auto& x : v) f.append(x.name, x.value);
    return f;
  }

  /// Appends a field line (duplicates are kept).
  fields& add(std::string_view name, std::string_view value) {
    check(name, value);
    append(name, value);
    return *this;
  }
  /// Replaces every field `name` by one line with `value`, at the first one's position.
  fields& set(std::string_view name, std::string_view value) {
    check(name, value);
    bool done = false;
    remove_if([&](field& f) {
      if (!detail::iequals(f.name, name)) return false;
      if (done) return true;
      f.value.assign(value);
      done = true;
      return false;
    });
    if (!done) append(name, value);
    return *this;
  }
  /// Removes every field `name`; returns how many lines were removed.
  std::size_t erase(std::string_view name) {
    return remove_if([&](const field& f) { return detail::iequals(f.name, name); });
  }
  void clear() noexcept { n_ = 0; }

  auto begin() const noexcept { return list_.begin(); }
  auto end() const noexcept { return list_.begin() + static_cast<std::ptrdiff_t>(n_); }
  std::size_t size() const noexcept { return n_; }
  bool empty() const noexcept { return n_ == 0; }
  const field& operator[](std::size_t i) const noexcept { return list_[i]; }

  friend bool operator==(const fields& a, const fields& b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

private:
  static void check(std::string_view name, std::string_view value) {
    if (!is_valid_field_name(name))
      throw std::invalid_argument("http1::fields: invalid field name");
    if (!is_valid_field_value(value))
      throw std::invalid_argument("http1::fields: invalid field value");
  }
  /// A line at the end, in a kept slot when there is one (its strings' storage reused).
  void append(std::string_view name, std::string_view value) {
    if (n_ < list_.size()) {
      list_[n_].name.assign(name);
      list_[n_].value.assign(value);
    } else {
      list_.push_back({std::string(name), std::string(value)});
    }
    ++n_;
  }
  /// Drops the lines `pred` selects, keeping the order of the others; the dropped slots stay
  /// past the end for reuse. Returns how many were dropped.
  template <class Pred>
  std::size_t remove_if(Pred pred) {
    const auto first = list_.begin(), last = first + static_cast<std::ptrdiff_t>(n_);
    auto out = first;
    for (auto it = first; it != last; ++it) {
      if (pred(*it)) continue;
      if (out != it) std::swap(*out, *it);  // (a swap: the dropped line's storage is kept)
      ++out;
    }
    const auto kept = static_cast<std::size_t>(out - first);
    const auto dropped = n_ - kept;
    n_ = kept;
    return dropped;
  }

  std::vector<field> list_;  ///< [0, n_) are the lines; the rest are kept slots
  std::size_t n_ = 0;
};

/// A parsed request head: views into the receive buffer.
struct request_head_view {
  std::string_view method;
  std::string_view target;
  http_version version = http_version::http11;
  fields_view fields;
  wire_protocol wire = wire_protocol::http1;  ///< h2, h3: mapped from those codecs
};

/// A parsed response head: views into the receive buffer.
struct response_head_view {
  http_version version = http_version::http11;
  unsigned status = 0;
  std::string_view reason;
  fields_view fields;
};

/// A request head that owns its storage.
struct request_head {
  std::string method = "GET";
  std::string target = "/";
  http_version version = http_version::http11;
  http1::fields fields{};

  static request_head from(const request_head_view& v) {
    return {std::string(v.method), std::string(v.target), v.version, http1::fields::from(v.fields)};
  }
  friend bool operator==(const request_head&, const request_head&) = default;
};

/// A response head that owns its storage.
struct response_head {
  unsigned status = 200;
  std::string reason = "OK";
  http_version version = http_version::http11;
  http1::fields fields{};

  static response_head from(const response_head_view& v) {
    return {v.status, std::string(v.reason), v.version, http1::fields::from(v.fields)};
  }
  friend bool operator==(const response_head&, const response_head&) = default;
};

}  // namespace rproxy::codec::http1
