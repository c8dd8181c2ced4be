// rproxy/net/proxy_protocol.hpp: sans-I/O PROXY protocol v1 (text) and v2 (binary) parser and
// writers, after haproxy's proxy-protocol.txt. No sockets here: feed bytes, get a header.
//
//     namespace pp = rproxy::net::proxy_protocol;
//     pp::parser p({.optional = true});            // a listener that also takes plain clients
//     auto r = p.parse(std::span(buf.data(), n));   // call again with more bytes on need_more
//     switch (r.status) {
//       case pp::parse_status::need_more: read more, parse(new bytes only); break;
//       case pp::parse_status::done: use(p.get()); payload starts at buf[r.consumed]; break;
//       case pp::parse_status::not_proxy: payload is p.buffered() then all of buf; break;
//       case pp::parse_status::error: log(r.error.message()); close; break;
//     }
//
//     std::string line = pp::write_v1(h);                              // "PROXY TCP4 ...\r\n"
//     std::vector<std::byte> bin = pp::write_v2(h, {.crc32c = true});  // with a CRC32C TLV
//
// The parser copies what it has seen of an incomplete header into a bounded buffer (at most
// 107 bytes for v1, 16 + max_v2_length for v2), so callers pass each chunk once. It never
// consumes a byte past the header. A header that arrives whole in one chunk is decoded in place.
#pragma once

#include <rproxy/core/error.hpp>

#include <asio/ip/address.hpp>
#include <asio/ip/address_v4.hpp>
#include <asio/ip/address_v6.hpp>
#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace rproxy::net {

/// Why a PROXY protocol header was rejected.
enum class proxy_error {
  bad_signature = 1,  ///< input is not a PROXY header and the parser is not `optional`
  bad_version,        ///< v2: version nibble is not 2
  bad_command,        ///< v2: command nibble is neither LOCAL nor PROXY
  bad_family,         ///< v2: unknown family/transport byte; v1: protocol not TCP4/TCP6/UNKNOWN
  truncated_address,  ///< v2: length is shorter than the address block of its family
  line_too_long,      ///< v1: no CRLF within 107 bytes
  bad_line,           ///< v1: wrong field count, stray CR or LF, bad separators
  bad_address,        ///< v1: address text invalid or of the wrong family
  bad_port,           ///< v1: port not a decimal number in 0..65535
  too_long,           ///< v2: length over the configured bound
  bad_tlv,            ///< v2: TLV truncated, duplicated CRC32C, or a known TLV of a wrong size
  bad_crc32c,         ///< v2: CRC32C TLV present and does not match the header
};

namespace detail {

class proxy_error_category final : public rproxy::error_category {
public:
  const char* name() const noexcept override { return "rproxy.net.proxy"; }
  std::string message(int c) const override {
    switch (static_cast<proxy_error>(c)) {
      case proxy_error::bad_signature: return "not a PROXY protocol header";
      case proxy_error::bad_version: return "PROXY v2: unsupported version";
      case proxy_error::bad_command: return "PROXY v2: unknown command";
      case proxy_error::bad_family: return "PROXY: unknown address family or transport";
      case proxy_error::truncated_address: return "PROXY v2: address block truncated";
      case proxy_error::line_too_long: return "PROXY v1: line longer than 107 bytes";
      case proxy_error::bad_line: return "PROXY v1: malformed line";
      case proxy_error::bad_address: return "PROXY v1: invalid address";
      case proxy_error::bad_port: return "PROXY v1: invalid port";
      case proxy_error::too_long: return "PROXY v2: header longer than the configured limit";
      case proxy_error::bad_tlv: return "PROXY v2: malformed TLV";
      case proxy_error::bad_crc32c: return "PROXY v2: CRC32C mismatch";
    }
    return "unknown PROXY protocol error";
  }
  condition source(int) const noexcept override { return condition::downstream; }
  bool retry_safe(int) const noexcept override { return false; }
};

}  // namespace detail

inline const rproxy::error_category& proxy_error_category() noexcept {
  static const detail::proxy_error_category c;
  return c;
}

inline std::error_code make_error_code(proxy_error e) noexcept {
  return {static_cast<int>(e), proxy_error_category()};
}

}  // namespace rproxy::net

