// rproxy/observe/redact.hpp: keeps secrets (Authorization, tokens, keys, cookies, passwords)
// out of logs.
//
// Log helpers take structured fields by name; before a field's value is written, the logger's
// redaction_policy decides from the name (and, as a second net, from the value's shape) whether
// to print "[REDACTED]" instead. Names compare case-insensitively with '-' and '.' read as '_',
// so "Authorization", "proxy-authorization" and "X-Api-Key" are all caught.
//
//     rproxy::observe::redact("Authorization", "Bearer abc");   // "[REDACTED]"
//     rproxy::observe::redact("route", "api");                   // "api"
//     rproxy::observe::redaction_policy p;                       // the defaults, plus:
//     p.add_name("x-tenant-secret-header");
//
// Rule for callers: put variable data in fields, never inside the message text; the message is
// not scanned.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace rproxy::observe {

/// What a redacted value is replaced with.
inline constexpr std::string_view redacted_text = "[REDACTED]";

namespace detail {

constexpr char normalize_name_char(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return static_cast<char>(c - 'A' + 'a');
  if (c == '-' || c == '.' || c == ' ') return '_';
  return c;
}

inline std::string normalize_name(std::string_view s) {
  std::string out(s.size(), '\0');
  std::transform(s.begin(), s.end(), out.begin(), normalize_name_char);
  return out;
}

constexpr bool iequals_prefix(std::string_view s, std::string_view lower_prefix) noexcept {
  if (s.size() < lower_prefix.size()) return false;
  for (std::size_t i = 0; i < lower_prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower_prefix[i]) return false;
  }
  return true;
}

// Exact names (normalized) that always hold secrets.
inline constexpr std::array<std::string_view, 14> default_secret_names = {
    "key",     "pwd",  "pass",      "sig",       "signature", "otp",   "pin",
    "api_key", "auth", "x_auth",    "x_api_key", "apikey",    "nonce", "x_amz_security_token"};
// Substrings (normalized) that mark a name as secret wherever they appear.
inline constexpr std::array<std::string_view, 17> default_secret_substrings = {
    "authorization", "cookie",      "token",      "secret",     "passw",  "credential",
    "private_key",   "access_key",  "signing_key", "session",   "jwt",    "bearer",
    "api_key",       "apikey",      "passphrase", "client_key", "ssh_key"};

}  // namespace detail

/// Decides which field values must never reach a log. Build at startup, then share read-only.
class redaction_policy {
public:
  /// The default policy: the names above, plus values shaped like credentials.
  redaction_policy() = default;

  /// Also redact fields with exactly this name (case-insensitive; '-', '.' read as '_').
  redaction_policy& add_name(std::string_view name) {
    extra_names_.push_back(detail::normalize_name(name));
    return *this;
  }
  /// Also redact fields whose name contains this text.
  redaction_policy& add_substring(std::string_view part) {
    extra_substrings_.push_back(detail::normalize_name(part));
    return *this;
  }

  /// True if a field with this name holds a secret.
  bool is_secret_name(std::string_view name) const {
    char small[64];
    std::string big;
    std::string_view n;
    if (name.size() <= sizeof small) {
      std::transform(name.begin(), name.end(), small, detail::normalize_name_char);
      n = std::string_view(small, name.size());
    } else {
      big = detail::normalize_name(name);
      n = big;
    }
    auto exact = [&](std::string_view s) { return n == s; };
    auto inside = [&](std::string_view s) { return n.find(s) != std::string_view::npos; };
    return std::any_of(detail::default_secret_names.begin(), detail::default_secret_names.end(), exact) ||
           std::any_of(detail::default_secret_substrings.begin(), detail::default_secret_substrings.end(), inside) ||
           std::any_of(extra_names_.begin(), extra_names_.end(), exact) ||
           std::any_of(extra_substrings_.begin(), extra_substrings_.end(), inside);
  }

  /// True if the value itself looks like a credential, whatever its field is called:
  /// an HTTP auth header value ("Bearer ...", "Basic ...", "Digest ...") or a JWT ("eyJ...").
  static bool is_secret_value(std::string_view v) noexcept {
    if (detail::iequals_prefix(v, "bearer ") || detail::iequals_prefix(v, "basic ") ||
        detail::iequals_prefix(v, "digest ") || detail::iequals_prefix(v, "negotiate "))
      return true;
    if (v.starts_with("eyJ")) {  // base64url of '{"': a JWT has three dot-separated parts
      const auto first = v.find('.');
      return first != std::string_view::npos && v.find('.', first + 1) != std::string_view::npos;
    }
    return false;
  }

  /// `value`, or "[REDACTED]" if the name or the value says it is a secret.
  std::string_view apply(std::string_view name, std::string_view value) const {
    return is_secret_name(name) || is_secret_value(value) ? redacted_text : value;
  }

private:
  std::vector<std::string> extra_names_;
  std::vector<std::string> extra_substrings_;
};

/// The default policy (shared, read-only).
inline const redaction_policy& default_redaction() {
  static const redaction_policy p;
  return p;
}

/// `value`, or "[REDACTED]" under the default policy.
inline std::string_view redact(std::string_view name, std::string_view value) {
  return default_redaction().apply(name, value);
}

/// A request target with the values of its secret query parameters (by name, under `p`: an
/// `api_key`, an `access_token`, ...) replaced by "[REDACTED]", the rest as sent; `target`
/// itself when none is secret (names are percent-decoded first: `api%5Fkey` is `api_key`).
inline std::string redact_query(std::string_view target, const redaction_policy& p = default_redaction()) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return std::string(target);
  std::string out(target.substr(0, q + 1));
  std::string_view query = target.substr(q + 1);
  const auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  std::string name;
  for (bool first = true;; first = false) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    const std::string_view raw = pair.substr(0, eq);
    name.clear();
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '%' && i + 2 < raw.size() && hex(raw[i + 1]) >= 0 && hex(raw[i + 2]) >= 0) {
        name += static_cast<char>(hex(raw[i + 1]) * 16 + hex(raw[i + 2]));
        i += 2;
      } else {
        name += raw[i] == '+' ? ' ' : raw[i];
      }
    }
    if (!first) out += '&';
    if (eq != std::string_view::npos && p.is_secret_name(name)) out.append(raw).append("=").append(redacted_text);
    else out += pair;
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return out;
}

}  // namespace rproxy::observe
