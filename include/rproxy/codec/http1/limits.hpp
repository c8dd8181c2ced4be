// rproxy/codec/http1/limits.hpp: the size limits of the HTTP/1.1 parser.
//
// Every input the parser buffers or counts is bounded; exceeding a limit gives its own error
// (see error.hpp), so a server can answer 414, 431 or 413:
//
//     http1::limits lim;               // defaults below
//     lim.max_body_size = 64 * 1024;   // admin endpoint: small bodies only
//     http1::request_parser p{lim};
//
// The caller's receive buffer must hold at least max_start_line + max_header_bytes + 4 bytes,
// since a head is parsed in place (see parser.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

namespace rproxy::codec::http1 {

struct limits {
  /// Request line or status line, without its CRLF (error::start_line_too_long, 414).
  std::size_t max_start_line = 8 * 1024;
  /// All header field lines with their CRLFs, without the final empty line
  /// (error::header_too_large, 431).
  std::size_t max_header_bytes = 64 * 1024;
  /// Header field lines (error::too_many_headers, 431).
  std::size_t max_header_count = 100;
  /// A chunk-size line with its extensions, without CRLF (error::chunk_line_too_long).
  std::size_t max_chunk_line = 1024;
  /// Decoded body bytes of one message (error::body_too_large, 413).
  std::uint64_t max_body_size = 8 * 1024 * 1024;
  /// Trailer field lines with their CRLFs; their count is bounded by max_header_count
  /// (error::trailer_too_large).
  std::size_t max_trailer_bytes = 8 * 1024;

  friend bool operator==(const limits&, const limits&) = default;
};

}  // namespace rproxy::codec::http1
