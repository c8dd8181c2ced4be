// rproxy/core/result.hpp: a value or an error, for synchronous code (parsing, config, lookups).
//
//     rproxy::result<int> parse_port(std::string_view s);
//     auto r = parse_port("80");
//     if (!r) log(r.error().message()); else use(*r);
//
// Asynchronous code reports errors through completion handlers (error_code first) instead.
#pragma once

#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace rproxy {

/// Tag that carries an error into a result: `return rproxy::failure(ec);`.
template <class E>
struct failure_t {
  E error;
};
template <class E>
failure_t<std::decay_t<E>> failure(E&& e) {
  return {std::forward<E>(e)};
}

template <class T, class E = std::error_code>
class [[nodiscard]] result {
public:
  using value_type = T;
  using error_type = E;

  template <class U = T>
    requires std::is_constructible_v<T, U&&> && (!std::is_same_v<std::decay_t<U>, result>)
  result(U&& v) : v_(std::in_place_index<0>, std::forward<U>(v)) {}  // NOLINT: implicit by design
  template <class G>
    requires std::is_constructible_v<E, G&&>
  result(failure_t<G> f) : v_(std::in_place_index<1>, std::move(f.error)) {}  // NOLINT

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const E& error() const& { return std::get<1>(v_); }
  E&& error() && { return std::get<1>(std::move(v_)); }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

private:
  std::variant<T, E> v_;
};

/// A result with no value: success, or an error.
template <class E>
class [[nodiscard]] result<void, E> {
public:
  using value_type = void;
  using error_type = E;

  result() = default;
  template <class G>
    requires std::is_constructible_v<E, G&&>
  result(failure_t<G> f) : err_(std::move(f.error)), ok_(false) {}  // NOLINT

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const E& error() const& { return err_; }

private:
  E err_{};
  bool ok_ = true;
};

}  // namespace rproxy
