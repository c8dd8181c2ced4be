// libFuzzer target for the cors stage. The input is split at NUL bytes into the Origin,
// Access-Control-Request-Method and Access-Control-Request-Headers values of a preflight (or,
// without a method, of a plain GET). Invariants: a preflight's answer is one well-formed HTTP
// response (nothing the client sent can add a line to it) that names the client's origin only
// when a pattern allows it; a plain request gets Access-Control-Allow-Origin only from an
// allowed origin.
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/middleware/cors.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

namespace {
namespace mw = rproxy::middleware;
namespace http1 = rproxy::codec::http1;

struct fields_flow : rproxy::flow_info {
  struct pending {
    std::optional<std::string> allow_origin;
    void set(std::string_view name, std::string_view value) {
      if (name == "Access-Control-Allow-Origin") allow_origin = std::string(value);
    }
    void add_token(std::string_view, std::string_view) {}
  };
  pending response_fields;
  std::string reply;
};
struct protocol {
  using flow = fields_flow;
  struct hello {
    std::string_view origin, requested_method, headers;
    bool preflight = false;
    std::string_view method() const { return preflight ? "OPTIONS" : "GET"; }
    std::optional<std::string_view> header(std::string_view name) const {
      if (name == "origin") return origin;
      if (name == "access-control-request-method" && preflight) return requested_method;
      if (name == "access-control-request-headers" && preflight && !headers.empty()) return headers;
      return std::nullopt;
    }
  };
  using message = std::string_view;
  using response = std::string_view;
};

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "cors fuzz: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  protocol::hello req;
  auto next = [&text]() {
    const auto at = text.find('\0');
    auto part = text.substr(0, at);
    text = at == std::string_view::npos ? std::string_view() : text.substr(at + 1);
    return part;
  };
  req.origin = next();
  req.preflight = !text.empty();
  req.requested_method = next();
  req.headers = next();

  static const mw::cors_config cfg{.allow_origins = {"https://app.example.com", "https://*.example.org"},
                                   .allow_methods = {"GET", "PUT"},
                                   .allow_headers = {"Content-Type", "X-Token"},
                                   .allow_credentials = true};
  auto p = rproxy::make_pipeline<protocol>(mw::cors{&cfg});
  auto ctx = p.make_context();
  const auto v = p.hello(ctx, req);
  const bool allowed = mw::origin_allowed(cfg, req.origin);
  if (v.is_replied()) {
    if (!req.preflight || !allowed) fail("a preflight was answered for an origin not allowed");
    http1::response_parser rp;
    const auto r = rp.parse(ctx.reply);
    if (r.what != http1::event::head || r.consumed != ctx.reply.size()) fail("the answer is not one well-formed response");
    if (rp.head().fields.find("access-control-allow-origin") != req.origin) fail("the answer names another origin");
    if (rp.head().fields.size() != 7 - (rp.head().fields.contains("access-control-allow-headers") ? 0 : 1))
      fail("the answer has lines it should not have");
  } else if (ctx.response_fields.allow_origin) {
    if (req.preflight || !allowed || *ctx.response_fields.allow_origin != req.origin) fail("an origin not allowed was let in");
  }
  return 0;
}
