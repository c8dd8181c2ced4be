// rproxy/codec/http1/detail/parser_impl.hpp: member definitions of http1::basic_parser
// (included at the end of parser.hpp; include parser.hpp, not this).
#pragma once

#include <rproxy/codec/http1/parser.hpp>

namespace rproxy::codec::http1 {

template <role Role>
parse_result basic_parser<Role>::parse(std::string_view in) {
  std::size_t used = 0;  // framing bytes consumed by this call
  for (;;) {
    switch (state_) {
      case state::head: return parse_head(in);
      case state::complete: return complete(used);
      case state::body_length: {
        const auto avail = in.size() - used;
        if (avail == 0) return more(used);
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, remaining_));
        remaining_ -= n;
        body_bytes_ += n;
        if (remaining_ == 0) state_ = state::complete;
        return {event::body, used + n, in.substr(used, n), {}};
      }
      case state::body_until_close: {
        const auto avail = in.size() - used;
        if (avail == 0) return more(used);
        // deliver up to the limit, then fail: the same events however the input is split
        const auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(avail, limits_.max_body_size - body_bytes_));
        if (n == 0) return fail(error::body_too_large);
        body_bytes_ += n;
        return {event::body, used + n, in.substr(used, n), {}};
      }
      case state::chunk_size: {
        const auto sub = in.substr(used);
        std::string_view line;
        const auto st = next_line(sub, line);
        if (st == scan::more) {
          if (partial_len(sub) > limits_.max_chunk_line) return fail(error::chunk_line_too_long);
          return more(used);
        }
        if (line.size() > limits_.max_chunk_line) return fail(error::chunk_line_too_long);
        if (st == scan::bad) return fail(error::bad_line_ending);
        std::uint64_t size = 0;
        if (const auto e = detail::parse_chunk_line(line, size); e != detail::ok) return fail(e);
        used += pos_;
        pos_ = scan_ = 0;
        if (size == 0) {
          refs_.clear();
          state_ = state::trailers;
        } else {
          if (size > limits_.max_body_size - body_bytes_) return fail(error::body_too_large);
          remaining_ = size;
          state_ = state::chunk_data;
        }
        continue;
      }
      case state::chunk_data: {
        const auto avail = in.size() - used;
        if (avail == 0) return more(used);
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(avail, remaining_));
        remaining_ -= n;
        body_bytes_ += n;
        if (remaining_ == 0) state_ = state::chunk_data_end;
        return {event::body, used + n, in.substr(used, n), {}};
      }
      case state::chunk_data_end: {
        const auto avail = in.size() - used;
        if (avail == 0) return more(used);
        if (in[used] != '\r' || (avail > 1 && in[used + 1] != '\n')) return fail(error::bad_chunk);
        if (avail == 1) return more(used);
        used += 2;
        state_ = state::chunk_size;
        continue;
      }
      case state::trailers: return parse_trailers(in, used);
      case state::upgraded: return {event::upgrade, 0, {}, {}};
      case state::closed: return {event::end_of_stream, 0, {}, {}};
      case state::failed: return {event::error, 0, {}, error_};
    }
  }
}

template <role Role>
parse_result basic_parser<Role>::finish() noexcept {
  switch (state_) {
    case state::head:
      if (pending_ || start_done_ || pos_ > 0) return fail(error::partial_message);
      state_ = state::closed;
      return {event::end_of_stream, 0, {}, {}};
    case state::body_until_close:
      state_ = state::closed;
      return {event::message_complete, 0, {}, {}};
    case state::complete: return complete(0);
    case state::upgraded:
    case state::closed: state_ = state::closed; return {event::end_of_stream, 0, {}, {}};
    case state::failed: return {event::error, 0, {}, error_};
    default: return fail(error::partial_message);
  }
}

