// rproxy/middleware/ip.hpp: IP addresses as fixed 16-byte keys, CIDR blocks, address grouping
// (IPv6 /64) and a longest-prefix-match table, shared by the IP filter, bans, connection caps and
// the rate limiter.
//
// IPv4 addresses live in the IPv4-mapped IPv6 range (::ffff:a.b.c.d, RFC 4291 §2.5.5.2), so an
// IPv4 client seen on a dual-stack listener matches IPv4 rules, and `10.0.0.0/8` is the block
// ::ffff:10.0.0.0/104 internally:
//
//     auto net = rproxy::middleware::cidr::parse("2001:db8::/32");        // result<cidr>
//     bool in = net->contains(rproxy::middleware::to_ip_key(addr));
//     auto k = rproxy::middleware::group(addr, 32, 64);                    // client's /64
//     rproxy::middleware::cidr_table<int> t; t.insert(*net, 1); t.longest_match(k);
#pragma once

#include <asio/ip/address.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/core/result.hpp>
#include <rproxy/middleware/error.hpp>

namespace rproxy::middleware {

/// An address in the IPv6 space (IPv4 as IPv4-mapped).
struct ip_key {
  std::array<std::uint8_t, 16> bytes{};
  friend bool operator==(const ip_key&, const ip_key&) = default;

  /// True for an IPv4 (IPv4-mapped) address.
  bool is_v4() const noexcept {
    static constexpr std::uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(bytes.data(), prefix, 12) == 0;
  }
  asio::ip::address to_address() const {
    if (is_v4()) return asio::ip::address_v4({bytes[12], bytes[13], bytes[14], bytes[15]});
    return asio::ip::address_v6(bytes);
  }
};

inline ip_key to_ip_key(const asio::ip::address& a) noexcept {
  ip_key k;
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    k.bytes[10] = k.bytes[11] = 0xff;
    std::copy(b.begin(), b.end(), k.bytes.begin() + 12);
  } else {
    k.bytes = a.to_v6().to_bytes();
  }
  return k;
}

/// Keeps the first `bits` bits (0..128) of `k`, zeroing the rest.
inline ip_key mask(ip_key k, unsigned bits) noexcept {
  if (bits >= 128) return k;
  std::size_t full = bits / 8;
  unsigned rest = bits % 8;
  if (rest != 0) {
    k.bytes[full] &= static_cast<std::uint8_t>(0xFF << (8 - rest));
    ++full;
  }
  for (std::size_t i = full; i < 16; ++i) k.bytes[i] = 0;
  return k;
}

/// The group a client address counts in: its IPv4 /v4_prefix or its IPv6 /v6_prefix.
inline ip_key group(const ip_key& k, unsigned v4_prefix = 32, unsigned v6_prefix = 64) noexcept {
  return k.is_v4() ? mask(k, 96 + std::min(v4_prefix, 32u)) : mask(k, std::min(v6_prefix, 128u));
}
inline ip_key group(const asio::ip::address& a, unsigned v4_prefix = 32, unsigned v6_prefix = 64) noexcept {
  return group(to_ip_key(a), v4_prefix, v6_prefix);
}

/// "203.0.113.0/24" for IPv4 groups, "2001:db8::/64" for IPv6 ones.
inline std::string to_string(const ip_key& k, unsigned prefix_in_family) {
  return k.to_address().to_string() + "/" + std::to_string(prefix_in_family);
}

struct ip_key_hash {
  std::size_t operator()(const ip_key& k) const noexcept {
    std::uint64_t a = 0, b = 0;
    std::memcpy(&a, k.bytes.data(), 8);
    std::memcpy(&b, k.bytes.data() + 8, 8);
    std::uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return static_cast<std::size_t>(h);
  }
};

/// A network block: an address and a prefix length, both in the IPv6 space.
class cidr {
public:
  cidr() = default;
  /// `bits` is in the address's own family: 0..32 for IPv4, 0..128 for IPv6.
  cidr(const asio::ip::address& a, unsigned bits) {
    unsigned b = a.is_v4() ? 96 + std::min(bits, 32u) : std::min(bits, 128u);
    net_ = mask(to_ip_key(a), b);
    bits_ = static_cast<std::uint8_t>(b);
  }