template <>
struct std::is_error_code_enum<rproxy::net::proxy_error> : std::true_type {};

namespace rproxy::net::proxy_protocol {

/// Longest v1 line, CRLF included.
inline constexpr std::size_t v1_max_length = 107;
/// Fixed part of a v2 header: signature, ver/cmd, fam/transport, 16-bit length.
inline constexpr std::size_t v2_fixed_length = 16;
inline constexpr std::array<std::byte, 12> v2_signature{
    std::byte{0x0D}, std::byte{0x0A}, std::byte{0x0D}, std::byte{0x0A},
    std::byte{0x00}, std::byte{0x0D}, std::byte{0x0A}, std::byte{0x51},
    std::byte{0x55}, std::byte{0x49}, std::byte{0x54}, std::byte{0x0A}};
inline constexpr std::string_view v1_prefix = "PROXY ";
/// Does a byte prefix start a PROXY header? `partial`: too few bytes to tell.
enum class signature_match { none, partial, v1, v2 };

/// Looks only at the signature ("PROXY " or the 12-byte v2 signature): enough to refuse a
/// header from a peer that may not send one, without parsing (or believing) the rest.
constexpr signature_match match_signature(std::string_view prefix) noexcept {
  if (prefix.empty()) return signature_match::partial;
  const auto starts = [&](auto sig, std::size_t size, signature_match full) {
    const std::size_t k = std::min(prefix.size(), size);
    for (std::size_t i = 0; i < k; ++i)
      if (static_cast<unsigned char>(prefix[i]) != static_cast<unsigned char>(sig(i))) return signature_match::none;
    return k == size ? full : signature_match::partial;
  };
  if (const auto m = starts([](std::size_t i) { return v1_prefix[i]; }, v1_prefix.size(), signature_match::v1);
      m != signature_match::none)
    return m;
  return starts([](std::size_t i) { return std::to_integer<unsigned char>(v2_signature[i]); }, v2_signature.size(),
                signature_match::v2);
}

/// Size of each AF_UNIX path field in v2.
inline constexpr std::size_t unix_path_length = 108;

enum class command : std::uint8_t { local = 0x0, proxy = 0x1 };
enum class family : std::uint8_t { unspec = 0x0, inet = 0x1, inet6 = 0x2, unix_socket = 0x3 };
enum class transport : std::uint8_t { unspec = 0x0, stream = 0x1, dgram = 0x2 };

/// Registered TLV types (proxy-protocol.txt 2.2).
namespace tlv_type {
inline constexpr std::uint8_t alpn = 0x01;
inline constexpr std::uint8_t authority = 0x02;
inline constexpr std::uint8_t crc32c = 0x03;
inline constexpr std::uint8_t noop = 0x04;
inline constexpr std::uint8_t unique_id = 0x05;
inline constexpr std::uint8_t ssl = 0x20;
inline constexpr std::uint8_t ssl_version = 0x21;  // sub-TLVs of ssl
inline constexpr std::uint8_t ssl_cn = 0x22;
inline constexpr std::uint8_t ssl_cipher = 0x23;
inline constexpr std::uint8_t ssl_sig_alg = 0x24;
inline constexpr std::uint8_t ssl_key_alg = 0x25;
inline constexpr std::uint8_t netns = 0x30;
}  // namespace tlv_type

inline constexpr std::size_t unique_id_max_length = 128;

/// One v2 Type-Length-Value; the value is kept raw.
struct tlv {
  std::uint8_t type = 0;
  std::vector<std::byte> value{};

  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(value.data()), value.size()};
  }
  static tlv from_text(std::uint8_t type, std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return tlv{type, std::vector<std::byte>(p, p + s.size())};
  }
  bool operator==(const tlv&) const = default;
};

/// A decoded PROXY header. For inet/inet6 the endpoints hold address and port (also for dgram);
/// for unix_socket the paths hold the 108-byte fields with trailing NULs removed.
struct header {
  int version = 2;  ///< 1 or 2: what was parsed (writers ignore it)
  proxy_protocol::command command = proxy_protocol::command::proxy;
  proxy_protocol::family family = proxy_protocol::family::unspec;
  proxy_protocol::transport transport = proxy_protocol::transport::unspec;
  asio::ip::tcp::endpoint source{};
  asio::ip::tcp::endpoint destination{};
  std::string source_path{};
  std::string destination_path{};
  std::vector<tlv> tlvs{};

