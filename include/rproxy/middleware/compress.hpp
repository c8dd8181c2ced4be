// rproxy/middleware/compress.hpp: the compress stage: response bodies compressed on the way to
// the client (gzip, br or zstd, negotiated from Accept-Encoding), streamed piece by piece.
//
//     rproxy::middleware::compress_config cfg;                  // defaults: zstd, br, gzip
//     auto p = rproxy::make_pipeline<http>(..., rproxy::middleware::compress{&cfg}, ...);
//
// on_hello: the request's Accept-Encoding fields choose a coding (compress_negotiation.hpp:
//   q-values, identity, "*", the server's order `prefer` breaking ties). A HEAD request, a
//   malformed field or none acceptable: nothing is compressed.
// on_response: a response is compressible when it has a body (not 204, 304 or a HEAD's), is
//   not a 206, has no Content-Encoding, no Cache-Control: no-transform, a Content-Type in
//   `types` ("text/*" matches every text type) and no Content-Length below `min_size`. A
//   compressible response gets `Vary: Accept-Encoding` whatever the client asked (a cache must
//   not give its compressed copy to a client that did not ask), and, when a coding was chosen,
//   Content-Encoding, a weak ETag (W/"..."; the bytes differ from the backend's) and no
//   Content-Length: the flow sends it chunked (ctx.response_body_filtered).
// on_response_body: each piece of the body compressed and flushed (a client decodes every piece
//   as it comes; events of a text/event-stream arrive one by one); `last` ends the stream. The
//   encoder's memory is bounded (compress_encoder.hpp), never the whole body.
// A compression failure (the libraries fail only without memory) ends the response: the client
// sees a truncated message, never a wrong one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <rproxy/core/result.hpp>
#include <rproxy/middleware/compress_encoder.hpp>
#include <rproxy/middleware/compress_negotiation.hpp>
#include <rproxy/middleware/request_view.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct compress_config {
  /// The codings offered, best first: on equal client weights the first wins.
  std::vector<content_coding> prefer{content_coding::zstd, content_coding::br, content_coding::gzip};
  int gzip_level = 6;  ///< 1..9
  int br_level = 4;    ///< 0..11 (brotli's quality)
  int zstd_level = 3;  ///< 1..19
  /// Bodies whose Content-Length says fewer bytes are left alone (unknown length: compressed).
  std::uint64_t min_size = 1024;
  /// Media types compressed: exact ("application/json") or a whole type ("text/*").
  std::vector<std::string> types{"text/*", "application/json", "application/javascript", "application/xml", "image/svg+xml"};

  int level(content_coding c) const noexcept {
    switch (c) {
      case content_coding::gzip: return gzip_level;
      case content_coding::br: return br_level;
      case content_coding::zstd: return zstd_level;
      default: return 0;
    }
  }
  /// Whether a Content-Type value ("text/html; charset=utf-8") names a listed type.
  bool compressible_type(std::string_view content_type) const noexcept {
    using namespace compress_detail;
    const std::string_view media = trim(content_type.substr(0, content_type.find(';')));
    const auto slash = media.find('/');
    if (slash == std::string_view::npos || slash == 0) return false;
    for (std::string_view t : types) {
      if (t.size() == slash + 2 && t.ends_with("/*") ? iequals(t.substr(0, slash), media.substr(0, slash))
                                                     : iequals(t, media))
        return true;
    }
    return false;
  }
};

struct compress {
  const compress_config* cfg = nullptr;  ///< null: the stage passes everything

  struct state {
    content_coding chosen = content_coding::identity;  ///< from the request's Accept-Encoding
    compress_encoder encoder;                          ///< started when the response is compressed
    std::string out;                                   ///< the last piece's compressed bytes
  };

  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    auto& st = ctx.template state<compress>();
    st.chosen = content_coding::identity;
    if (cfg == nullptr || head_request(ctx, req)) return rproxy::next;
    accept_encoding ae;
    if constexpr (requires { req.head().fields; }) {  // every Accept-Encoding line
      for (const auto& f : req.head().fields)
        if (compress_detail::iequals(f.name, "accept-encoding") && parse_accept_encoding(f.value, ae)) return rproxy::next;
    } else if (auto v = header_of(req, "accept-encoding")) {
      if (parse_accept_encoding(*v, ae)) return rproxy::next;
    }
    st.chosen = choose_coding(ae, cfg->prefer);
    return rproxy::next;
  }

  template <class Ctx, class Resp>
  rproxy::verdict on_response(Ctx& ctx, const Resp& resp) {
    if (cfg == nullptr) return rproxy::next;
    auto& st = ctx.template state<compress>();
    if (!compressible(ctx, resp)) return rproxy::next;
    if constexpr (requires { ctx.response_fields.add_token(std::string_view(), std::string_view()); })
      ctx.response_fields.add_token("Vary", "Accept-Encoding");
    if (st.chosen == content_coding::identity) return rproxy::next;
    if constexpr (requires {
                    ctx.response_body_filtered = true;
                    ctx.response_fields.set(std::string_view(), std::string_view());
                  }) {
      if (st.encoder.start(st.chosen, cfg->level(st.chosen))) return rproxy::next;  // a bad level: left alone
      ctx.response_fields.set("Content-Encoding", coding_token(st.chosen));
      if (auto etag = resp.fields.find("etag"); etag && !etag->starts_with("W/")) {
        std::string weak = "W/";
        weak += *etag;
        ctx.response_fields.set("ETag", weak);
      }
      ctx.response_body_filtered = true;
    }
    return rproxy::next;
  }

  /// Compresses one piece of the response body (see the file's comment).
  template <class Ctx>
  rproxy::result<std::string_view> on_response_body(Ctx& ctx, std::string_view piece, bool last) {
    auto& st = ctx.template state<compress>();
    if (st.encoder.coding() == content_coding::identity) return piece;
    st.out.clear();
    if (auto ec = st.encoder.write(piece, last, st.out)) return rproxy::failure(ec);
    if (last) st.encoder.reset();
    return std::string_view(st.out);
  }

private:
  template <class Ctx, class Req>
  static bool head_request(const Ctx& ctx, const Req& req) {
    if constexpr (requires { ctx.head_request; })
      if (ctx.head_request) return true;
    if constexpr (requires { req.method(); }) return req.method() == "HEAD";
    return false;
  }

  template <class Ctx, class Resp>
  bool compressible(const Ctx& ctx, const Resp& resp) const {
    using compress_detail::iequals;
    const unsigned status = resp.status;
    if (status < 200 || status == 204 || status == 206 || status == 304) return false;
    if constexpr (requires { ctx.head_request; })
      if (ctx.head_request) return false;
    const auto& fields = resp.fields;
    if (fields.contains("content-encoding")) return false;
    if (fields.has_token("cache-control", "no-transform")) return false;
    const auto type = fields.find("content-type");
    if (!type || !cfg->compressible_type(*type)) return false;
    if (auto len = fields.find("content-length")) {
      std::uint64_t n = 0;
      for (const char c : *len) {
        if (c < '0' || c > '9' || n > (UINT64_MAX - 9) / 10) return false;  // not a length: leave it
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
      }
      if (n < cfg->min_size) return false;
    }
    return true;
  }
};

}  // namespace rproxy::middleware
