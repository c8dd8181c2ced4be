// rproxy/codec/h3/request.hpp: an HTTP/3 request head as the HTTP/1.1 request model sees it.
//
// HTTP/3 requests carry the same pseudo-header fields as HTTP/2's (RFC 9114 §4.3), so they map
// as codec/h2/request.hpp maps them, with the same header_block (bounded arena) underneath:
//
//   :method            -> method
//   :path              -> target ("*" for OPTIONS *; a CONNECT: :authority)
//   :authority         -> a Host field, first (a Host field the client sent must equal it)
//   cookie crumbs      -> one "cookie" field, joined with "; " (RFC 9114 §4.2.1)
//   :scheme            -> scheme()
//
//     h3::request r;
//     r.add(":method", "GET"); r.add(":path", "/a"); r.add(":authority", "x"); r.add(":scheme", "https");
//     if (r.finish_head(0) == h2::error{}) { r.head();  h3::request_view v{r}; v.header("host"); }
//
// Field names arrive lowercase from QPACK (nghttp3 refuses uppercase ones); every name must be
// a token and every value a valid HTTP/1.1 field value, so the head can go to an HTTP/1.1
// backend as it is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include <rproxy/codec/h2/error.hpp>
#include <rproxy/codec/h2/request.hpp>
#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/request_view.hpp>

namespace rproxy::codec::h3 {

/// One request received on a stream: its head (HTTP/1.1 model), then its trailers.
class request {
public:
  explicit request(std::size_t max_bytes = 64 * 1024, std::size_t max_count = 100) {
    head_block_.reset(max_bytes, max_count);
    trailer_block_.reset(max_bytes, max_count);
  }
  request(const request&) = delete;  // head() views point into it
  request& operator=(const request&) = delete;

  // --- building (the session, or a test) -----------------------------------------------------
  /// A field of the head section as QPACK decoded it.
  void add(std::string_view name, std::string_view value) { head_block_.add(name, value); }
  /// A field of the trailer section.
  void add_trailer(std::string_view name, std::string_view value) { trailer_block_.add(name, value); }

  /// Turns the whole head section into the head; an error refuses the request (4xx).
  h2::error finish_head(std::int64_t id) {
    auto& b = head_block_;
    stream_id_ = id;
    if (b.failed() != h2::error{}) return b.failed();
    std::string_view method, path, authority;
    std::optional<std::string_view> host;
    std::size_t hosts = 0;
    bool has_method = false, has_path = false, has_scheme = false, regular = false;
    for (std::size_t i = 0; i < b.size(); ++i) {
      const auto n = b.name(i), v = b.value(i);
      const bool pseudo = h2::detail::is_pseudo(n);
      if (pseudo && regular) return h2::error::malformed;  // RFC 9114 §4.3: pseudo fields first
      if (n == ":method") {
        if (has_method) return h2::error::malformed;
        method = v, has_method = true;
      } else if (n == ":path") {
        if (has_path) return h2::error::malformed;
        path = v, has_path = true;
      } else if (n == ":authority") {
        authority = v;
      } else if (n == ":scheme") {
        if (has_scheme) return h2::error::malformed;
        scheme_ = v, has_scheme = true;
      } else if (pseudo) {
        return h2::error::malformed;
      } else {
        regular = true;
        if (!http1::is_valid_field_name(n) || !http1::is_valid_field_value(v)) return h2::error::bad_field;
        if (http1::detail::iequals(n, "connection") || http1::detail::iequals(n, "transfer-encoding") ||
            http1::detail::iequals(n, "keep-alive") || http1::detail::iequals(n, "upgrade") ||
            http1::detail::iequals(n, "proxy-connection") || (http1::detail::iequals(n, "te") && v != "trailers"))
          return h2::error::malformed;  // connection-specific fields are malformed in HTTP/3 (§4.2)
        if (n == "host") {
          ++hosts;
          host = v;
        } else if (n == "content-length") {
          std::uint64_t cl = 0;
          if (!http1::detail::parse_decimal(v, cl)) return h2::error::malformed;
          if (content_length_ && *content_length_ != cl) return h2::error::malformed;
          content_length_ = cl;
        }
      }
    }
    if (auto c = b.cookie(); c && !http1::is_valid_field_value(*c)) return h2::error::bad_field;
    if (!has_method || !http1::detail::is_token(method)) return h2::error::malformed;
    if (hosts > 1) return h2::error::bad_authority;
    if (!authority.empty()) {
      if (!h2::detail::is_authority(authority)) return h2::error::bad_authority;
      if (host && !http1::detail::iequals(*host, authority)) return h2::error::bad_authority;
    } else {
      if (!host || !h2::detail::is_authority(*host)) return h2::error::bad_authority;
      authority = *host;
    }
    if (method == "CONNECT") {
      if (has_path || has_scheme) return h2::error::malformed;
      path = authority;
    } else {
      if (!has_path || !has_scheme || path.empty()) return h2::error::malformed;
      if (!http1::detail::all_of_class(path, http1::detail::cc_target) || path.find('#') != std::string_view::npos)
        return h2::error::bad_target;
      if (path.front() != '/' && !(path == "*" && method == "OPTIONS")) return h2::error::bad_target;
    }
    authority_ = authority;
    auto& views = b.views_;
    views.clear();
    views.push_back({"host", authority_});
    for (std::size_t i = 0; i <= b.size(); ++i) {
      if (i == b.cookie_position()) views.push_back({"cookie", *b.cookie()});
      if (i == b.size()) break;
      const auto n = b.name(i);
      if (!h2::detail::is_pseudo(n) && n != "host") views.push_back({n, b.value(i)});
    }
    head_ = {method, path, http1::http_version::http11, http1::fields_view(views), http1::wire_protocol::h3};
    return h2::error{};
  }

