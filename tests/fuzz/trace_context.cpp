// libFuzzer target for the request_id stage and rproxy::middleware::parse_traceparent. The input
// is split at its first two NUL bytes into (traceparent, tracestate, X-Request-Id) values as a
// client sends them. Invariants: a traceparent that parses is written back (version 00) to text
// that parses to the same value; what the stage sends upstream is always a valid traceparent of
// the same trace when the client's was valid, an id that valid_request_id accepts, and a
// tracestate only after a valid traceparent and at most 512 bytes long.
#include <rproxy/middleware/request_id.hpp>
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

struct fields_flow : rproxy::flow_info {
  struct pending {
    std::optional<std::string> traceparent, tracestate, id;
    void set(std::string_view name, std::string_view value) {
      auto v = value.empty() ? std::nullopt : std::optional<std::string>(value);
      if (name == "traceparent") traceparent = v;
      else if (name == "tracestate") tracestate = v;
      else id = v;
    }
  };
  pending request_fields, response_fields;
};
struct protocol {
  using flow = fields_flow;
  struct hello {
    std::string_view traceparent, tracestate, id;
    std::optional<std::string_view> header(std::string_view name) const {
      std::string_view v = name == "traceparent" ? traceparent : name == "tracestate" ? tracestate : id;
      if (v.empty()) return std::nullopt;
      return v;
    }
  };
  using message = std::string_view;
  using response = std::string_view;
};

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "trace_context fuzz: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  protocol::hello req;
  const auto a = text.find('\0');
  req.traceparent = text.substr(0, a);
  if (a != std::string_view::npos) {
    text.remove_prefix(a + 1);
    const auto b = text.find('\0');
    req.tracestate = text.substr(0, b);
    if (b != std::string_view::npos) req.id = text.substr(b + 1);
  }

  const auto in = mw::parse_traceparent(req.traceparent);
  if (in) {
    const auto back = mw::parse_traceparent(in->to_string());
    if (!back || !(*back == *in)) fail("a valid traceparent does not round-trip");
  }

  static const mw::request_id_config trusting{.trust_client = true};
  auto p = rproxy::make_pipeline<protocol>(mw::request_id{&trusting});
  auto ctx = p.make_context();
  if (!p.hello(ctx, req).is_next()) fail("the stage refused");
  const auto& up = ctx.request_fields;
  if (!up.id || !mw::valid_request_id(*up.id)) fail("an unsafe request id was sent");
  if (mw::valid_request_id(req.id) && *up.id != req.id) fail("a safe client id was not kept");
  if (!up.traceparent) fail("no traceparent was sent");
  const auto out = mw::parse_traceparent(*up.traceparent);
  if (!out) fail("an invalid traceparent was sent");
  if (in && (out->trace_id != in->trace_id || out->flags != in->flags)) fail("the client's trace was not continued");
  if (up.tracestate && (!in || up.tracestate->size() > 512 || *up.tracestate != req.tracestate))
    fail("a tracestate was sent that should have been dropped");
  if (!ctx.response_fields.id || *ctx.response_fields.id != *up.id) fail("the echoed id differs");
  return 0;
}