  bool operator==(const header&) const = default;

  /// The first TLV of this type, or nullptr.
  const tlv* find(std::uint8_t type) const noexcept {
    for (const auto& t : tlvs)
      if (t.type == type) return &t;
    return nullptr;
  }
  /// Text of the first TLV of this type (ALPN, AUTHORITY, UNIQUE_ID, ...), if present.
  std::optional<std::string_view> text(std::uint8_t type) const noexcept {
    const tlv* t = find(type);
    if (t == nullptr) return std::nullopt;
    return t->text();
  }
  /// True when the connection's real endpoints should be replaced by these ones.
  bool has_addresses() const noexcept {
    return command == proxy_protocol::command::proxy &&
           (family == proxy_protocol::family::inet || family == proxy_protocol::family::inet6);
  }
};

/// A stream header for a TCP connection from `src` to `dst`; mixed v4/v6 maps v4 into v6.
inline header make_header(const asio::ip::tcp::endpoint& src,
                          const asio::ip::tcp::endpoint& dst,
                          transport tr = transport::stream) {
  header h;
  h.transport = tr;
  h.source = src;
  h.destination = dst;
  const bool v4 = src.address().is_v4() && dst.address().is_v4();
  h.family = v4 ? family::inet : family::inet6;
  if (!v4) {
    auto map = [](asio::ip::tcp::endpoint& ep) {
      if (ep.address().is_v4())
        ep.address(asio::ip::make_address_v6(asio::ip::v4_mapped, ep.address().to_v4()));
    };
    map(h.source);
    map(h.destination);
  }
  return h;
}

/// Decoded value of an SSL TLV (type 0x20).
struct ssl_info {
  std::uint8_t client = 0;   ///< bit field: 0x01 SSL, 0x02 cert in connection, 0x04 cert in session
  std::uint32_t verify = 0;  ///< 0 when the client certificate was verified
  std::vector<tlv> sub_tlvs{};

  bool ssl() const noexcept { return (client & 0x01) != 0; }
  bool client_cert() const noexcept { return (client & 0x06) != 0; }
  std::optional<std::string_view> text(std::uint8_t type) const noexcept {
    for (const auto& t : sub_tlvs)
      if (t.type == type) return t.text();
    return std::nullopt;
  }
};

// --- CRC32C (Castagnoli), as the CRC32C TLV uses ---------------------------------------------

namespace detail {

inline constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
    t[i] = c;
  }
  return t;
}();

/// Raw update: start from 0xFFFFFFFF, xor the end result with 0xFFFFFFFF.
inline std::uint32_t crc32c_update(std::uint32_t crc, std::span<const std::byte> data) noexcept {
  for (std::byte b : data)
    crc = crc32c_table[(crc ^ std::to_integer<std::uint32_t>(b)) & 0xFFu] ^ (crc >> 8);
  return crc;
}

inline std::uint16_t load16(const std::byte* p) noexcept {
  return static_cast<std::uint16_t>((std::to_integer<unsigned>(p[0]) << 8) |
                                    std::to_integer<unsigned>(p[1]));
}
inline std::uint32_t load32(const std::byte* p) noexcept {
  return (std::uint32_t{load16(p)} << 16) | load16(p + 2);
}
inline void store16(std::byte* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::byte>(v >> 8);
  p[1] = static_cast<std::byte>(v & 0xFF);
}
inline void store32(std::byte* p, std::uint32_t v) noexcept {
  store16(p, static_cast<std::uint16_t>(v >> 16));
  store16(p + 2, static_cast<std::uint16_t>(v & 0xFFFF));
}

/// Bytes of the v2 address block for a family byte, or -1 for an unknown family/transport.
inline int v2_address_length(std::byte fam) noexcept {
  switch (std::to_integer<unsigned>(fam)) {
    case 0x00: return 0;
    case 0x11: case 0x12: return 12;
    case 0x21: case 0x22: return 36;
    case 0x31: case 0x32: return 2 * static_cast<int>(unix_path_length);
    default: return -1;
  }
}