template <role Role>
parse_result basic_parser<Role>::parse_head(std::string_view in) {
  if (in.size() < scan_) begin_head();  // the caller shrank its input: scan again
  std::size_t skip = 0;                 // empty lines before the start line (RFC 9112 §2.2)
  pending_ = !in.empty();
  for (;;) {
    std::string_view line;
    const auto line_start = pos_;
    const auto st = next_line(in, line);
    if (st == scan::more) {
      const auto partial = partial_len(in);
      if (!start_done_) {
        if (partial > limits_.max_start_line) return fail(error::start_line_too_long);
      } else if (partial > 0 && pos_ - fields_start_ + partial + 2 > limits_.max_header_bytes) {
        return fail(error::header_too_large);
      }
      return more(skip);
    }
    if (!start_done_) {
      if (line.size() > limits_.max_start_line) return fail(error::start_line_too_long);
      if (st == scan::bad) return fail(error::bad_line_ending);
      if (line.empty()) {
        skip += pos_;
        in.remove_prefix(pos_);
        pos_ = scan_ = 0;
        pending_ = !in.empty();
        continue;
      }
      std::string_view a, b;  // method + target, or reason
      if constexpr (is_request) {
        detail::request_line rl;
        if (const auto e = detail::parse_request_line(line, rl); e != detail::ok) return fail(e);
        head_.version = rl.version;
        a = rl.method;
        b = rl.target;
      } else {
        detail::status_line sl;
        if (const auto e = detail::parse_status_line(line, sl); e != detail::ok) return fail(e);
        head_.version = sl.version;
        head_.status = sl.status;
        a = sl.reason;
      }
      start_a_off_ = a.empty() ? 0 : static_cast<std::size_t>(a.data() - in.data());
      start_a_len_ = a.size();
      start_b_off_ = b.empty() ? 0 : static_cast<std::size_t>(b.data() - in.data());
      start_b_len_ = b.size();
      start_done_ = true;
      fields_start_ = pos_;
      continue;
    }
    if (!line.empty() && line_start - fields_start_ + line.size() + 2 > limits_.max_header_bytes)
      return fail(error::header_too_large);
    if (st == scan::bad) return fail(error::bad_line_ending);
    if (line.empty()) return finish_head(in, skip);
    if (refs_.size() >= limits_.max_header_count) return fail(error::too_many_headers);
    field_view f;
    if (const auto e = detail::parse_field_line(line, f); e != detail::ok) return fail(e);
    if (const auto e = on_header(f); e != detail::ok) return fail(e);
    refs_.push_back(ref_of(in, f));
  }
}

template <role Role>
parse_result basic_parser<Role>::finish_head(std::string_view in, std::size_t skip) {
  build_views(in, head_fields_);
  head_.fields = fields_view(head_fields_);
  if constexpr (is_request) {
    head_.method = in.substr(start_a_off_, start_a_len_);
    head_.target = in.substr(start_b_off_, start_b_len_);
  } else {
    head_.reason = in.substr(start_a_off_, start_a_len_);
  }
  trailer_fields_.clear();
  trailers_ = {};
  body_bytes_ = remaining_ = 0;
  const auto consumed = skip + pos_;
  const auto e = decide_framing();
  begin_head();
  if (e != detail::ok) return fail(e);
  return {event::head, consumed, {}, {}};
}

template <role Role>
http1::error basic_parser<Role>::on_header(const field_view& f) noexcept {
  using detail::iequals;
  const auto name = f.name;
  const auto value = f.value;
  switch (name.size()) {
    case 14:
      if (iequals(name, "content-length")) {
        if (hs_.cl_count++ > 0 || value.find(',') != std::string_view::npos)
          return error::multiple_content_length;
        if (!detail::parse_decimal(value, hs_.cl)) return error::bad_content_length;
      }
      break;
    case 17:
      if (iequals(name, "transfer-encoding")) {
        hs_.te = true;
        bool any = false;
        detail::for_each_element(value, [&](std::string_view coding) {
          any = true;
          const bool chunked = iequals(coding, "chunked");
          hs_.te_chunked += chunked ? 1 : 0;
          hs_.te_chunked_last = chunked;
          hs_.te_other = hs_.te_other || !chunked;
          return true;
        });
        if (!any) return error::bad_transfer_encoding;
      }
      break;
    case 10:
      if (iequals(name, "connection")) {
        detail::for_each_element(value, [&](std::string_view opt) {
          hs_.conn_close = hs_.conn_close || iequals(opt, "close");
          hs_.conn_keep_alive = hs_.conn_keep_alive || iequals(opt, "keep-alive");
          hs_.conn_upgrade = hs_.conn_upgrade || iequals(opt, "upgrade");
          return true;
        });
      }
      break;
    case 7:
      if (iequals(name, "upgrade") && !value.empty()) hs_.upgrade = true;
      break;
    case 4:
      if (is_request && iequals(name, "host")) {
        ++hs_.host_count;
        if (!detail::all_of_class(value, detail::cc_host, false)) return error::bad_host;
      }
      break;
    case 6:
      if (is_request && iequals(name, "expect") && iequals(value, "100-continue"))
        hs_.expect_continue = true;
      break;
    default: break;
  }
  return detail::ok;
}

