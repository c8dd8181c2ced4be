// rproxy/config/schema.hpp: the shapes a config value can have, and how each is named in docs.
//
// A config type is one of:
//   - a scalar (scalar.hpp): bool, integers, numbers, strings, durations, sizes, endpoints, enums;
//   - std::optional<T>: may be absent or null;
//   - std::vector<T>: a YAML list;
//   - std::map<std::string, T>: a YAML mapping with keys chosen by the user (routes by name);
//   - a reflected struct (field.hpp): a YAML mapping with fixed keys.
// config_value<T> checks a type recursively:
//
//     static_assert(rproxy::config::config_value<my_config>);
//     rproxy::config::type_label<std::vector<std::chrono::seconds>>();   // "list of duration"
#pragma once

#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>

namespace rproxy::config {

namespace detail {
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};
template <class T>
struct is_string_map : std::false_type {};
template <class T, class C, class A>
struct is_string_map<std::map<std::string, T, C, A>> : std::true_type {};
}  // namespace detail

template <class T>
concept optional_value = detail::is_optional<T>::value;
template <class T>
concept list_value = detail::is_vector<T>::value;
template <class T>
concept map_value = detail::is_string_map<T>::value;

/// A type that decode() can read (checked shallowly; members are checked when used).
template <class T>
concept config_value = scalar<T> || optional_value<T> || list_value<T> || map_value<T> || reflected<T>;

/// How a type is named in docs and messages: "uint16", "list of endpoint", "map of route".
template <class T>
std::string type_label() {
  if constexpr (optional_value<T>) return type_label<typename T::value_type>();
  else if constexpr (list_value<T>) return "list of " + type_label<typename T::value_type>();
  else if constexpr (map_value<T>) return "map of " + type_label<typename T::mapped_type>();
  else if constexpr (reflected<T>) return detail::type_name<T>();
  else if constexpr (scalar<T>) return scalar_traits<T>::type_name();
  else static_assert(config_value<T>, "rproxy::config: not a config type; specialize rproxy::config::scalar_traits");
}

}  // namespace rproxy::config