/// Parses a TLV list; `base` is the offset of `data` in the whole header (for CRC positions).
inline std::error_code parse_tlvs(std::span<const std::byte> data, std::vector<tlv>& out,
                                  std::size_t base, std::size_t& crc_offset) {
  std::size_t i = 0;
  while (i < data.size()) {
    if (data.size() - i < 3) return proxy_error::bad_tlv;
    const auto type = std::to_integer<std::uint8_t>(data[i]);
    const std::size_t len = load16(&data[i + 1]);
    if (data.size() - i - 3 < len) return proxy_error::bad_tlv;
    const auto value = data.subspan(i + 3, len);
    switch (type) {
      case tlv_type::crc32c:
        if (len != 4 || crc_offset != 0) return proxy_error::bad_tlv;
        crc_offset = base + i + 3;
        break;
      case tlv_type::unique_id:
        if (len > unique_id_max_length) return proxy_error::bad_tlv;
        break;
      case tlv_type::ssl: {
        if (len < 5) return proxy_error::bad_tlv;
        std::vector<tlv> sub;
        std::size_t no_crc = 1;  // a CRC32C inside SSL is not a header CRC: reject it
        if (auto ec = parse_tlvs(value.subspan(5), sub, 0, no_crc)) return ec;
        break;
      }
      default: break;
    }
    out.push_back(tlv{type, std::vector<std::byte>(value.begin(), value.end())});
    i += 3 + len;
  }
  return {};
}

inline std::string trim_path(std::span<const std::byte> field) {
  std::size_t n = field.size();
  while (n > 0 && field[n - 1] == std::byte{0}) --n;
  return std::string(reinterpret_cast<const char*>(field.data()), n);
}

/// Decodes a complete v2 header (signature, fixed part and `length` bytes).
inline std::error_code decode_v2(std::span<const std::byte> data, header& h) {
  h = header{};
  h.version = 2;
  const auto cmd = std::to_integer<unsigned>(data[12]) & 0x0Fu;
  h.command = static_cast<command>(cmd);
  const std::byte fam = data[13];
  const auto body = data.subspan(v2_fixed_length);
  const int addr_len = v2_address_length(fam);
  if (addr_len < 0 || body.size() < static_cast<std::size_t>(addr_len)) {
    // Only LOCAL gets here (PROXY was checked while framing): its family and address block are
    // ignored by the receiver, so an unknown or short one is not an error.
    return {};
  }
  h.family = static_cast<family>(std::to_integer<unsigned>(fam) >> 4);
  h.transport = static_cast<transport>(std::to_integer<unsigned>(fam) & 0x0Fu);
  const std::byte* a = body.data();
  switch (h.family) {
    case family::inet: {
      asio::ip::address_v4::bytes_type s, d;
      std::copy_n(reinterpret_cast<const unsigned char*>(a), 4, s.begin());
      std::copy_n(reinterpret_cast<const unsigned char*>(a + 4), 4, d.begin());
      h.source = {asio::ip::address_v4(s), load16(a + 8)};
      h.destination = {asio::ip::address_v4(d), load16(a + 10)};
      break;
    }
    case family::inet6: {
      asio::ip::address_v6::bytes_type s, d;
      std::copy_n(reinterpret_cast<const unsigned char*>(a), 16, s.begin());
      std::copy_n(reinterpret_cast<const unsigned char*>(a + 16), 16, d.begin());
      h.source = {asio::ip::address_v6(s), load16(a + 32)};
      h.destination = {asio::ip::address_v6(d), load16(a + 34)};
      break;
    }
    case family::unix_socket:
      h.source_path = trim_path(body.subspan(0, unix_path_length));
      h.destination_path = trim_path(body.subspan(unix_path_length, unix_path_length));
      break;
    case family::unspec: break;
  }
  std::size_t crc_offset = 0;
  const std::size_t tlv_base = v2_fixed_length + static_cast<std::size_t>(addr_len);
  if (auto ec = parse_tlvs(body.subspan(static_cast<std::size_t>(addr_len)), h.tlvs, tlv_base,
                           crc_offset))
    return ec;
  if (crc_offset != 0) {
    constexpr std::array<std::byte, 4> zero{};
    std::uint32_t crc = crc32c_update(0xFFFFFFFFu, data.first(crc_offset));
    crc = crc32c_update(crc, zero);
    crc = crc32c_update(crc, data.subspan(crc_offset + 4)) ^ 0xFFFFFFFFu;
    if (crc != load32(&data[crc_offset])) return proxy_error::bad_crc32c;
  }
  return {};
}

