// rproxy/config/byte_size.hpp: a size in bytes as written in config: "64KiB", "1MiB", "4096".
//
//     max_packet: 2MiB          # binary units: KiB MiB GiB TiB (powers of 1024)
//     buffer: 64KB              # decimal units: KB MB GB TB (powers of 1000)
//     header_limit: 8192        # plain bytes (also "8192B")
//
//     struct limits { rproxy::config::byte_size max_packet = rproxy::config::byte_size::mib(2); };
//     std::vector<char> buf(cfg.max_packet.bytes);
#pragma once

#include <compare>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include <rproxy/config/error.hpp>
#include <rproxy/core/result.hpp>

namespace rproxy::config {

struct byte_size {
  std::uint64_t bytes = 0;

  static constexpr byte_size kib(std::uint64_t n) noexcept { return {n << 10}; }
  static constexpr byte_size mib(std::uint64_t n) noexcept { return {n << 20}; }
  static constexpr byte_size gib(std::uint64_t n) noexcept { return {n << 30}; }

  friend constexpr auto operator<=>(const byte_size&, const byte_size&) = default;
};

namespace detail {

struct size_unit {
  std::string_view name;
  std::uint64_t factor;
};
inline constexpr size_unit size_units[] = {
    {"TiB", 1ull << 40}, {"GiB", 1ull << 30}, {"MiB", 1ull << 20}, {"KiB", 1ull << 10},
    {"TB", 1000000000000ull}, {"GB", 1000000000ull}, {"MB", 1000000ull}, {"KB", 1000ull},
    {"kB", 1000ull}, {"B", 1ull}, {"", 1ull},
};

}  // namespace detail

/// Reads an integer with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB).
inline result<byte_size, value_error> parse_byte_size(std::string_view text) {
  auto bad = [&] {
    return failure(value_error{error::bad_value,
                               "bad size '" + std::string(text) +
                                   "': expected a whole number with an optional unit "
                                   "(B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), e.g. 64KiB"});
  };
  std::size_t i = 0;
  std::uint64_t n = 0;
  bool overflow = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (n > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) overflow = true;
    else n = n * 10 + digit;
    ++i;
  }
  if (i == 0) return bad();
  std::string_view unit = text.substr(i);
  if (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  for (const auto& u : detail::size_units) {
    if (u.name != unit || (u.name.empty() && i != text.size())) continue;
    if (overflow || n > std::numeric_limits<std::uint64_t>::max() / u.factor)
      return failure(value_error{error::out_of_range, "size '" + std::string(text) + "' is too large"});
    return byte_size{n * u.factor};
  }
  return bad();
}

/// The shortest exact form: "64KiB", "1MiB", "1000" (binary units only, so it reads back).
inline std::string format_byte_size(byte_size s) {
  for (const auto& u : detail::size_units) {
    if (u.factor < 1024) break;
    if (u.name.ends_with("iB") && s.bytes != 0 && s.bytes % u.factor == 0)
      return std::to_string(s.bytes / u.factor) + std::string(u.name);
  }
  return std::to_string(s.bytes);
}

}  // namespace rproxy::config
