// rproxy/codec/h2/request.hpp: an HTTP/2 request head as the HTTP/1.1 request model sees it.
//
// The server session (server_session.hpp) collects a stream's header block into an
// `h2::request`. Its head() is an `http1::request_head_view`, so everything written for HTTP/1.1
// requests (routing, forward rules, the upstream head) takes it unchanged; the pseudo-header
// fields map as an HTTP/1.1 proxy needs them (RFC 9113 §8.3.1, §8.2.3):
//
//   :method            -> method
//   :path              -> target ("*" for OPTIONS *; CONNECT without :protocol: :authority)
//   :authority         -> a Host field, first (a Host field the client sent must equal it)
//   cookie crumbs      -> one "cookie" field, joined with "; ", where the first crumb was
//   :scheme, :protocol -> scheme(), protocol() (RFC 8441 extended CONNECT)
//
// and h2::request_view is the middleware request_view (header, cookie, query) over it:
//
//     for (const auto& e : session.feed(bytes, now))
//       if (e.what == h2::event_kind::request) {
//         const h2::request& r = session.request(e.stream_id);
//         h2::request_view req{r};                  // like http1::request_view
//         req.header("authorization"); req.cookie("session"); req.query("api_key");
//         r.head().fields.find("host");             // ":authority"
//       }
//
// Field names are lowercase (HTTP/2 requires it); every name is a token and every value a
// valid HTTP/1.1 field value (the session refuses others with 400), so the head can be
// serialized for an HTTP/1.1 backend as it is.
#pragma once

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/codec/h2/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rproxy::codec::h2 {

namespace detail {

/// One header block (a request head or its trailers) as it arrives field by field: the bytes
/// are copied into one arena, bounded by the limits, and views are made once it is whole.
class header_block {
public:
  void reset(std::size_t max_bytes, std::size_t max_count) {
    arena_.clear();
    refs_.clear();
    // Room for a usual request's fields at once (one allocation each, not one per doubling).
    arena_.reserve(std::min<std::size_t>(max_bytes, 512));
    refs_.reserve(std::min<std::size_t>(max_count, 16));
    views_.clear();
    cookie_.clear();
    cookie_at_ = npos;
    bytes_ = 0;
    max_bytes_ = max_bytes;
    max_count_ = max_count;
    error_ = {};
  }

  /// Adds one field as nghttp2 decoded it (names lowercase; pseudo-header fields first).
  void add(std::string_view name, std::string_view value) {
    if (error_ != error{}) return;  // refused already: keep nothing more
    bytes_ += name.size() + value.size() + 32;
    if (bytes_ > max_bytes_) return fail(error::header_too_large);
    if (refs_.size() + (cookie_at_ != npos ? 1 : 0) >= max_count_) return fail(error::too_many_headers);
    if (name == "cookie") {  // RFC 9113 §8.2.3: crumbs are joined with "; "
      if (cookie_at_ == npos) cookie_at_ = refs_.size();
      if (!cookie_.empty()) cookie_ += "; ";
      cookie_ += value;
      return;
    }
    refs_.push_back({arena_.size(), name.size(), arena_.size() + name.size(), value.size()});
    arena_ += name;
    arena_ += value;
  }
  void fail(error e) noexcept {
    if (error_ == error{}) error_ = e;
  }
  error failed() const noexcept { return error_; }

  std::size_t size() const noexcept { return refs_.size(); }
  std::string_view name(std::size_t i) const noexcept { return std::string_view(arena_).substr(refs_[i].name, refs_[i].name_len); }
  std::string_view value(std::size_t i) const noexcept { return std::string_view(arena_).substr(refs_[i].value, refs_[i].value_len); }
  std::optional<std::string_view> cookie() const noexcept {
    if (cookie_at_ == npos) return std::nullopt;
    return std::string_view(cookie_);
  }
  std::size_t cookie_position() const noexcept { return cookie_at_; }

  std::string arena_;
  std::vector<http1::field_view> views_;

private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  struct ref {
    std::size_t name, name_len, value, value_len;
  };
  std::vector<ref> refs_;
  std::string cookie_;
  std::size_t cookie_at_ = npos;
  std::size_t bytes_ = 0, max_bytes_ = 0, max_count_ = 0;
  error error_{};
};

constexpr bool is_pseudo(std::string_view name) noexcept { return !name.empty() && name.front() == ':'; }

/// A valid :authority (and Host) for an HTTP/1.1 Host field: host characters, no userinfo.
constexpr bool is_authority(std::string_view a) noexcept {
  return http1::detail::all_of_class(a, http1::detail::cc_host);
}

}  // namespace detail

/// One request received on a stream: its head (HTTP/1.1 model), then its trailers.
class request {
public:
  request() = default;
  request(const request&) = delete;  // head() views point into it
  request& operator=(const request&) = delete;

  std::int32_t stream_id() const noexcept { return stream_id_; }
  std::string_view method() const noexcept { return head_.method; }
  /// The request-target: :path, or :authority for a CONNECT without :protocol.
  std::string_view target() const noexcept { return head_.target; }
  std::string_view path() const noexcept { return http1::path_of_target(head_.target); }
  std::string_view scheme() const noexcept { return scheme_; }
  std::string_view authority() const noexcept { return authority_; }
  /// RFC 8441 :protocol of an extended CONNECT ("websocket"), else empty.
  std::string_view protocol() const noexcept { return protocol_; }
  /// The content-length field's value, if the client sent one (nghttp2 checks DATA against it).
  std::optional<std::uint64_t> content_length() const noexcept { return content_length_; }

  /// The head as an HTTP/1.1 request head (version 1.1, Host first, cookies joined).
  const http1::request_head_view& head() const noexcept { return head_; }
  /// Trailer fields, once the stream's end came with a trailer block (else empty).
  const http1::fields_view& trailers() const noexcept { return trailers_; }

private:
  friend class server_session;

  /// Turns a whole request header block into the head; an error refuses the request.
  error take_head(std::int32_t id) {
    auto& b = head_block_;
    stream_id_ = id;
    if (b.failed() != error{}) return b.failed();
    std::string_view method, path, authority;
    std::optional<std::string_view> host;
    std::size_t hosts = 0;
    for (std::size_t i = 0; i < b.size(); ++i) {
      const auto n = b.name(i), v = b.value(i);
      if (n == ":method") method = v;
      else if (n == ":path") path = v;
      else if (n == ":authority") authority = v;
      else if (n == ":scheme") scheme_ = v;
      else if (n == ":protocol") protocol_ = v;
      else if (detail::is_pseudo(n)) return error::malformed;  // nghttp2 refuses others first
      else {
        if (!http1::is_valid_field_name(n) || !http1::is_valid_field_value(v)) return error::bad_field;
        if (n == "host") {
          ++hosts;
          host = v;
        } else if (n == "content-length") {
          std::uint64_t cl = 0;
          if (!http1::detail::parse_decimal(v, cl)) return error::malformed;
          content_length_ = cl;
        }
      }
    }
    if (auto c = b.cookie(); c && !http1::is_valid_field_value(*c)) return error::bad_field;
    if (!http1::detail::is_token(method)) return error::malformed;
    // Host from :authority; a Host field must say the same (RFC 9113 §8.3.1), and one is needed.
    if (hosts > 1) return error::bad_authority;
    if (!authority.empty()) {
      if (!detail::is_authority(authority)) return error::bad_authority;
      if (host && !http1::detail::iequals(*host, authority)) return error::bad_authority;
    } else {
      if (!host || !detail::is_authority(*host)) return error::bad_authority;
      authority = *host;
    }
    const bool plain_connect = method == "CONNECT" && protocol_.empty();
    if (plain_connect) {
      path = authority;
    } else {
      // A request-target as RFC 9112 §3.2 has it: VCHARs without '#' (no fragment).
      if (!http1::detail::all_of_class(path, http1::detail::cc_target) || path.find('#') != std::string_view::npos)
        return error::bad_target;
      if (path.front() != '/' && !(path == "*" && method == "OPTIONS")) return error::bad_target;
    }
    authority_ = authority;
    // The views: Host first, then the fields in order, the joined cookie at its first crumb.
    auto& views = b.views_;
    views.clear();
    views.reserve(b.size() + 2);  // (Host and a joined cookie at most besides: one allocation)
    views.push_back({"host", authority_});
    for (std::size_t i = 0; i <= b.size(); ++i) {
      if (i == b.cookie_position()) views.push_back({"cookie", *b.cookie()});
      if (i == b.size()) break;
      const auto n = b.name(i);
      if (!detail::is_pseudo(n) && n != "host") views.push_back({n, b.value(i)});
    }
    head_ = {method, path, http1::http_version::http11, http1::fields_view(views), http1::wire_protocol::h2};
    return error{};
  }

  /// Takes a whole trailer block; an error resets the stream.
  error take_trailers() {
    auto& b = trailer_block_;
    if (b.failed() != error{}) return b.failed() == error::header_too_large || b.failed() == error::too_many_headers
                                          ? error::trailer_too_large
                                          : b.failed();
    auto& views = b.views_;
    views.clear();
    views.reserve(b.size() + 1);
    for (std::size_t i = 0; i <= b.size(); ++i) {
      if (i == b.cookie_position()) views.push_back({"cookie", *b.cookie()});
      if (i == b.size()) break;
      const auto n = b.name(i), v = b.value(i);
      if (detail::is_pseudo(n)) return error::malformed;
      if (!http1::is_valid_field_name(n) || !http1::is_valid_field_value(v)) return error::bad_field;
      views.push_back({n, v});
    }
    trailers_ = http1::fields_view(views);
    return error{};
  }

  detail::header_block head_block_, trailer_block_;  // the views below point into them
  std::int32_t stream_id_ = 0;
  std::string_view scheme_, authority_, protocol_;
  std::optional<std::uint64_t> content_length_;
  http1::request_head_view head_{};
  http1::fields_view trailers_{};
};

/// A request as the middleware request_view concept: header(), cookie(), query() (from
/// http1::request_view), plus the HTTP/2 facts.
class request_view : public http1::request_view {
public:
  explicit request_view(const request& r) noexcept : http1::request_view(r.head()), req_(&r) {}
  const request& get() const noexcept { return *req_; }
  std::int32_t stream_id() const noexcept { return req_->stream_id(); }
  std::string_view authority() const noexcept { return req_->authority(); }
  std::string_view scheme() const noexcept { return req_->scheme(); }
  std::string_view protocol() const noexcept { return req_->protocol(); }

private:
  const request* req_;
};

}  // namespace rproxy::codec::h2