inline std::error_code parse_port(std::string_view s, unsigned short& port) {
  if (s.empty() || s.size() > 5) return proxy_error::bad_port;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v > 65535) return proxy_error::bad_port;
  port = static_cast<unsigned short>(v);
  return {};
}

inline std::error_code parse_address(std::string_view s, bool v6, asio::ip::address& out) {
  // Only the characters an address may hold: no scope ids, no spaces, no signs.
  const std::string_view allowed = v6 ? "0123456789abcdefABCDEF:." : "0123456789.";
  if (s.empty() || s.size() > 45 || s.find_first_not_of(allowed) != std::string_view::npos)
    return proxy_error::bad_address;
  std::error_code ec;
  const std::string str(s);
  if (v6) {
    auto a = asio::ip::make_address_v6(str, ec);
    if (ec) return proxy_error::bad_address;
    out = a;
  } else {
    auto a = asio::ip::make_address_v4(str, ec);
    if (ec) return proxy_error::bad_address;
    out = a;
  }
  return {};
}

/// Decodes a v1 line without its CRLF, starting with "PROXY ".
inline std::error_code decode_v1(std::string_view line, header& h) {
  h = header{};
  h.version = 1;
  h.command = command::proxy;
  std::string_view rest = line.substr(v1_prefix.size());
  const auto sp = rest.find(' ');
  const std::string_view proto = rest.substr(0, sp);
  if (proto == "UNKNOWN") return {};  // anything up to the CRLF is ignored
  const bool v6 = proto == "TCP6";
  if (!v6 && proto != "TCP4") return proxy_error::bad_family;
  if (sp == std::string_view::npos) return proxy_error::bad_line;
  rest.remove_prefix(sp + 1);
  std::array<std::string_view, 4> f;
  for (std::size_t i = 0; i < f.size(); ++i) {
    const auto e = rest.find(' ');
    if ((e == std::string_view::npos) != (i + 1 == f.size())) return proxy_error::bad_line;
    f[i] = rest.substr(0, e);
    if (e != std::string_view::npos) rest.remove_prefix(e + 1);
  }
  asio::ip::address src, dst;
  unsigned short sport = 0, dport = 0;
  if (auto ec = parse_address(f[0], v6, src)) return ec;
  if (auto ec = parse_address(f[1], v6, dst)) return ec;
  if (auto ec = parse_port(f[2], sport)) return ec;
  if (auto ec = parse_port(f[3], dport)) return ec;
  h.family = v6 ? family::inet6 : family::inet;
  h.transport = transport::stream;
  h.source = {src, sport};
  h.destination = {dst, dport};
  return {};
}

}  // namespace detail

/// CRC32C (Castagnoli) of `data`, as used by the CRC32C TLV.
inline std::uint32_t crc32c(std::span<const std::byte> data) noexcept {
  return detail::crc32c_update(0xFFFFFFFFu, data) ^ 0xFFFFFFFFu;
}

/// Decodes the value of an SSL TLV (type 0x20) into its fields and sub-TLVs.
inline std::optional<ssl_info> decode_ssl(const tlv& t) {
  if (t.type != tlv_type::ssl || t.value.size() < 5) return std::nullopt;
  ssl_info info;
  info.client = std::to_integer<std::uint8_t>(t.value[0]);
  info.verify = detail::load32(&t.value[1]);
  std::size_t no_crc = 1;
  if (detail::parse_tlvs(std::span(t.value).subspan(5), info.sub_tlvs, 0, no_crc))
    return std::nullopt;
  return info;
}

// --- parser ------------------------------------------------------------------------------------

struct parser_options {
  /// Largest v2 length field accepted (bytes after the 16-byte fixed part); at most 65535.
  std::size_t max_v2_length = 4096;
  bool allow_v1 = true;
  bool allow_v2 = true;
  /// Input that cannot start a header gives parse_status::not_proxy instead of bad_signature.
  bool optional = false;
};

