// rproxy/flow/pending_fields.hpp: header fields a stage leaves for a message (set, add, remove,
// add a token), applied by the HTTP flows (flow/http1.hpp, flow/h2.hpp) when they build the
// head that goes out. Part of http_flow (flow/http_flow.hpp): request_fields, response_fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
    for (auto& e : list_)
      if (e.what == op::set && codec::http1::detail::iequals(e.f.name, name)) {
        e.f.value = std::string(value);
        return;
      }
    list_.push_back({{std::string(name), std::string(value)}, op::set});
  }
  void add(std::string_view name, std::string_view value) { list_.push_back({{std::string(name), std::string(value)}, op::add}); }
  void remove(std::string_view name) { list_.push_back({{std::string(name), {}}, op::remove}); }
  void add_token(std::string_view name, std::string_view token) {
    list_.push_back({{std::string(name), std::string(token)}, op::token});
  }
  /// Whether a stage sets or removes `name` (the client's own field of that name is then dropped).
  bool contains(std::string_view name) const noexcept {
    for (const auto& e : list_)
      if ((e.what == op::set || e.what == op::remove) && codec::http1::detail::iequals(e.f.name, name)) return true;
    return false;
  }
  /// What the last entry that sets or removes `name` leaves: nullopt when none does, an empty
  /// view when it removes the field (or sets it empty), else the value set. For a stage that
  /// edits a field another stage may have edited first (a Cookie without a credential).
  std::optional<std::string_view> last_set(std::string_view name) const noexcept {
    std::optional<std::string_view> out;
    for (const auto& e : list_)
      if ((e.what == op::set || e.what == op::remove) && codec::http1::detail::iequals(e.f.name, name))
        out = e.what == op::set ? std::string_view(e.f.value) : std::string_view();
    return out;
  }
  /// Applies each valid entry to `out` (a set or add without a value does nothing).
  void apply(codec::http1::fields& out) const {
    for (const auto& [f, what] : list_) {
      if (!codec::http1::is_valid_field_name(f.name)) continue;
      if (what == op::remove) {
        out.erase(f.name);
        continue;
      }
      if (f.value.empty() || !codec::http1::is_valid_field_value(f.value)) continue;
      switch (what) {
        case op::set: out.set(f.name, f.value); break;
        case op::add: out.add(f.name, f.value); break;
        default:
          if (!out.has_token(f.name, f.value)) out.add(f.name, f.value);
      }
    }
  }
  void clear() noexcept { list_.clear(); }

private:
  enum class op : std::uint8_t { set, add, remove, token };
  struct entry {
    codec::http1::field f;
    op what = op::set;
  };
  std::vector<entry> list_;
};

}  // namespace rproxy::flow
