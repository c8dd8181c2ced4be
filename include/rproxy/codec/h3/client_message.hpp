// rproxy/codec/h3/client_message.hpp: how an HTTP request becomes HTTP/3 header fields and how
// HTTP/3 response fields become a response head (RFC 9114 §4.1-4.3), sans-I/O.
//
//     rproxy::codec::h3::request_fields f;
//     if (auto ec = f.build({.method = "POST", .authority = "api", .path = "/x", .headers = hs})) ...
//     nghttp3_conn_submit_request(h3, sid, f.nva().data(), f.nva().size(), ...);
//
//     rproxy::codec::h3::response_builder b{limits};
//     b.begin(); b.add(token, name, value) ...; b.finish() -> response_head or an error
//
// The request side lowercases names, drops the connection-specific fields HTTP/3 forbids
// (Connection and what it names, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade, TE
// other than "trailers") and folds Host into :authority. The response side takes exactly one
// :status of three digits, no other pseudo-header, pseudo-headers first, and bounds the number
// and total size of the fields.
#pragma once

#include <nghttp3/nghttp3.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/codec/h3/client_error.hpp>

namespace rproxy::codec::h3 {

struct field {
  std::string name;
  std::string value;
  friend bool operator==(const field&, const field&) = default;
};

/// Bounds on what the client sends and accepts.
struct client_limits {
  std::size_t max_fields = 100;                ///< header fields per request or response
  std::size_t max_field_bytes = 64 * 1024;     ///< a response's header section (names + values + 32 per field, RFC 9114 §4.2.2)
};

struct request_head {
  std::string method = "GET";
  std::string scheme = "https";
  std::string authority;  ///< empty: taken from a Host field
  std::string path = "/";
  std::vector<field> headers;  ///< regular fields, any case
};

struct response_head {
  int status = 0;
  std::vector<field> headers;  ///< lowercase names, in the order received
  std::optional<std::uint64_t> content_length;
};

namespace detail {

inline bool is_tchar(unsigned char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-': case '.':
    case '^': case '_': case '`': case '|': case '~': return true;
    default: return false;
  }
}
inline bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_tchar(c)) return false;
  return true;
}
/// A field value HTTP/3 may carry: no NUL, CR or LF, no leading or trailing whitespace.
inline bool is_field_value(std::string_view v) noexcept {
  for (unsigned char c : v)
    if (c == 0 || c == '\r' || c == '\n') return false;
  return v.empty() || (v.front() != ' ' && v.front() != '\t' && v.back() != ' ' && v.back() != '\t');
}
inline char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}
/// Whether `list` (a comma-separated Connection value) names `name`, case-insensitively.
inline bool names_token(std::string_view list, std::string_view name) noexcept {
  while (!list.empty()) {
    const auto comma = list.find(',');
    auto item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, name)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}
inline nghttp3_nv make_nv(std::string_view n, std::string_view v) noexcept {
  return {reinterpret_cast<std::uint8_t*>(const_cast<char*>(n.data())), reinterpret_cast<std::uint8_t*>(const_cast<char*>(v.data())),
          n.size(), v.size(), NGHTTP3_NV_FLAG_NONE};
}

}  // namespace detail

/// A request's HTTP/3 field lines. The nv array points into this object and into the head it
/// was built from; both must stay put until nghttp3_conn_submit_request (which copies) returns.
class request_fields {
public:
  explicit request_fields(client_limits l = {}) : limits_(l) {}

  std::error_code build(const request_head& h) {
    nva_.clear();
    names_.clear();
    if (!detail::is_token(h.method)) return make_error_code(client_error::unsupported_method);
    if (h.method == "CONNECT") return make_error_code(client_error::unsupported_method);
    if (h.path.empty() || !detail::is_field_value(h.path) || h.path.find(' ') != std::string::npos)
      return make_error_code(client_error::bad_request_field);
    std::string_view authority = h.authority;
    std::string_view connection;
    for (const auto& f : h.headers) {
      if (detail::iequals(f.name, "host") && authority.empty()) authority = f.value;
      if (detail::iequals(f.name, "connection")) connection = f.value;
    }
    if (!detail::is_field_value(authority) || authority.find(' ') != std::string_view::npos)
      return make_error_code(client_error::bad_request_field);
    if (h.headers.size() + 4 > limits_.max_fields) return make_error_code(client_error::bad_request_field);
    names_.reserve(h.headers.size());
    nva_.reserve(h.headers.size() + 4);
    nva_.push_back(detail::make_nv(":method", h.method));
    nva_.push_back(detail::make_nv(":scheme", h.scheme));
    if (!authority.empty()) nva_.push_back(detail::make_nv(":authority", authority));
    nva_.push_back(detail::make_nv(":path", h.path));
    for (const auto& f : h.headers) {
      if (!detail::is_token(f.name) || !detail::is_field_value(f.value)) return make_error_code(client_error::bad_request_field);
      if (dropped(f, connection)) continue;
      std::string n(f.name);
      for (auto& c : n) c = detail::lower(c);
      names_.push_back(std::move(n));
    }
    // The names are final now (no more reallocation): point the nv entries at them.
    std::size_t k = 0;
    for (const auto& f : h.headers) {
      if (dropped(f, connection)) continue;
      nva_.push_back(detail::make_nv(names_[k++], f.value));
    }
    return {};
  }