enum class parse_status {
  need_more,  ///< all of the input belongs to a header still incomplete: call parse again
  done,       ///< header complete: get() holds it; `consumed` bytes of this input were header
  not_proxy,  ///< (optional mode) no header: buffered() and all of this input are payload
  error,      ///< malformed header: `error` says why (a rproxy::net::proxy_error)
};

struct parse_result {
  parse_status status = parse_status::need_more;
  std::size_t consumed = 0;  ///< bytes of this call's input that belong to the header
  std::error_code error;
};

/// Incremental PROXY header parser; one per connection. Feed each received chunk once.
class parser {
public:
  explicit parser(parser_options opts = {}) : opts_(opts) {
    if (opts_.max_v2_length > 65535) opts_.max_v2_length = 65535;
  }

  /// Feeds the next bytes of the connection. After a result other than need_more, further calls
  /// return the same result with `consumed == 0` until reset().
  parse_result parse(std::span<const std::byte> in) {
    if (state_ != state::running) return {status_of_state(), 0, error_};
    if (buf_.empty()) {
      const scan_result s = scan(in);
      if (s.st == parse_status::done) return finish(in.first(s.length), s.length);
      if (s.st != parse_status::need_more) return terminal(s);
      buf_.assign(in.begin(), in.end());
      return {parse_status::need_more, in.size(), {}};
    }
    const std::size_t old = buf_.size();
    const std::size_t room = max_header_length() - std::min(old, max_header_length());
    const auto take = in.first(std::min(in.size(), room));
    buf_.insert(buf_.end(), take.begin(), take.end());
    const scan_result s = scan(buf_);
    if (s.st == parse_status::done) {
      buf_.resize(s.length);
      return finish(buf_, s.length - old);
    }
    if (s.st == parse_status::not_proxy) buf_.resize(old);  // give the payload back untouched
    if (s.st != parse_status::need_more) return terminal(s);
    return {parse_status::need_more, in.size(), {}};
  }

  parse_result parse(std::string_view in) {
    return parse(std::span(reinterpret_cast<const std::byte*>(in.data()), in.size()));
  }

  /// The decoded header, after parse_status::done.
  const header& get() const noexcept { return header_; }
  header&& take() noexcept { return std::move(header_); }

  /// After not_proxy: bytes of earlier calls (reported consumed) that are payload after all.
  std::span<const std::byte> buffered() const noexcept { return buf_; }

  /// Total header length, after done.
  std::size_t size() const noexcept { return size_; }

  void reset() {
    state_ = state::running;
    buf_.clear();
    header_ = header{};
    error_ = {};
    size_ = 0;
  }

private:
  enum class state { running, done, not_proxy, failed };
  struct scan_result {
    parse_status st;
    std::size_t length = 0;
    std::error_code ec{};
  };

  std::size_t max_header_length() const noexcept {
    std::size_t m = 0;
    if (opts_.allow_v1) m = v1_max_length;
    if (opts_.allow_v2) m = std::max(m, v2_fixed_length + opts_.max_v2_length);
    return m;
  }

