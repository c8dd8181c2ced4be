// rproxy/config/duration.hpp: durations as written in config: "250ms", "5s", "2m", "1h30m".
//
//     idle_timeout: 30s
//     handshake_timeout: 1500ms
//     ban_time: 1h30m          # parts add up; units: ns us ms s m h d; "0" needs no unit
//     retry_after: 1.5s        # decimals are fine when the result is exact in the field's unit
//
//     auto d = rproxy::config::parse_duration<std::chrono::milliseconds>("1.5s");   // 1500ms
//     rproxy::config::format_duration(std::chrono::seconds(90));                 // "90s"
//
// A value that the field's unit cannot hold exactly ("250ms" for std::chrono::seconds) is an
// error rather than a silent rounding.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <ratio>
#include <string>
#include <string_view>
#include <type_traits>

#include <rproxy/config/error.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::config {

namespace detail {

struct duration_unit {
  std::string_view name;
  std::uint64_t ns;
};
// Longest names first, so "ms" is not read as "m" followed by "s".
inline constexpr duration_unit duration_units[] = {
    {"ns", 1ull},           {"us", 1000ull},           {"ms", 1000000ull},
    {"s", 1000000000ull},   {"m", 60000000000ull},     {"h", 3600000000000ull},
    {"d", 86400000000000ull},
};

template <class Period>
std::string period_name() {
  if constexpr (std::is_same_v<Period, std::nano>) return "ns";
  else if constexpr (std::is_same_v<Period, std::micro>) return "us";
  else if constexpr (std::is_same_v<Period, std::milli>) return "ms";
  else if constexpr (std::is_same_v<Period, std::ratio<1>>) return "s";
  else if constexpr (std::is_same_v<Period, std::ratio<60>>) return "m";
  else if constexpr (std::is_same_v<Period, std::ratio<3600>>) return "h";
  else if constexpr (std::is_same_v<Period, std::ratio<86400>>) return "d";
  else return std::to_string(Period::num) + "/" + std::to_string(Period::den) + " s";
}

/// Total nanoseconds in text such as "1h30m" or "1.5s"; false on a bad shape or overflow.
inline result<std::uint64_t, value_error> parse_duration_ns(std::string_view text) {
  auto bad = [&] {
    return failure(value_error{error::bad_value,
                               "bad duration '" + std::string(text) +
                                   "': expected a number with a unit (ns, us, ms, s, m, h, d), "
                                   "e.g. 250ms, 5s, 1h30m"});
  };
  auto too_large = [&] {
    return failure(value_error{error::out_of_range, "duration '" + std::string(text) + "' is too large"});
  };
  if (text == "0") return std::uint64_t{0};
  if (text.empty()) return bad();
  constexpr auto max = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::uint64_t whole = 0, frac = 0, frac_scale = 1;
    const std::size_t start = i;
    bool overflow = false;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      const auto digit = static_cast<std::uint64_t>(text[i] - '0');
      if (whole > (max - digit) / 10) overflow = true;
      else whole = whole * 10 + digit;
      ++i;
    }
    if (i == start) return bad();
    if (i < text.size() && text[i] == '.') {
      ++i;
      const std::size_t frac_start = i;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        if (frac_scale > max / 10) return bad();  // absurd precision
        frac = frac * 10 + static_cast<std::uint64_t>(text[i] - '0');
        frac_scale *= 10;
        ++i;
      }
      if (i == frac_start) return bad();
    }
    const duration_unit* unit = nullptr;
    for (const auto& u : duration_units) {
      if (text.substr(i, u.name.size()) == u.name &&
          (unit == nullptr || u.name.size() > unit->name.size()))
        unit = &u;
    }
    if (unit == nullptr) return bad();
    i += unit->name.size();
    if (overflow || whole > max / unit->ns) return too_large();
    std::uint64_t part = whole * unit->ns;
    // frac / frac_scale of a unit: exact in nanoseconds or refused.
    if (frac != 0) {
      if (frac > max / unit->ns) return too_large();
      const std::uint64_t scaled = frac * unit->ns;
      if (scaled % frac_scale != 0)
        return failure(value_error{error::bad_value,
                                   "duration '" + std::string(text) + "' is finer than a nanosecond"});
      part += scaled / frac_scale;
    }
    if (total > max - part) return too_large();
    total += part;
  }
  return total;
}

}  // namespace detail

/// Reads a duration into `Duration` (any std::chrono::duration), refusing values that its
/// unit cannot hold exactly.
template <class Duration>
result<Duration, value_error> parse_duration(std::string_view text) {
  using rep = typename Duration::rep;
  using period = typename Duration::period;
  auto ns = detail::parse_duration_ns(text);
  if (!ns) return failure(ns.error());
  if constexpr (std::is_floating_point_v<rep>) {
    return std::chrono::duration_cast<Duration>(std::chrono::duration<long double, std::nano>(*ns));
  } else {
    // ns * den / (num * 1e9) must be a whole number that fits in rep.
    using ratio = std::ratio_divide<period, std::nano>;  // one tick, in nanoseconds
    static_assert(ratio::den == 1, "rproxy::config: durations finer than a nanosecond are not supported");
    const auto tick = static_cast<std::uint64_t>(ratio::num);
    if (*ns % tick != 0)
      return failure(value_error{error::bad_value, "duration '" + std::string(text) +
                                                       "' is not a whole number of " +
                                                       detail::period_name<period>()});
    const std::uint64_t ticks = *ns / tick;
    if (ticks > static_cast<std::uint64_t>(std::numeric_limits<rep>::max()))
      return failure(value_error{error::out_of_range, "duration '" + std::string(text) + "' is too large"});
    return Duration(static_cast<rep>(ticks));
  }
}

/// The shortest exact form in one unit: 30000ms -> "30s", 90s -> "90s", 0 -> "0".
template <class Rep, class Period>
std::string format_duration(std::chrono::duration<Rep, Period> d) {
  if constexpr (std::is_floating_point_v<Rep>) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d);
    return format_duration(ns);
  } else {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    if (ns == 0) return "0";
    if (ns < 0) return "-" + format_duration(std::chrono::nanoseconds(-ns));  // not readable back
    const auto n = static_cast<std::uint64_t>(ns);
    // Prefer h, m, s, ms, us, ns; "d" is accepted when reading but not written.
    for (int i = 5; i >= 0; --i) {
      const auto& u = detail::duration_units[i];
      if (n % u.ns == 0) return std::to_string(n / u.ns) + std::string(u.name);
    }
    return std::to_string(n) + "ns";
  }
}

}  // namespace rproxy::config
