// rproxy/codec/mc/uuid.hpp: a 128-bit UUID as the Minecraft protocol sends it (two big-endian
// 64-bit halves, most significant first) and its text forms.
//
//     auto id = mc::uuid::parse("069a79f4-44e9-4726-a5be-fca90e38aaf5");   // also without dashes
//     id->to_string();   // "069a79f4-44e9-4726-a5be-fca90e38aaf5"
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rproxy::codec::mc {

struct uuid {
  std::uint64_t hi = 0;  ///< most significant 64 bits
  std::uint64_t lo = 0;  ///< least significant 64 bits

  friend constexpr auto operator<=>(const uuid&, const uuid&) = default;

  constexpr bool is_nil() const noexcept { return hi == 0 && lo == 0; }

  /// Lowercase hyphenated form: 8-4-4-4-12 hex digits.
  std::string to_string() const {
    static constexpr char hex[] = "0123456789abcdef";
    std::string s;
    s.reserve(36);
    for (int i = 0; i < 32; ++i) {
      if (i == 8 || i == 12 || i == 16 || i == 20) s.push_back('-');
      const auto half = i < 16 ? hi : lo;
      const int shift = 60 - 4 * (i % 16);
      s.push_back(hex[(half >> shift) & 0xF]);
    }
    return s;
  }

  /// Parses 32 hex digits, either plain or in the hyphenated 8-4-4-4-12 form (any case).
  static std::optional<uuid> parse(std::string_view s) noexcept {
    const bool dashed = s.size() == 36;
    if (!dashed && s.size() != 32) return std::nullopt;
    uuid u;
    int digits = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
        if (c != '-') return std::nullopt;
        continue;
      }
      unsigned v = 0;
      if (c >= '0' && c <= '9') {
        v = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v = static_cast<unsigned>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
      auto& half = digits < 16 ? u.hi : u.lo;
      half = (half << 4) | v;
      ++digits;
    }
    return u;
  }
};

}  // namespace rproxy::codec::mc