  // Frames a header at the start of `d`: complete length, need_more, not_proxy or an error.
  scan_result scan(std::span<const std::byte> d) const {
    const std::size_t n = d.size();
    if (n == 0) return {parse_status::need_more};
    if (opts_.allow_v2 && d[0] == v2_signature[0]) {
      const std::size_t k = std::min(n, v2_signature.size());
      if (!std::equal(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(k), v2_signature.begin()))
        return mismatch();
      if (n < 13) return {parse_status::need_more};
      const auto vc = std::to_integer<unsigned>(d[12]);
      if ((vc >> 4) != 2) return {parse_status::error, 0, proxy_error::bad_version};
      if ((vc & 0x0Fu) > 1) return {parse_status::error, 0, proxy_error::bad_command};
      const bool is_proxy = (vc & 0x0Fu) == 1;
      if (n < 14) return {parse_status::need_more};
      const int addr_len = detail::v2_address_length(d[13]);
      if (is_proxy && addr_len < 0) return {parse_status::error, 0, proxy_error::bad_family};
      if (n < v2_fixed_length) return {parse_status::need_more};
      const std::size_t len = detail::load16(&d[14]);
      if (len > opts_.max_v2_length) return {parse_status::error, 0, proxy_error::too_long};
      if (is_proxy && len < static_cast<std::size_t>(addr_len))
        return {parse_status::error, 0, proxy_error::truncated_address};
      if (n < v2_fixed_length + len) return {parse_status::need_more};
      return {parse_status::done, v2_fixed_length + len};
    }
    if (opts_.allow_v1 && d[0] == std::byte{'P'}) {
      const std::size_t k = std::min(n, v1_prefix.size());
      for (std::size_t i = 0; i < k; ++i)
        if (d[i] != static_cast<std::byte>(v1_prefix[i])) return mismatch();
      const std::size_t end = std::min(n, v1_max_length);
      for (std::size_t i = v1_prefix.size(); i < end; ++i) {
        if (d[i] == std::byte{'\n'}) return {parse_status::error, 0, proxy_error::bad_line};
        if (d[i] != std::byte{'\r'}) continue;
        if (i + 1 >= v1_max_length) return {parse_status::error, 0, proxy_error::line_too_long};
        if (i + 1 >= n) return {parse_status::need_more};
        if (d[i + 1] != std::byte{'\n'}) return {parse_status::error, 0, proxy_error::bad_line};
        return {parse_status::done, i + 2};
      }
      if (n >= v1_max_length) return {parse_status::error, 0, proxy_error::line_too_long};
      return {parse_status::need_more};
    }
    return mismatch();
  }

  scan_result mismatch() const {
    if (opts_.optional) return {parse_status::not_proxy};
    return {parse_status::error, 0, proxy_error::bad_signature};
  }

  parse_result finish(std::span<const std::byte> whole, std::size_t consumed) {
    const std::error_code ec =
        whole[0] == std::byte{'P'}
            ? detail::decode_v1({reinterpret_cast<const char*>(whole.data()), whole.size() - 2},
                                header_)
            : detail::decode_v2(whole, header_);
    if (ec) return terminal({parse_status::error, 0, ec});
    size_ = whole.size();
    state_ = state::done;
    return {parse_status::done, consumed, {}};
  }

  parse_result terminal(const scan_result& s) {
    error_ = s.ec;
    state_ = s.st == parse_status::not_proxy ? state::not_proxy : state::failed;
    if (state_ == state::failed) header_ = header{};
    return {s.st, 0, s.ec};
  }

  parse_status status_of_state() const noexcept {
    switch (state_) {
      case state::done: return parse_status::done;
      case state::not_proxy: return parse_status::not_proxy;
      case state::failed: return parse_status::error;
      case state::running: break;
    }
    return parse_status::need_more;
  }

  parser_options opts_;
  state state_ = state::running;
  std::vector<std::byte> buf_;
  header header_;
  std::error_code error_;
  std::size_t size_ = 0;
};

// --- writers -----------------------------------------------------------------------------------

/// "PROXY TCP4|TCP6 src dst sport dport\r\n", or "PROXY UNKNOWN\r\n" for a LOCAL, non-stream or
/// non-IP header. Throws std::invalid_argument if an address does not match the family.
inline std::string write_v1(const header& h) {
  const bool ip = h.family == family::inet || h.family == family::inet6;
  if (h.command != command::proxy || h.transport != transport::stream || !ip)
    return "PROXY UNKNOWN\r\n";
  const bool v6 = h.family == family::inet6;
  auto addr = [v6](const asio::ip::address& a) {
    if (v6 ? !a.is_v6() : !a.is_v4())
      throw std::invalid_argument("proxy_protocol::write_v1: address does not match family");
    // Rebuilt from bytes so a scope id never reaches the line.
    return v6 ? asio::ip::address_v6(a.to_v6().to_bytes()).to_string() : a.to_string();
  };
  std::string s = v6 ? "PROXY TCP6 " : "PROXY TCP4 ";
  s += addr(h.source.address());
  s += ' ';
  s += addr(h.destination.address());
  s += ' ';
  s += std::to_string(h.source.port());
  s += ' ';
  s += std::to_string(h.destination.port());
  s += "\r\n";
  return s;
}