  std::span<const nghttp3_nv> nva() const noexcept { return nva_; }

private:
  static bool dropped(const field& f, std::string_view connection) noexcept {
    using detail::iequals;
    if (iequals(f.name, "host") || iequals(f.name, "connection") || iequals(f.name, "keep-alive") ||
        iequals(f.name, "proxy-connection") || iequals(f.name, "transfer-encoding") || iequals(f.name, "upgrade"))
      return true;
    if (iequals(f.name, "te")) return !iequals(f.value, "trailers");
    return !connection.empty() && detail::names_token(connection, f.name);
  }

  client_limits limits_;
  std::vector<std::string> names_;
  std::vector<nghttp3_nv> nva_;
};

/// A request's trailer section as HTTP/3 sends it (RFC 9114 §4.1.2): names lowercased, the
/// connection-specific fields (and TE) left out, no pseudo-header (one is an error), bounded
/// as a head is (max_fields fields, max_field_bytes counting names + values + 32 each).
inline std::error_code trailer_fields(std::span<const field> in, std::vector<field>& out, const client_limits& l) {
  out.clear();
  std::size_t bytes = 0;
  for (const auto& f : in) {
    if (!detail::is_token(f.name) || !detail::is_field_value(f.value)) {
      out.clear();
      return make_error_code(client_error::bad_request_field);
    }
    using detail::iequals;
    if (iequals(f.name, "connection") || iequals(f.name, "keep-alive") || iequals(f.name, "proxy-connection") ||
        iequals(f.name, "transfer-encoding") || iequals(f.name, "upgrade") || iequals(f.name, "te"))
      continue;
    bytes += f.name.size() + f.value.size() + 32;
    if (out.size() >= l.max_fields || bytes > l.max_field_bytes) {
      out.clear();
      return make_error_code(client_error::bad_request_field);
    }
    out.push_back({std::string(f.name), f.value});
    for (auto& c : out.back().name) c = detail::lower(c);
  }
  return {};
}

/// Collects one response header section (interim 1xx sections too: finish() says which).
class response_builder {
public:
  explicit response_builder(client_limits l = {}) : limits_(l) {}

  void begin() {
    head_.status = 0;
    head_.headers.clear();
    head_.content_length.reset();
    bytes_ = 0;
    regular_seen_ = false;
    error_ = {};
  }

  /// One field line; the first error sticks (later fields are ignored) and finish() returns it.
  std::error_code add(std::string_view name, std::string_view value) {
    if (error_) return error_;
    bytes_ += name.size() + value.size() + 32;
    if (bytes_ > limits_.max_field_bytes) return error_ = make_error_code(client_error::fields_too_large);
    if (!name.empty() && name.front() == ':') {
      if (name != ":status" || regular_seen_) return error_ = make_error_code(client_error::bad_response_field);
      if (head_.status != 0) return error_ = make_error_code(client_error::bad_status);
      if (value.size() != 3) return error_ = make_error_code(client_error::bad_status);
      int s = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return error_ = make_error_code(client_error::bad_status);
        s = s * 10 + (c - '0');
      }
      if (s < 100 || s > 599) return error_ = make_error_code(client_error::bad_status);
      head_.status = s;
      return {};
    }
    regular_seen_ = true;
    if (head_.headers.size() >= limits_.max_fields) return error_ = make_error_code(client_error::too_many_fields);
    if (name == "content-length") {
      if (value.empty() || value.size() > 19) return error_ = make_error_code(client_error::bad_content_length);
      std::uint64_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return error_ = make_error_code(client_error::bad_content_length);
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
      }
      if (head_.content_length && *head_.content_length != n) return error_ = make_error_code(client_error::bad_content_length);
      head_.content_length = n;
    }
    head_.headers.push_back({std::string(name), std::string(value)});
    return {};
  }

  /// The section is complete: an error, or the head (status 1xx: an interim response).
  std::error_code finish() {
    if (error_) return error_;
    if (head_.status == 0) return error_ = make_error_code(client_error::bad_status);
    return {};
  }

  bool interim() const noexcept { return head_.status >= 100 && head_.status < 200; }
  const response_head& head() const noexcept { return head_; }
  response_head& head() noexcept { return head_; }

private:
  client_limits limits_;
  response_head head_;
  std::size_t bytes_ = 0;
  bool regular_seen_ = false;
  std::error_code error_;
};

}  // namespace rproxy::codec::h3
