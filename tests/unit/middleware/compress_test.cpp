// The compress stage on HTTP/1.1 heads: which responses it compresses, what it does to their
// fields, that each piece of a body comes out at once (flushed), and its YAML block. Whether the
// bytes decode to the backend's is checked by real clients (curl) in tests/e2e/compress_test.py,
// not by our own code.
#include <rproxy/config/decode.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/middleware/compress.hpp>
#include <rproxy/middleware/compress_block.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {
namespace mw = rproxy::middleware;
namespace http1 = rproxy::codec::http1;
namespace flow = rproxy::flow;
using mw::content_coding;

struct outcome {
  bool filtered = false;     ///< the flow sends a transformed body
  http1::fields fields;      ///< the backend's fields with the stage's edits
  std::vector<std::string> pieces;  ///< the body pieces as the client gets them (when filtered)
};

/// One request and response through a pipeline holding only the stage.
outcome run(const mw::compress_config& cfg, std::string_view request, std::string_view response,
            const std::vector<std::string_view>& body = {"{\"a\":1}"}) {
  auto p = rproxy::make_pipeline<flow::http1_protocol>(mw::compress{&cfg});
  STATIC_REQUIRE(decltype(p)::filters_response_body);
  http1::request_parser rq;
  REQUIRE(rq.parse(request).what == http1::event::head);
  auto ctx = p.make_context();
  ctx.head_request = rq.head().method == "HEAD";
  REQUIRE(p.hello(ctx, http1::request_view(rq.head())).is_next());
  http1::response_parser rs;
  REQUIRE(rs.parse(response).what == http1::event::head);
  REQUIRE(p.response(ctx, rs.head()).is_next());
  outcome out;
  out.filtered = ctx.response_body_filtered;
  out.fields = http1::fields::from(rs.head().fields);
  ctx.response_fields.apply(out.fields);
  if (out.filtered) {
    for (auto piece : body) {
      auto r = p.response_body(ctx, piece, false);
      REQUIRE(r);
      out.pieces.emplace_back(*r);
    }
    auto r = p.response_body(ctx, {}, true);
    REQUIRE(r);
    out.pieces.emplace_back(*r);
  }
  return out;
}

std::string get(std::string_view accept_encoding, std::string_view method = "GET") {
  std::string r = std::string(method) + " /data HTTP/1.1\r\nHost: a\r\n";
  if (!accept_encoding.empty()) r += "Accept-Encoding: " + std::string(accept_encoding) + "\r\n";
  return r + "\r\n";
}
std::string ok(std::string_view type, std::string_view more = "Content-Length: 5000\r\n", unsigned status = 200) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + std::string(type) + "\r\n" + std::string(more) + "\r\n";
}

}  // namespace

TEST_CASE("compress: a compressible response gets Content-Encoding, Vary and a weak ETag", "[middleware][compress]") {
  const mw::compress_config cfg;
  const auto o = run(cfg, get("gzip, br"), ok("application/json; charset=utf-8", "Content-Length: 5000\r\nETag: \"v1\"\r\n"));
  CHECK(o.filtered);
  CHECK(o.fields.find("content-encoding") == "br");
  CHECK(o.fields.has_token("vary", "Accept-Encoding"));
  CHECK(o.fields.find("etag") == "W/\"v1\"");
  // the flow drops Content-Length itself (its framing); the stage leaves it to the flow
}

TEST_CASE("compress: the chosen coding's stream comes out with its own magic", "[middleware][compress]") {
  const mw::compress_config cfg;
  const auto first_bytes = [&](std::string_view ae) {
    const auto o = run(cfg, get(ae), ok("text/plain"), {"hello hello hello"});
    REQUIRE(o.pieces.size() == 2);
    return o.pieces[0].substr(0, 4);
  };
  CHECK(first_bytes("gzip").substr(0, 3) == std::string("\x1f\x8b\x08", 3));       // RFC 1952 ID1 ID2 CM
  CHECK(first_bytes("zstd") == std::string("\x28\xb5\x2f\xfd", 4));                 // RFC 8878 magic
  CHECK_FALSE(first_bytes("br").empty());                                            // RFC 7932 has no magic
}