struct write_v2_options {
  /// Append a CRC32C TLV (if `tlvs` has none). Any CRC32C TLV written gets its value computed.
  bool crc32c = false;
};

/// Binary v2 header with the given TLVs. Throws std::invalid_argument on a programmer error:
/// address not of the header's family, a path over 108 bytes, a TLV or header over 65535 bytes.
inline std::vector<std::byte> write_v2(const header& h, std::span<const tlv> tlvs,
                                       const write_v2_options& opts = {}) {
  auto fail = [](const char* what) {
    throw std::invalid_argument(std::string("proxy_protocol::write_v2: ") + what);
  };
  std::vector<std::byte> out(v2_signature.begin(), v2_signature.end());
  out.push_back(static_cast<std::byte>(0x20 | static_cast<unsigned>(h.command)));
  const auto fam = static_cast<std::byte>((static_cast<unsigned>(h.family) << 4) |
                                          static_cast<unsigned>(h.transport));
  if (detail::v2_address_length(fam) < 0) fail("unknown family/transport combination");
  out.push_back(fam);
  out.resize(v2_fixed_length);  // length, filled in below
  auto append = [&out](const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out.insert(out.end(), b, b + n);
  };
  auto append16 = [&out](std::uint16_t v) {
    out.push_back(static_cast<std::byte>(v >> 8));
    out.push_back(static_cast<std::byte>(v & 0xFF));
  };
  switch (h.family) {
    case family::inet: {
      if (!h.source.address().is_v4() || !h.destination.address().is_v4())
        fail("inet header with a non-IPv4 address");
      const auto s = h.source.address().to_v4().to_bytes();
      const auto d = h.destination.address().to_v4().to_bytes();
      append(s.data(), s.size());
      append(d.data(), d.size());
      append16(h.source.port());
      append16(h.destination.port());
      break;
    }
    case family::inet6: {
      if (!h.source.address().is_v6() || !h.destination.address().is_v6())
        fail("inet6 header with a non-IPv6 address");
      const auto s = h.source.address().to_v6().to_bytes();
      const auto d = h.destination.address().to_v6().to_bytes();
      append(s.data(), s.size());
      append(d.data(), d.size());
      append16(h.source.port());
      append16(h.destination.port());
      break;
    }
    case family::unix_socket:
      for (const std::string* p : {&h.source_path, &h.destination_path}) {
        if (p->size() > unix_path_length) fail("unix path longer than 108 bytes");
        append(p->data(), p->size());
        out.resize(out.size() + unix_path_length - p->size(), std::byte{0});
      }
      break;
    case family::unspec: break;
  }
  std::vector<std::size_t> crc_offsets;
  auto append_tlv = [&](std::uint8_t type, std::span<const std::byte> v) {
    if (v.size() > 65535) fail("TLV longer than 65535 bytes");
    out.push_back(static_cast<std::byte>(type));
    append16(static_cast<std::uint16_t>(v.size()));
    if (type == tlv_type::crc32c) {
      if (v.size() != 4) fail("CRC32C TLV must be 4 bytes");
      crc_offsets.push_back(out.size());
    }
    append(v.data(), v.size());
  };
  for (const auto& t : tlvs) append_tlv(t.type, t.value);
  if (opts.crc32c && crc_offsets.empty()) {
    constexpr std::array<std::byte, 4> zero{};
    append_tlv(tlv_type::crc32c, zero);
  }
  if (out.size() - v2_fixed_length > 65535) fail("header longer than 65535 bytes");
  detail::store16(&out[14], static_cast<std::uint16_t>(out.size() - v2_fixed_length));
  if (crc_offsets.size() > 1) fail("more than one CRC32C TLV");
  if (!crc_offsets.empty()) {
    std::byte* v = &out[crc_offsets.front()];
    std::fill_n(v, 4, std::byte{0});
    detail::store32(v, crc32c(out));
  }
  return out;
}

/// Binary v2 header carrying `h.tlvs`.
inline std::vector<std::byte> write_v2(const header& h, const write_v2_options& opts = {}) {
  return write_v2(h, h.tlvs, opts);
}

}  // namespace rproxy::net::proxy_protocol