  /// Takes the whole trailer section; an error resets the stream.
  h2::error finish_trailers() {
    auto& b = trailer_block_;
    if (b.failed() != h2::error{}) return h2::error::trailer_too_large;
    auto& views = b.views_;
    views.clear();
    for (std::size_t i = 0; i <= b.size(); ++i) {
      if (i == b.cookie_position()) views.push_back({"cookie", *b.cookie()});
      if (i == b.size()) break;
      const auto n = b.name(i), v = b.value(i);
      if (h2::detail::is_pseudo(n)) return h2::error::malformed;
      if (!http1::is_valid_field_name(n) || !http1::is_valid_field_value(v)) return h2::error::bad_field;
      views.push_back({n, v});
    }
    trailers_ = http1::fields_view(views);
    return h2::error{};
  }

  // --- reading -------------------------------------------------------------------------------
  std::int64_t stream_id() const noexcept { return stream_id_; }
  std::string_view method() const noexcept { return head_.method; }
  std::string_view target() const noexcept { return head_.target; }
  std::string_view path() const noexcept { return http1::path_of_target(head_.target); }
  std::string_view scheme() const noexcept { return scheme_; }
  std::string_view authority() const noexcept { return authority_; }
  std::optional<std::uint64_t> content_length() const noexcept { return content_length_; }
  const http1::request_head_view& head() const noexcept { return head_; }
  const http1::fields_view& trailers() const noexcept { return trailers_; }

private:
  h2::detail::header_block head_block_, trailer_block_;  // the views below point into them
  std::int64_t stream_id_ = -1;
  std::string_view scheme_, authority_;
  std::optional<std::uint64_t> content_length_;
  http1::request_head_view head_{};
  http1::fields_view trailers_{};
};

/// A request as the middleware request_view concept: header(), cookie(), query().
class request_view : public http1::request_view {
public:
  explicit request_view(const request& r) noexcept : http1::request_view(r.head()), req_(&r) {}
  const request& get() const noexcept { return *req_; }
  std::int64_t stream_id() const noexcept { return req_->stream_id(); }
  std::string_view authority() const noexcept { return req_->authority(); }
  std::string_view scheme() const noexcept { return req_->scheme(); }

private:
  const request* req_;
};

}  // namespace rproxy::codec::h3