template <role Role>
http1::error basic_parser<Role>::decide_framing() noexcept {
  message_info m;
  m.version = head_.version;
  const bool v11 = m.version == http_version::http11;
  m.keep_alive = v11 ? !hs_.conn_close : (hs_.conn_keep_alive && !hs_.conn_close);
  m.has_content_length = hs_.cl_count > 0;
  m.content_length = hs_.cl;
  info_ = m;
  if (hs_.te && hs_.cl_count > 0) return error::content_length_with_transfer_encoding;
  if (hs_.te) {
    if (!v11 || hs_.te_chunked > 1) return error::bad_transfer_encoding;
    if (is_request && !hs_.te_chunked_last) return error::bad_transfer_encoding;
    if (is_request && hs_.te_other) return error::unsupported_transfer_encoding;
  }
  enum class framing { none, length, chunked, until_close, tunnel } kind = framing::none;
  if constexpr (is_request) {
    if (hs_.host_count > 1 || (v11 && hs_.host_count == 0)) return error::bad_host;
    m.expect_continue = v11 && hs_.expect_continue;  // ignored from HTTP/1.0 (RFC 9110 §10.1.1)
    if (head_.method == "CONNECT") {
      kind = framing::tunnel;
    } else {
      m.upgrade = v11 && hs_.conn_upgrade && hs_.upgrade;
      kind = hs_.te ? framing::chunked : hs_.cl_count > 0 ? framing::length : framing::none;
    }
  } else {
    const auto s = head_.status;
    if (s == 101) {
      kind = framing::tunnel;
    } else if (s < 200 || s == 204 || s == 304 || method_ == detail::method_kind::head) {
      kind = framing::none;
    } else if (method_ == detail::method_kind::connect && s < 300) {
      kind = framing::tunnel;
    } else if (hs_.te) {
      kind = hs_.te_chunked_last ? framing::chunked : framing::until_close;
    } else {
      kind = hs_.cl_count > 0 ? framing::length : framing::until_close;
    }
  }
  switch (kind) {
    case framing::none: state_ = state::complete; break;
    case framing::tunnel:
      m.upgrade = true;
      state_ = state::complete;
      break;
    case framing::length:
      if (hs_.cl > limits_.max_body_size) return error::body_too_large;
      remaining_ = hs_.cl;
      state_ = hs_.cl == 0 ? state::complete : state::body_length;
      break;
    case framing::chunked:
      m.chunked = true;
      state_ = state::chunk_size;
      break;
    case framing::until_close:
      m.until_close = true;
      m.keep_alive = false;
      state_ = state::body_until_close;
      break;
  }
  info_ = m;
  return detail::ok;
}

template <role Role>
parse_result basic_parser<Role>::parse_trailers(std::string_view in, std::size_t used) {
  const auto sub = in.substr(used);
  for (;;) {
    std::string_view line;
    const auto line_start = pos_;
    const auto st = next_line(sub, line);
    if (st == scan::more) {
      const auto partial = partial_len(sub);
      if (partial > 0 && pos_ + partial + 2 > limits_.max_trailer_bytes)
        return fail(error::trailer_too_large);
      return more(used);
    }
    if (!line.empty() && line_start + line.size() + 2 > limits_.max_trailer_bytes)
      return fail(error::trailer_too_large);
    if (st == scan::bad) return fail(error::bad_line_ending);
    if (line.empty()) {
      build_views(sub, trailer_fields_);
      trailers_ = fields_view(trailer_fields_);
      used += pos_;
      begin_head();
      return complete(used);
    }
    if (refs_.size() >= limits_.max_header_count) return fail(error::trailer_too_large);
    field_view f;
    if (const auto e = detail::parse_field_line(line, f); e != detail::ok) return fail(e);
    refs_.push_back(ref_of(sub, f));
  }
}

}  // namespace rproxy::codec::http1
