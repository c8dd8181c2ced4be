// rproxy/config/scalar.hpp: how one YAML scalar becomes a C++ value, and back.
//
// Built in: bool, every integer type (range-checked), float/double, std::string,
// std::chrono durations ("250ms"), byte_size ("64KiB"), endpoint ("host:port") and enums that
// declare their names. Declare an enum's names next to it, found by argument-dependent lookup:
//
//     enum class balance { round_robin, least_conn };
//     constexpr auto config_enum_names(balance) {
//       using rproxy::config::enum_name;
//       return std::array{enum_name{"round_robin", balance::round_robin},
//                         enum_name{"least_conn", balance::least_conn}};
//     }
//
// Any other type becomes a config scalar by specializing scalar_traits:
//
//     template <> struct rproxy::config::scalar_traits<cidr> {
//       static std::string type_name() { return "cidr"; }
//       static rproxy::result<cidr, value_error> parse(std::string_view text);
//       static std::string format(const cidr& v);   // YAML text that parse() reads back
//     };
#pragma once

#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/duration.hpp>
#include <rproxy/config/endpoint.hpp>
#include <rproxy/config/error.hpp>
#include <rproxy/config/suggest.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::config {

/// One name of an enum value, for config_enum_names().
template <class E>
struct enum_name {
  std::string_view name;
  E value;
};
template <class E>
enum_name(const char*, E) -> enum_name<E>;

/// Customization point: a specialization makes T a config scalar (see the top of this file).
template <class T>
struct scalar_traits;

/// T is read from and written to one YAML scalar.
template <class T>
concept scalar = requires(std::string_view text, const T& v) {
  { scalar_traits<T>::type_name() } -> std::convertible_to<std::string>;
  { scalar_traits<T>::parse(text) } -> std::same_as<result<T, value_error>>;
  { scalar_traits<T>::format(v) } -> std::convertible_to<std::string>;
};

/// An enum with config_enum_names(E) declared next to it.
template <class E>
concept named_enum = std::is_enum_v<E> && requires(E e) {
  { config_enum_names(e) };
  { config_enum_names(e).begin()->name } -> std::convertible_to<std::string_view>;
};

namespace detail {

/// Shows a scalar in a message: 'text', shortened when long.
inline std::string quote_text(std::string_view s) {
  if (s.size() > 40) return "'" + std::string(s.substr(0, 37)) + "...'";
  return "'" + std::string(s) + "'";
}

/// Double-quoted YAML string with escapes.
inline std::string yaml_quote(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\x";
          out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
          out += hex[static_cast<unsigned char>(c) & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace detail

template <>
struct scalar_traits<bool> {
  static std::string type_name() { return "bool"; }
  static result<bool, value_error> parse(std::string_view t) {
    for (std::string_view s : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})
      if (t == s) return true;
    for (std::string_view s : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"})
      if (t == s) return false;
    return failure(value_error{error::wrong_type, "expected bool (true or false), got " + detail::quote_text(t)});
  }
  static std::string format(bool v) { return v ? "true" : "false"; }
};

template <class T>
  requires std::integral<T> && (!std::same_as<T, bool>) && (!std::same_as<T, char>)
struct scalar_traits<T> {
  static std::string type_name() {
    return (std::is_signed_v<T> ? "int" : "uint") + std::to_string(sizeof(T) * 8);
  }
  static std::string range() {
    return std::to_string(std::numeric_limits<T>::min()) + ".." + std::to_string(std::numeric_limits<T>::max());
  }
  static result<T, value_error> parse(std::string_view t) {
    auto wrong = [&] {
      return failure(value_error{error::wrong_type, "expected " + type_name() + ", got " + detail::quote_text(t)});
    };
    auto out_of_range = [&] {
      return failure(value_error{error::out_of_range,
                                 "value " + std::string(t) + " out of range for " + type_name() + " (" + range() + ")"});
    };
    std::string_view s = t;
    bool negative = false;
    if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
      negative = s.front() == '-';
      s.remove_prefix(1);
    }
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
      base = 16;
      s.remove_prefix(2);
    }
    if (s.empty() || s.front() == '-' || s.front() == '+') return wrong();
    unsigned long long magnitude = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), magnitude, base);
    if (end != s.data() + s.size()) return wrong();
    if (ec == std::errc::result_out_of_range) return out_of_range();
    if (ec != std::errc{}) return wrong();
    if (negative) {
      if constexpr (std::is_unsigned_v<T>) {
        if (magnitude != 0) return out_of_range();
        return T{0};
      } else {
        const auto limit = static_cast<unsigned long long>(std::numeric_limits<T>::max()) + 1;
        if (magnitude > limit) return out_of_range();
        if (magnitude == limit) return std::numeric_limits<T>::min();
        return static_cast<T>(-static_cast<long long>(magnitude));
      }
    }
    if (magnitude > static_cast<unsigned long long>(std::numeric_limits<T>::max())) return out_of_range();
    return static_cast<T>(magnitude);
  }
  static std::string format(T v) { return std::to_string(v); }
};

