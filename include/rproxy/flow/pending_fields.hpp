// rproxy/flow/pending_fields.hpp: header fields a stage leaves for a message (set, add, remove,
// add a token), applied by the HTTP flows (flow/http1.hpp, flow/h2.hpp) when they build the
// head that goes out. Part of http_flow (flow/http_flow.hpp): request_fields, response_fields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>

namespace rproxy::flow {

/// Fields a stage leaves for a message, checked when they are used (an invalid name or value
/// is left out, never sent): set() replaces a field of the same name (case-insensitive);
/// add() adds one, keeping those there; remove() drops every field of a name; add_token()
/// lists a token in a comma-separated field (Vary: Origin) unless it is there. They apply in
/// the order they were left (a route's edits: remove, then set, then add).
class pending_fields {
public:
  void set(std::string_view name, std::string_view value) {
    for (std::size_t at = 0; at < text_.size(); at = next(at))
      if (const auto e = read(at); e.what == op::set && codec::http1::detail::iequals(e.name, name)) {
        text_.replace(at + header + e.name.size(), e.value.size(), value);
        put_size(at + 1 + sizeof(std::uint32_t), value.size());
        return;
      }
    push(op::set, name, value);
  }
  void add(std::string_view name, std::string_view value) { push(op::add, name, value); }
  void remove(std::string_view name) { push(op::remove, name, {}); }
  void add_token(std::string_view name, std::string_view token) { push(op::token, name, token); }
  /// Whether a stage sets or removes `name` (the client's own field of that name is then dropped).
  bool contains(std::string_view name) const noexcept {
    for (std::size_t at = 0; at < text_.size(); at = next(at))
      if (const auto e = read(at); (e.what == op::set || e.what == op::remove) && codec::http1::detail::iequals(e.name, name))
        return true;
    return false;
  }
  /// What the last entry that sets or removes `name` leaves: nullopt when none does, an empty
  /// view when it removes the field (or sets it empty), else the value set. For a stage that
  /// edits a field another stage may have edited first (a Cookie without a credential).
  std::optional<std::string_view> last_set(std::string_view name) const noexcept {
    std::optional<std::string_view> out;
    for (std::size_t at = 0; at < text_.size(); at = next(at))
      if (const auto e = read(at); (e.what == op::set || e.what == op::remove) && codec::http1::detail::iequals(e.name, name))
        out = e.what == op::set ? e.value : std::string_view();
    return out;
  }
  /// Applies each valid entry to `out` (a set or add without a value does nothing).
  void apply(codec::http1::fields& out) const {
    for (std::size_t at = 0; at < text_.size(); at = next(at)) {
      const auto e = read(at);
      if (!codec::http1::is_valid_field_name(e.name)) continue;
      if (e.what == op::remove) {
        out.erase(e.name);
        continue;
      }
      if (e.value.empty() || !codec::http1::is_valid_field_value(e.value)) continue;
      switch (e.what) {
        case op::set: out.set(e.name, e.value); break;
        case op::add: out.add(e.name, e.value); break;
        default:
          if (!out.has_token(e.name, e.value)) out.add(e.name, e.value);
      }
    }
  }
  void clear() noexcept { text_.clear(); }

private:
  enum class op : std::uint8_t { set, add, remove, token };
  struct entry {
    op what;
    std::string_view name, value;
  };
  // The entries, in the order they were left, back to back in one buffer (one allocation for a
  // request's few fields, where a list of strings took one per field and more): each is its op
  // (1 byte), its name's and value's sizes (4 bytes each), then the name and the value.
  static constexpr std::size_t header = 1 + 2 * sizeof(std::uint32_t);

  void push(op what, std::string_view name, std::string_view value) {
    if (name.size() > UINT32_MAX || value.size() > UINT32_MAX) return;  // (never a valid field)
    if (inside(name) || inside(value)) {  // (a view of an entry: growing the buffer would move it)
      const std::string copy = std::string(name).append(value);
      return push(what, std::string_view(copy).substr(0, name.size()), std::string_view(copy).substr(name.size()));
    }
    if (text_.capacity() < 256) text_.reserve(256);
    const std::size_t at = text_.size();
    text_.resize(at + header);
    text_[at] = static_cast<char>(what);
    put_size(at + 1, name.size());
    put_size(at + 1 + sizeof(std::uint32_t), value.size());
    text_.append(name);
    text_.append(value);
  }
  bool inside(std::string_view v) const noexcept {
    return !v.empty() && std::less_equal<const char*>()(text_.data(), v.data()) &&
           std::less<const char*>()(v.data(), text_.data() + text_.size());
  }
  void put_size(std::size_t at, std::size_t n) noexcept {
    const auto v = static_cast<std::uint32_t>(n);
    std::memcpy(text_.data() + at, &v, sizeof v);
  }
  std::size_t get_size(std::size_t at) const noexcept {
    std::uint32_t v;
    std::memcpy(&v, text_.data() + at, sizeof v);
    return v;
  }
  entry read(std::size_t at) const noexcept {
    const std::size_t n = get_size(at + 1), v = get_size(at + 1 + sizeof(std::uint32_t));
    const std::string_view t(text_);
    return {static_cast<op>(text_[at]), t.substr(at + header, n), t.substr(at + header + n, v)};
  }
  std::size_t next(std::size_t at) const noexcept {
    return at + header + get_size(at + 1) + get_size(at + 1 + sizeof(std::uint32_t));
  }

  std::string text_;
};

}  // namespace rproxy::flow