TEST_CASE("compress: every piece comes out at once, none held back", "[middleware][compress]") {
  const mw::compress_config cfg;
  for (const auto* ae : {"gzip", "br", "zstd"}) {
    INFO(ae);
    const auto o = run(cfg, get(ae), ok("text/event-stream", ""), {"data: one\n\n", "data: two\n\n", "data: three\n\n"});
    REQUIRE(o.pieces.size() == 4);
    for (std::size_t i = 0; i < 3; ++i) CHECK_FALSE(o.pieces[i].empty());  // flushed: decodable now
    CHECK_FALSE(o.pieces[3].empty());                                      // the stream's end
  }
}

TEST_CASE("compress: a large body is compressed in bounded pieces", "[middleware][compress]") {
  const mw::compress_config cfg;
  std::string piece(16 * 1024, 'a');
  for (std::size_t i = 0; i < piece.size(); i += 7) piece[i] = static_cast<char>('a' + i % 26);
  const std::vector<std::string_view> body(64, piece);  // 1 MiB
  for (const auto* ae : {"gzip", "br", "zstd"}) {
    INFO(ae);
    const auto o = run(cfg, get(ae), ok("text/plain", ""), body);
    std::size_t total = 0;
    for (const auto& p : o.pieces) {
      CHECK(p.size() <= piece.size() + 1024);
      total += p.size();
    }
    CHECK(total < 64 * piece.size() / 2);  // it did compress
  }
}

TEST_CASE("compress: responses left alone", "[middleware][compress]") {
  const mw::compress_config cfg;
  struct row {
    std::string_view what, request, response;
    bool vary;  ///< still gets Vary: Accept-Encoding (it could have been compressed)
  };
  const std::string gz = get("gzip"), none = get(""), head = get("gzip", "HEAD"), identity = get("gzip;q=0, identity");
  const std::string small = ok("application/json", "Content-Length: 1023\r\n"), png = ok("image/png"),
                    encoded = ok("text/html", "Content-Encoding: gzip\r\nContent-Length: 5000\r\n"),
                    no_transform = ok("text/html", "Cache-Control: public, no-transform\r\nContent-Length: 5000\r\n"),
                    no_content = ok("text/html", "", 204), not_modified = ok("text/html", "", 304),
                    partial = ok("text/html", "Content-Range: bytes 0-9/5000\r\nContent-Length: 10\r\n", 206),
                    untyped = "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", json = ok("application/json");
  const std::vector<row> rows{
      {"no Accept-Encoding", none, json, true},
      {"identity preferred", identity, json, true},
      {"HEAD", head, json, false},
      {"below min_size", gz, small, false},
      {"image/png", gz, png, false},
      {"already encoded", gz, encoded, false},
      {"Cache-Control: no-transform", gz, no_transform, false},
      {"204", gz, no_content, false},
      {"304", gz, not_modified, false},
      {"206", gz, partial, false},
      {"no Content-Type", gz, untyped, false},
  };
  for (const auto& r : rows) {
    INFO(r.what);
    const auto o = run(cfg, r.request, r.response);
    CHECK_FALSE(o.filtered);
    CHECK(o.fields.count("content-encoding") == (r.response.find("Content-Encoding") != std::string_view::npos ? 1u : 0u));
    CHECK(o.fields.has_token("vary", "Accept-Encoding") == r.vary);
  }
}

TEST_CASE("compress: the types list and min_size are the config's", "[middleware][compress]") {
  mw::compress_config cfg;
  CHECK(cfg.compressible_type("text/html"));
  CHECK(cfg.compressible_type("TEXT/CSS;charset=utf-8"));
  CHECK(cfg.compressible_type("image/svg+xml"));
  CHECK(cfg.compressible_type("application/json"));
  CHECK_FALSE(cfg.compressible_type("application/json-seq"));
  CHECK_FALSE(cfg.compressible_type("image/png"));
  CHECK_FALSE(cfg.compressible_type("text"));
  CHECK_FALSE(cfg.compressible_type(""));
  cfg.types = {"application/*"};
  cfg.min_size = 0;
  CHECK(run(cfg, get("gzip"), ok("application/octet-stream", "Content-Length: 1\r\n")).filtered);
  CHECK_FALSE(run(cfg, get("gzip"), ok("text/html")).filtered);
}

