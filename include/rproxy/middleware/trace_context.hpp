// rproxy/middleware/trace_context.hpp: the W3C Trace Context `traceparent` field (Trace Context
// Level 1, section 3.2) read, checked and written, and the random ids a proxy hop makes.
//
//     traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
//                  version - trace-id (16 bytes) - parent-id (8 bytes) - trace-flags
//
//     auto in = rproxy::middleware::parse_traceparent(value);     // nullopt: not valid
//     auto out = in ? in->next_hop(ids) : rproxy::middleware::traceparent::start(ids, false);
//     out.to_string();                                            // "00-<trace-id>-<new span>-01"
//
// The rules (section 3.2.2 and 3.2.4): lower-case hex only; version "ff" is invalid; version
// "00" is exactly 55 characters; a later version is read as version 00 for its first 55
// characters, and whatever follows must start with '-'; an all-zero trace-id or parent-id is
// invalid. A hop that takes part in the trace keeps trace-id and flags and sends its own
// parent-id; what it sends is always version 00.
//
// Note the header-only id_source keeps its state per object: give each worker its own.
#pragma once

#include <openssl/rand.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rproxy::middleware {

/// Random 64-bit values for trace and span ids: a per-thread xoshiro256** generator seeded from
/// OpenSSL's CSPRNG (ids must not collide; they are not secrets).
class id_source {
public:
  id_source() {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(s_.data()), sizeof s_) != 1 || (s_[0] | s_[1] | s_[2] | s_[3]) == 0)
      s_ = {0x9e3779b97f4a7c15ULL, 0xbf58476d1ce4e5b9ULL, 0x94d049bb133111ebULL, 0x2545f4914f6cdd1dULL};
  }
  std::uint64_t next() noexcept {
    const std::uint64_t r = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }
  /// Never zero (an all-zero id is invalid).
  std::uint64_t next_nonzero() noexcept {
    for (;;)
      if (auto v = next(); v != 0) return v;
  }

private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> s_{};
};

struct traceparent {
  std::array<std::uint8_t, 16> trace_id{};
  std::array<std::uint8_t, 8> parent_id{};
  std::uint8_t flags = 0;

  static constexpr std::uint8_t sampled_flag = 0x01;
  bool sampled() const noexcept { return (flags & sampled_flag) != 0; }

  /// A new trace, as the first hop that saw the request.
  static traceparent start(id_source& ids, bool sampled) noexcept {
    traceparent t;
    put(t.trace_id.data(), ids.next());
    put(t.trace_id.data() + 8, ids.next_nonzero());
    put(t.parent_id.data(), ids.next_nonzero());
    t.flags = sampled ? sampled_flag : 0;
    return t;
  }
  /// This hop's field: the same trace and flags, a new parent-id (this hop's span).
  traceparent next_hop(id_source& ids) const noexcept {
    traceparent t = *this;
    put(t.parent_id.data(), ids.next_nonzero());
    return t;
  }

  std::string trace_id_hex() const { return hex(trace_id.data(), trace_id.size()); }
  std::string parent_id_hex() const { return hex(parent_id.data(), parent_id.size()); }
  /// The length of version 00 text.
  static constexpr std::size_t text_size = 55;
  /// Version 00 text, written to `out` (text_size characters): no allocation.
  void write(char* out) const noexcept {
    out[0] = out[1] = '0';
    out[2] = '-';
    write_hex(out + 3, trace_id.data(), trace_id.size());
    out[35] = '-';
    write_hex(out + 36, parent_id.data(), parent_id.size());
    out[52] = '-';
    write_hex(out + 53, &flags, 1);
  }
  /// Version 00 text: 55 characters.
  std::string to_string() const {
    std::string s(text_size, '0');
    write(s.data());
    return s;
  }

  friend bool operator==(const traceparent&, const traceparent&) = default;

private:
  static void put(std::uint8_t* out, std::uint64_t v) noexcept {
    for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<std::uint8_t>(v);
  }
  static void write_hex(char* out, const std::uint8_t* p, std::size_t n) noexcept {
    static constexpr char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < n; ++i) {
      out[2 * i] = digits[p[i] >> 4];
      out[2 * i + 1] = digits[p[i] & 0xF];
    }
  }
  static std::string hex(const std::uint8_t* p, std::size_t n) {
    std::string s(n * 2, '0');
    write_hex(s.data(), p, n);
    return s;
  }
};

namespace trace_detail {

/// Lower-case hex only (the spec forbids upper case).
inline int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

template <std::size_t N>
bool read_hex(std::string_view text, std::array<std::uint8_t, N>& out) noexcept {
  if (text.size() != 2 * N) return false;
  bool nonzero = false;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    nonzero = nonzero || out[i] != 0;
  }
  return nonzero || N == 1;
}

}  // namespace trace_detail

/// Reads a `traceparent` value; nullopt when it breaks a rule above (then a hop starts a new
/// trace and drops `tracestate`: Level 1, section 4.3, the processing model). Of a later
/// version's flags only the sampled bit is kept (section 3.2.4).
inline std::optional<traceparent> parse_traceparent(std::string_view v) noexcept {
  constexpr std::size_t v00_size = 55;  // 2 + 1 + 32 + 1 + 16 + 1 + 2
  if (v.size() < v00_size) return std::nullopt;
  std::array<std::uint8_t, 1> version{};
  if (!trace_detail::read_hex(v.substr(0, 2), version) || version[0] == 0xFF) return std::nullopt;
  if (version[0] == 0 ? v.size() != v00_size : v.size() > v00_size && v[v00_size] != '-') return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  traceparent t;
  std::array<std::uint8_t, 1> flags{};
  if (!trace_detail::read_hex(v.substr(3, 32), t.trace_id) || !trace_detail::read_hex(v.substr(36, 16), t.parent_id) ||
      !trace_detail::read_hex(v.substr(53, 2), flags))
    return std::nullopt;
  t.flags = version[0] == 0 ? flags[0] : static_cast<std::uint8_t>(flags[0] & traceparent::sampled_flag);
  return t;
}

}  // namespace rproxy::middleware
