// rproxy/codec/http1/serializer.hpp: HTTP/1.1 heads and body framing to bytes.
//
// A head becomes one contiguous buffer (append to a per-connection output string to cork
// several writes into one syscall). Body framing is up to the caller, with helpers:
//
//     http1::response_head h{200, "OK"};
//     h.fields.add("Content-Type", "text/plain");
//     http1::set_content_length(h.fields, body.size());   // or set_chunked(h.fields)
//     http1::set_keep_alive(h, client_wants_keep_alive);  // Connection per HTTP version
//     std::string out = http1::serialize(h);
//     out += body;
//     // chunked: http1::append_chunk(out, piece) ...; http1::append_last_chunk(out, trailers);
//
//     co_await async_write(sock, asio::buffer(http1::make_error_response(431)));
//
// Invalid heads (method not a token, bad target, CR/LF in a reason or field) throw
// std::invalid_argument: serializing them would allow response splitting.
#pragma once

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/detail/lines.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/status.hpp>

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace rproxy::codec::http1 {

namespace detail {

template <class H>
concept request_like = requires(const H& h) {
  { h.method } -> std::convertible_to<std::string_view>;
  { h.target } -> std::convertible_to<std::string_view>;
  { h.version } -> std::convertible_to<http_version>;
  h.fields.begin();
};

template <class H>
concept response_like = requires(const H& h) {
  { h.status } -> std::convertible_to<unsigned>;
  { h.reason } -> std::convertible_to<std::string_view>;
  { h.version } -> std::convertible_to<http_version>;
  h.fields.begin();
};

inline void append_decimal(std::string& out, std::uint64_t v) {
  std::array<char, 20> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  out.append(buf.data(), r.ptr);
}

template <class Fields>
std::size_t fields_size(const Fields& fs) noexcept {
  std::size_t n = 0;
  for (const auto& f : fs) n += f.name.size() + f.value.size() + 4;
  return n;
}

template <class Fields>
void append_fields(std::string& out, const Fields& fs) {
  for (const auto& f : fs) {
    const std::string_view name = f.name, value = f.value;
    if (!is_token(name)) throw std::invalid_argument("http1::serialize: invalid field name");
    if (!is_field_value(value)) throw std::invalid_argument("http1::serialize: invalid field value");
    out.append(name).append(": ").append(value).append("\r\n");
  }
}

}  // namespace detail

/// Bytes serialize(h) produces (to reserve an output buffer).
template <class Head>
  requires detail::request_like<Head> || detail::response_like<Head>
std::size_t serialized_size(const Head& h) noexcept {
  std::size_t n = 8 + 2 + detail::fields_size(h.fields) + 2;  // version, CRLF, fields, CRLF
  if constexpr (detail::request_like<Head>)
    n += std::string_view(h.method).size() + std::string_view(h.target).size() + 2;
  else
    n += 5 + std::string_view(h.reason).size();
  return n;
}

/// Appends a request head: request line, field lines, empty line.
template <detail::request_like Head>
void serialize_to(std::string& out, const Head& h) {
  const std::string_view method = h.method, target = h.target;
  if (!detail::is_token(method)) throw std::invalid_argument("http1::serialize: invalid method");
  if (detail::check_target(method, target) != detail::ok || target.empty())
    throw std::invalid_argument("http1::serialize: invalid request-target");
  out.append(method).append(" ").append(target).append(" ").append(to_string(h.version));
  out.append("\r\n");
  detail::append_fields(out, h.fields);
  out.append("\r\n");
}

/// Appends a response head: status line, field lines, empty line.
template <detail::response_like Head>
void serialize_to(std::string& out, const Head& h) {
  const unsigned status = h.status;
  const std::string_view reason = h.reason;
  if (status < 100 || status > 599) throw std::invalid_argument("http1::serialize: invalid status");
  for (char c : reason)
    if (!detail::is_field_char(c)) throw std::invalid_argument("http1::serialize: invalid reason");
  out.append(to_string(h.version)).append(" ");
  detail::append_decimal(out, status);
  out.append(" ").append(reason).append("\r\n");
  detail::append_fields(out, h.fields);
  out.append("\r\n");
}

/// A head as one contiguous buffer.
template <class Head>
  requires detail::request_like<Head> || detail::response_like<Head>
std::string serialize(const Head& h) {
  std::string out;
  out.reserve(serialized_size(h));
  serialize_to(out, h);
  return out;
}

// --- body framing ------------------------------------------------------------------------

/// Content-Length framing: sets Content-Length, removes Transfer-Encoding.
inline void set_content_length(fields& f, std::uint64_t n) {
  std::string v;
  detail::append_decimal(v, n);
  f.erase("Transfer-Encoding");
  f.set("Content-Length", v);
}

/// Chunked framing (HTTP/1.1 only): sets Transfer-Encoding: chunked, removes Content-Length.
inline void set_chunked(fields& f) {
  f.erase("Content-Length");
  f.set("Transfer-Encoding", "chunked");
}

/// Makes the Connection field say what `keep_alive` means for `version`: "close" for 1.1
/// when not kept alive, "keep-alive" for 1.0 when kept alive, nothing otherwise. Other
/// connection options (e.g. "upgrade") are kept.
inline void set_keep_alive(fields& f, http_version version, bool keep_alive) {
  std::vector<std::string> options;
  for (const auto& x : f) {
    if (!detail::iequals(x.name, "connection")) continue;
    detail::for_each_element(x.value, [&](std::string_view o) {
      if (!detail::iequals(o, "close") && !detail::iequals(o, "keep-alive")) options.emplace_back(o);
      return true;
    });
  }
  if (version == http_version::http11 && !keep_alive) options.emplace_back("close");
  if (version == http_version::http10 && keep_alive) options.emplace_back("keep-alive");
  std::string value;
  for (const auto& o : options) value.append(value.empty() ? "" : ", ").append(o);
  if (value.empty()) {
    f.erase("Connection");
  } else {
    f.set("Connection", value);
  }
}

/// Same, for an owning head (uses the head's version).
template <class Head>
  requires requires(Head& h) { h.fields.set("", ""); h.version; }
void set_keep_alive(Head& h, bool keep_alive) {
  set_keep_alive(h.fields, h.version, keep_alive);
}

/// "<hex size>\r\n" of one chunk, without allocation (write it, the data, then crlf).
class chunk_header {
public:
  explicit chunk_header(std::uint64_t size) noexcept {
    const auto r = std::to_chars(buf_.data(), buf_.data() + 16, size, 16);
    r.ptr[0] = '\r';
    r.ptr[1] = '\n';
    len_ = static_cast<std::size_t>(r.ptr + 2 - buf_.data());
  }
  std::string_view view() const noexcept { return {buf_.data(), len_}; }

private:
  std::array<char, 18> buf_{};
  std::size_t len_ = 0;
};

inline constexpr std::string_view crlf = "\r\n";

/// Appends one chunk. Empty data appends nothing (an empty chunk would end the body).
inline void append_chunk(std::string& out, std::string_view data) {
  if (data.empty()) return;
  out.append(chunk_header(data.size()).view()).append(data).append(crlf);
}

/// Appends the last chunk, the trailer fields and the final CRLF.
template <class Fields = fields>
void append_last_chunk(std::string& out, const Fields& trailers = {}) {
  out.append("0\r\n");
  detail::append_fields(out, trailers);
  out.append(crlf);
}

// --- ready-made responses ----------------------------------------------------------------

struct error_response_options {
  bool keep_alive = false;        ///< default: Connection: close (safe after a parse error)
  bool head_request = false;      ///< answering HEAD: Content-Length but no body
  std::uint32_t retry_after_s = 0;  ///< > 0: adds Retry-After (429, 503)
};

/// A complete HTTP/1.1 response with a text/plain body: `text`, or the reason phrase if
/// empty, plus the `extra` fields (set after the others, so an extra Retry-After replaces the
/// one from `opt`). For a server answering a parse error (status_for(e)) or a pipeline reject.
inline std::string make_error_response(unsigned status, std::string_view text, const fields& extra,
                                       const error_response_options& opt = {}) {
  response_head h{status, std::string(reason_phrase(status))};
  const std::string_view body = text.empty() ? h.reason : text;
  const bool no_body = status < 200 || status == 204 || status == 304;
  if (!no_body) {
    h.fields.add("Content-Type", "text/plain; charset=utf-8");
    set_content_length(h.fields, body.size());
  }
  if (opt.retry_after_s > 0) {
    std::string v;
    detail::append_decimal(v, opt.retry_after_s);
    h.fields.add("Retry-After", v);
  }
  for (const auto& f : extra) h.fields.set(f.name, f.value);
  set_keep_alive(h, opt.keep_alive);
  std::string out = serialize(h);
  if (!no_body && !opt.head_request) out.append(body);
  return out;
}

inline std::string make_error_response(unsigned status, std::string_view text = {},
                                       const error_response_options& opt = {}) {
  return make_error_response(status, text, fields{}, opt);
}

}  // namespace rproxy::codec::http1