  /// "10.0.0.0/8", "2001:db8::/32", or a single address ("192.0.2.1", "::1"). Host bits set
  /// below the prefix ("10.0.0.1/8") are an error, so a typo cannot widen a rule silently.
  static rproxy::result<cidr> parse(std::string_view s) {
    std::string_view addr_part = s, len_part;
    if (auto slash = s.find('/'); slash != std::string_view::npos) {
      addr_part = s.substr(0, slash);
      len_part = s.substr(slash + 1);
      if (len_part.empty()) return rproxy::failure(make_error_code(error::bad_cidr));
    }
    std::error_code ec;
    asio::ip::address a = asio::ip::make_address(std::string(addr_part), ec);
    if (ec) return rproxy::failure(make_error_code(error::bad_cidr));
    if (len_part.empty() && a.is_v6() && a.to_v6().is_v4_mapped())
      a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    unsigned max = a.is_v4() ? 32 : 128;
    unsigned bits = max;
    if (!len_part.empty()) {
      if (len_part.size() > 3 || (len_part.size() > 1 && len_part[0] == '0'))
        return rproxy::failure(make_error_code(error::bad_cidr));
      auto [p, e] = std::from_chars(len_part.data(), len_part.data() + len_part.size(), bits);
      if (e != std::errc{} || p != len_part.data() + len_part.size() || bits > max)
        return rproxy::failure(make_error_code(error::bad_cidr));
    }
    cidr c(a, bits);
    if (!(c.net_ == to_ip_key(a))) return rproxy::failure(make_error_code(error::bad_cidr));
    return c;
  }

  bool contains(const ip_key& k) const noexcept { return mask(k, bits_) == net_; }
  bool contains(const asio::ip::address& a) const noexcept { return contains(to_ip_key(a)); }

  const ip_key& network() const noexcept { return net_; }
  /// Prefix length in the IPv6 space (IPv4 /8 is 104).
  unsigned bits() const noexcept { return bits_; }
  bool is_v4() const noexcept { return net_.is_v4() && bits_ >= 96; }
  /// Prefix length in the block's own family.
  unsigned family_bits() const noexcept { return is_v4() ? bits_ - 96u : bits_; }

  std::string to_string() const { return middleware::to_string(net_, family_bits()); }

  friend bool operator==(const cidr&, const cidr&) = default;

private:
  ip_key net_{};
  std::uint8_t bits_ = 0;
};

/// Values keyed by CIDR block, looked up by address, most specific block first.
/// Not synchronized: build it, then share it read-only (or guard it).
template <class T>
class cidr_table {
public:
  /// Inserts or replaces the value of block `c`.
  void insert(const cidr& c, T value) {
    auto& m = by_len_[c.bits()];
    if (m.empty()) {
      lens_.push_back(static_cast<std::uint8_t>(c.bits()));
      std::sort(lens_.begin(), lens_.end(), std::greater<>());
    }
    auto [it, fresh] = m.insert_or_assign(c.network(), std::move(value));
    (void)it;
    if (fresh) ++size_;
  }

  bool erase(const cidr& c) {
    auto& m = by_len_[c.bits()];
    if (m.erase(c.network()) == 0) return false;
    --size_;
    if (m.empty()) lens_.erase(std::find(lens_.begin(), lens_.end(), static_cast<std::uint8_t>(c.bits())));
    return true;
  }

  /// The value of the longest block containing `k`, or nullptr.
  const T* longest_match(const ip_key& k) const noexcept {
    return find_if(k, [](const cidr&, const T&) { return true; });
  }

  /// The value of the longest block containing `k` for which pred(block, value) holds.
  template <class Pred>
  const T* find_if(const ip_key& k, Pred&& pred) const {
    for (std::uint8_t len : lens_) {
      const auto& m = by_len_[len];
      auto it = m.find(mask(k, len));
      if (it != m.end() && pred(cidr_of(it->first, len), it->second)) return &it->second;
    }
    return nullptr;
  }

  /// Calls f(cidr, value) for every entry.
  template <class F>
  void for_each(F&& f) const {
    for (std::uint8_t len : lens_)
      for (const auto& [net, v] : by_len_[len]) f(cidr_of(net, len), v);
  }

  /// Removes the entries for which pred(cidr, value) holds; returns how many.
  template <class Pred>
  std::size_t erase_if(Pred&& pred) {
    std::size_t n = 0;
    for (std::uint8_t len : std::vector<std::uint8_t>(lens_)) {
      auto& m = by_len_[len];
      n += std::erase_if(m, [&](const auto& kv) { return pred(cidr_of(kv.first, len), kv.second); });
      if (m.empty()) lens_.erase(std::find(lens_.begin(), lens_.end(), len));
    }
    size_ -= n;
    return n;
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

private:
  static cidr cidr_of(const ip_key& net, unsigned len) {
    asio::ip::address a = net.to_address();
    return cidr(a, a.is_v4() ? len - 96 : len);
  }

  std::array<std::unordered_map<ip_key, T, ip_key_hash>, 129> by_len_{};
  std::vector<std::uint8_t> lens_;  // prefix lengths in use, longest first
  std::size_t size_ = 0;
};

}  // namespace rproxy::middleware