TEST_CASE("compress: a stage without config passes everything", "[middleware][compress]") {
  auto p = rproxy::make_pipeline<flow::http1_protocol>(mw::compress{});
  auto ctx = p.make_context();
  http1::response_parser rs;
  REQUIRE(rs.parse(ok("text/html")).what == http1::event::head);
  CHECK(p.response(ctx, rs.head()).is_next());
  CHECK_FALSE(ctx.response_body_filtered);
  auto r = p.response_body(ctx, "as is", false);
  REQUIRE(r);
  CHECK(*r == "as is");
}

TEST_CASE("compress: the encoder refuses levels out of range and writes after the end", "[middleware][compress]") {
  mw::compress_encoder e;
  CHECK(e.start(content_coding::gzip, 0) == mw::compress_error::bad_level);
  CHECK(e.start(content_coding::br, 12) == mw::compress_error::bad_level);
  CHECK(e.start(content_coding::zstd, 20) == mw::compress_error::bad_level);
  std::string out;
  CHECK(e.write("x", false, out) == mw::compress_error::not_started);
  REQUIRE_FALSE(e.start(content_coding::zstd, 1));
  CHECK_FALSE(e.write("x", true, out));
  CHECK(e.finished());
  CHECK(e.write("y", false, out) == mw::compress_error::not_started);
}

namespace ct {
struct app_config {
  std::optional<rproxy::middleware::compress_block> compress;
  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::doc<&app_config::compress>("compression"));
  }
};
}  // namespace ct

TEST_CASE("compress: the YAML block builds the config and reports bad values", "[middleware][compress][config]") {
  namespace cfg = rproxy::config;
  auto good = cfg::load_string<ct::app_config>("compress:\n  prefer: [ gzip, br ]\n  gzip_level: 9\n  min_size: 2KiB\n"
                                               "  types: [ text/*, application/json ]\n",
                                               "app.yaml");
  REQUIRE(good);
  const auto c = good->compress->config();
  CHECK(c.prefer == std::vector<content_coding>{content_coding::gzip, content_coding::br});
  CHECK(c.gzip_level == 9);
  CHECK(c.br_level == 4);
  CHECK(c.zstd_level == 3);
  CHECK(c.min_size == 2048);
  auto bad = cfg::load_string<ct::app_config>("compress:\n  prefer: [ gzip, gzip, lz4 ]\n  br_level: 12\n"
                                              "  types: [ json, \"*/*\" ]\n",
                                              "app.yaml");
  REQUIRE_FALSE(bad);
  std::vector<std::string> errors;
  for (const auto& d : bad.error()) errors.push_back(d.to_string());
  CAPTURE(errors);
  CHECK(errors.size() >= 1);
  bool unknown_coding = false;
  for (const auto& e : errors) unknown_coding = unknown_coding || e.find("lz4") != std::string::npos;
  CHECK(unknown_coding);
  auto bad2 = cfg::load_string<ct::app_config>("compress:\n  prefer: [ gzip, gzip ]\n  br_level: 12\n"
                                               "  types: [ json, \"*/*\" ]\n",
                                               "app.yaml");
  REQUIRE_FALSE(bad2);
  errors.clear();
  for (const auto& d : bad2.error()) errors.push_back(d.to_string());
  CHECK(errors == std::vector<std::string>{"app.yaml:2:19: coding listed twice", "app.yaml:3:13: must be from 0 to 11",
                                           "app.yaml:4:12: 'json' is not a media type (type/subtype or type/*)",
                                           "app.yaml:4:18: '*/*' is not a media type (type/subtype or type/*)"});
}