template <std::floating_point T>
struct scalar_traits<T> {
  static std::string type_name() { return "number"; }
  static result<T, value_error> parse(std::string_view t) {
    std::string_view s = t;
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    for (auto [text, v] : {std::pair<std::string_view, T>{".inf", std::numeric_limits<T>::infinity()},
                           {"-.inf", -std::numeric_limits<T>::infinity()},
                           {".nan", std::numeric_limits<T>::quiet_NaN()}})
      if (s == text) return v;
    double d = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (s.empty() || end != s.data() + s.size() || ec == std::errc::invalid_argument)
      return failure(value_error{error::wrong_type, "expected number, got " + detail::quote_text(t)});
    if (ec == std::errc::result_out_of_range ||
        (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<T>::max())))
      return failure(value_error{error::out_of_range, "value " + std::string(t) + " out of range for number"});
    return static_cast<T>(d);
  }
  static std::string format(T v) {
    if (std::isnan(v)) return ".nan";
    if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
    char buf[64];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    (void)ec;
    return std::string(buf, end);
  }
};

template <>
struct scalar_traits<std::string> {
  static std::string type_name() { return "string"; }
  static result<std::string, value_error> parse(std::string_view t) { return std::string(t); }
  static std::string format(const std::string& v) { return detail::yaml_quote(v); }
};

template <class Rep, class Period>
struct scalar_traits<std::chrono::duration<Rep, Period>> {
  using type = std::chrono::duration<Rep, Period>;
  static std::string type_name() { return "duration"; }
  static result<type, value_error> parse(std::string_view t) { return parse_duration<type>(t); }
  static std::string format(type v) { return format_duration(v); }
};

template <>
struct scalar_traits<byte_size> {
  static std::string type_name() { return "size"; }
  static result<byte_size, value_error> parse(std::string_view t) { return parse_byte_size(t); }
  static std::string format(byte_size v) { return format_byte_size(v); }
};

template <>
struct scalar_traits<endpoint> {
  static std::string type_name() { return "endpoint"; }
  static result<endpoint, value_error> parse(std::string_view t) { return parse_endpoint(t); }
  static std::string format(const endpoint& v) { return detail::yaml_quote(v.to_string()); }
};

template <named_enum E>
struct scalar_traits<E> {
  static std::string names() {
    std::string s;
    for (const auto& n : config_enum_names(E{})) {
      if (!s.empty()) s += ", ";
      s += n.name;
    }
    return s;
  }
  static std::string type_name() { return "one of " + names(); }
  static result<E, value_error> parse(std::string_view t) {
    std::vector<std::string_view> candidates;
    for (const auto& n : config_enum_names(E{})) {
      if (n.name == t) return n.value;
      candidates.push_back(n.name);
    }
    std::string msg = "unknown value " + detail::quote_text(t) + ", expected one of: " + names();
    if (auto s = did_you_mean(t, candidates)) msg += " (did you mean '" + *s + "'?)";
    return failure(value_error{error::bad_value, std::move(msg)});
  }
  static std::string format(E v) {
    for (const auto& n : config_enum_names(E{}))
      if (n.value == v) return std::string(n.name);
    return std::to_string(static_cast<std::underlying_type_t<E>>(v));
  }
};

}  // namespace rproxy::config
