// rproxy/middleware/compress_negotiation.hpp: the content codings the compress stage knows and
// the choice among them from a request's Accept-Encoding (RFC 9110 §12.5.3). Sans-I/O, bounded.
//
//     rproxy::middleware::accept_encoding ae;
//     if (auto ec = rproxy::middleware::parse_accept_encoding("br;q=0.9, gzip", ae)) ...;  // malformed
//     auto c = rproxy::middleware::choose_coding(ae, {{content_coding::zstd, content_coding::br, content_coding::gzip}});
//     // c == content_coding::gzip (the client's q wins; the server's order breaks ties)
//
// Rules:
//   - codings are matched case-insensitively; "x-gzip" is gzip (RFC 9110 §8.4.1.3); codings the
//     stage does not know (deflate, compress, ...) are ignored;
//   - a coding's weight is its own entry's q, else the q of "*", else 0 (not acceptable);
//     q=0 means "not acceptable"; a coding listed twice keeps its last weight;
//   - the chosen coding has the highest weight above 0; equal weights go to the server's order;
//   - identity wins only when the client names it (or "*" covers it) with a weight above the
//     best coding's; with no acceptable coding the response is left as it is (identity);
//   - no Accept-Encoding field at all: identity (a client that sends none gets plain bytes,
//     as most servers do, though RFC 9110 would allow any coding).
// Bounds: at most max_elements list elements per field (more: error::too_many), each element a
// token with at most one "q" weight; anything else (a bad token, a bad qvalue, an unknown
// parameter) makes the whole field malformed, and the stage then leaves the response alone.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace rproxy::middleware {

/// The codings the compress stage produces (identity: none).
enum class content_coding : std::uint8_t { identity, gzip, br, zstd };

/// The token of a coding in Content-Encoding / Accept-Encoding.
constexpr std::string_view coding_token(content_coding c) noexcept {
  switch (c) {
    case content_coding::gzip: return "gzip";
    case content_coding::br: return "br";
    case content_coding::zstd: return "zstd";
    default: return "identity";
  }
}

/// Why an Accept-Encoding field is malformed.
enum class accept_encoding_error : std::uint8_t { bad_token = 1, bad_weight, too_many };

inline const std::error_category& accept_encoding_category() noexcept {
  struct category final : std::error_category {
    const char* name() const noexcept override { return "rproxy.accept_encoding"; }
    std::string message(int e) const override {
      switch (static_cast<accept_encoding_error>(e)) {
        case accept_encoding_error::bad_token: return "Accept-Encoding: a coding is not a token";
        case accept_encoding_error::bad_weight: return "Accept-Encoding: a weight is not ;q=qvalue";
        case accept_encoding_error::too_many: return "Accept-Encoding: too many elements";
      }
      return "Accept-Encoding: malformed";
    }
  };
  static const category c;
  return c;
}
inline std::error_code make_error_code(accept_encoding_error e) noexcept {
  return {static_cast<int>(e), accept_encoding_category()};
}

/// What a request's Accept-Encoding fields say: a weight in thousandths (0..1000) per coding,
/// -1 where the coding is not listed.
struct accept_encoding {
  static constexpr std::size_t max_elements = 64;  ///< per field line
  std::array<int, 4> weight{-1, -1, -1, -1};        ///< by content_coding
  int any = -1;                                     ///< "*"
  bool present = false;                             ///< some Accept-Encoding field was seen

  /// The weight a coding gets: its own, else "*"'s, else 0.
  constexpr int weight_of(content_coding c) const noexcept {
    const int w = weight[static_cast<std::size_t>(c)];
    return w >= 0 ? w : (any >= 0 ? any : 0);
  }
};

namespace compress_detail {

constexpr char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}
constexpr bool ows(char c) noexcept { return c == ' ' || c == '\t'; }
constexpr std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && ows(s.back())) s.remove_suffix(1);
  return s;
}
/// RFC 9110 tchar.
constexpr bool token_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
constexpr bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!token_char(c)) return false;
  return true;
}
/// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), in thousandths; -1 if malformed.
constexpr int parse_qvalue(std::string_view s) noexcept {
  if (s.empty() || (s[0] != '0' && s[0] != '1')) return -1;
  int v = (s[0] - '0') * 1000;
  if (s.size() == 1) return v;
  if (s[1] != '.' || s.size() > 5) return -1;
  int scale = 100;
  for (char c : s.substr(2)) {
    if (c < '0' || c > '9') return -1;
    v += (c - '0') * scale;
    scale /= 10;
  }
  return v <= 1000 ? v : -1;
}

}  // namespace compress_detail

/// Adds one Accept-Encoding field value to `out` (call once per field line). On error `out`
/// may hold part of the line; the caller treats the request as asking for no coding.
inline std::error_code parse_accept_encoding(std::string_view value, accept_encoding& out) noexcept {
  using namespace compress_detail;
  out.present = true;
  std::size_t elements = 0;
  while (true) {
    const auto comma = value.find(',');
    const std::string_view element = trim(value.substr(0, comma));
    if (!element.empty()) {  // empty list elements are allowed (RFC 9110 §5.6.1)
      if (++elements > accept_encoding::max_elements) return make_error_code(accept_encoding_error::too_many);
      const auto semi = element.find(';');
      const std::string_view coding = trim(element.substr(0, semi));
      if (!is_token(coding)) return make_error_code(accept_encoding_error::bad_token);
      int w = 1000;
      if (semi != std::string_view::npos) {
        const std::string_view param = trim(element.substr(semi + 1));
        if (param.size() < 2 || lower(param[0]) != 'q' || param[1] != '=')
          return make_error_code(accept_encoding_error::bad_weight);
        w = parse_qvalue(param.substr(2));
        if (w < 0) return make_error_code(accept_encoding_error::bad_weight);
      }
      if (coding == "*") out.any = w;
      else if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) out.weight[1] = w;
      else if (iequals(coding, "br")) out.weight[2] = w;
      else if (iequals(coding, "zstd")) out.weight[3] = w;
      else if (iequals(coding, "identity")) out.weight[0] = w;
    }
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return {};
}

/// The coding to send, given what the client accepts and the server's order of preference
/// (codings not in `prefer` are never chosen). identity when none is acceptable.
constexpr content_coding choose_coding(const accept_encoding& ae, std::span<const content_coding> prefer) noexcept {
  if (!ae.present) return content_coding::identity;
  content_coding best = content_coding::identity;
  int best_w = 0;
  for (const auto c : prefer) {
    if (c == content_coding::identity) continue;
    if (const int w = ae.weight_of(c); w > best_w) best = c, best_w = w;
  }
  if (best == content_coding::identity) return best;
  const int identity_w = ae.weight[0] >= 0 ? ae.weight[0] : ae.any;  // named (or "*"): it may outrank
  return identity_w > best_w ? content_coding::identity : best;
}

/// Parses every field line and chooses; a malformed line means identity.
inline content_coding negotiate(std::span<const std::string_view> accept_encoding_lines,
                                   std::span<const content_coding> prefer) noexcept {
  accept_encoding ae;
  for (const auto line : accept_encoding_lines)
    if (parse_accept_encoding(line, ae)) return content_coding::identity;
  return choose_coding(ae, prefer);
}

}  // namespace rproxy::middleware

template <>
struct std::is_error_code_enum<rproxy::middleware::accept_encoding_error> : std::true_type {};
