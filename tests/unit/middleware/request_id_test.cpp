// The request_id stage and the W3C traceparent rules. The oracle for traceparent is the W3C
// Trace Context Level 1 recommendation: the example value of its traceparent section and its
// validity rules (version ff, all-zero ids, upper case, versions after 00).
#include <rproxy/flow/http1.hpp>
#include <rproxy/middleware/request_id.hpp>
#include <rproxy/middleware/request_id_block.hpp>
#include <rproxy/config/decode.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <string>

namespace {
namespace mw = rproxy::middleware;
namespace http1 = rproxy::codec::http1;
namespace flow = rproxy::flow;

constexpr std::string_view spec_example = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The upstream head the HTTP/1.1 adapter builds for `request` after the stage ran on it.
struct through_stage {
  mw::request_id_config cfg;
  std::string upstream;
  std::string id;
  std::string echoed;

  void run(std::string_view request) {
    auto p = rproxy::make_pipeline<flow::http1_protocol>(mw::request_id{&cfg});
    http1::request_parser parser;
    auto r = parser.parse(request);
    REQUIRE(r.what == http1::event::head);
    auto ctx = p.make_context();
    REQUIRE(p.hello(ctx, http1::request_view(parser.head())).is_next());
    flow::http1_adapter adapter;
    upstream = adapter.upstream_head(ctx, parser.head(), parser.info());
    id = ctx.state<mw::request_id>().id;
    http1::fields echo;
    ctx.response_fields.apply(echo);
    echoed = std::string(echo.find(cfg.header).value_or(""));
  }
  std::string field(std::string_view name) const {
    const std::string key = "\r\n" + std::string(name) + ": ";
    const auto at = upstream.find(key);
    if (at == std::string::npos) return {};
    const auto start = at + key.size();
    return upstream.substr(start, upstream.find("\r\n", start) - start);
  }
  std::size_t count(std::string_view name) const {
    std::size_t n = 0;
    for (auto at = upstream.find(name); at != std::string::npos; at = upstream.find(name, at + 1)) ++n;
    return n;
  }
};

}  // namespace

TEST_CASE("traceparent: the spec's example and its validity rules", "[middleware][trace]") {
  auto t = mw::parse_traceparent(spec_example);
  REQUIRE(t);
  CHECK(t->trace_id_hex() == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(t->parent_id_hex() == "00f067aa0ba902b7");
  CHECK(t->sampled());
  CHECK(t->to_string() == spec_example);
  CHECK_FALSE(mw::parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")->sampled());

  // invalid: version ff, all-zero ids, upper case, wrong lengths or separators, version 00 with more
  for (std::string_view bad : {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                               "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                               "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                               "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                               "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
                               "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                               "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
                               "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                               "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "00"})
    CHECK_FALSE(mw::parse_traceparent(bad));

  // a later version: its first 55 characters are read as 00; what follows must start with '-';
  // of its flags only "sampled" is kept
  auto later = mw::parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff-what-the-future-holds");
  REQUIRE(later);
  CHECK(later->to_string() == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  CHECK(mw::parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK_FALSE(mw::parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

TEST_CASE("traceparent: a hop keeps trace and flags and sends its own span; new traces are random", "[middleware][trace]") {
  mw::id_source ids;
  const auto in = *mw::parse_traceparent(spec_example);
  const auto out = in.next_hop(ids);
  CHECK(out.trace_id == in.trace_id);
  CHECK(out.flags == in.flags);
  CHECK(out.parent_id != in.parent_id);
  REQUIRE(mw::parse_traceparent(out.to_string()));
  CHECK(*mw::parse_traceparent(out.to_string()) == out);

  std::set<std::string> traces;
  for (int i = 0; i < 1000; ++i) {
    auto t = mw::traceparent::start(ids, i % 2 == 0);
    CHECK(t.sampled() == (i % 2 == 0));
    REQUIRE(mw::parse_traceparent(t.to_string()));  // never an all-zero id
    traces.insert(t.trace_id_hex());
  }
  CHECK(traces.size() == 1000);
}

TEST_CASE("request_id stage: the upstream request carries the id and this hop's traceparent", "[middleware][trace]") {
  through_stage s;
  SECTION("a client's traceparent is continued, its tracestate kept, its id replaced") {
    s.run("GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: forged\r\ntraceparent: " + std::string(spec_example) +
          "\r\ntracestate: congo=t61rcWkgMzE\r\n\r\n");
    const auto tp = mw::parse_traceparent(s.field("traceparent"));
    REQUIRE(tp);
    CHECK(tp->trace_id_hex() == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(tp->parent_id_hex() != "00f067aa0ba902b7");
    CHECK(tp->sampled());
    CHECK(s.field("tracestate") == "congo=t61rcWkgMzE");
    CHECK(s.id.size() == 32);
    CHECK(s.id != "forged");
    CHECK(s.field("X-Request-Id") == s.id);
    CHECK(s.count("X-Request-Id") == 1);
    CHECK(s.count("traceparent") == 1);
    CHECK(s.echoed == s.id);
  }
  SECTION("an invalid traceparent starts a new trace and drops tracestate") {
    s.run("GET / HTTP/1.1\r\nHost: x\r\ntraceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
          "tracestate: congo=t61rcWkgMzE\r\n\r\n");
    const auto tp = mw::parse_traceparent(s.field("traceparent"));
    REQUIRE(tp);
    CHECK(tp->trace_id_hex() != "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK_FALSE(tp->sampled());  // sample: false
    CHECK(s.count("tracestate") == 0);
    CHECK(s.count("congo") == 0);
  }
  SECTION("no traceparent: a new trace, sampled as configured") {
    s.cfg.sample = true;
    s.run("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto tp = mw::parse_traceparent(s.field("traceparent"));
    REQUIRE(tp);
    CHECK(tp->sampled());
  }
  SECTION("trust_client keeps a client's id only if it is safe") {
    s.cfg.trust_client = true;
    s.run("GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: edge-7f3a:12.b_c\r\n\r\n");
    CHECK(s.id == "edge-7f3a:12.b_c");
    CHECK(s.field("X-Request-Id") == "edge-7f3a:12.b_c");
    s.run("GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: <script>\r\n\r\n");
    CHECK(s.id.size() == 32);
    CHECK(s.count("<script>") == 0);
    s.run("GET / HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + std::string(129, 'a') + "\r\n\r\n");
    CHECK(s.id.size() == 32);
  }
  SECTION("trace off, echo off, another header") {
    s.cfg.trace = false;
    s.cfg.echo = false;
    s.cfg.header = "X-Correlation-Id";
    s.run("GET / HTTP/1.1\r\nHost: x\r\ntraceparent: " + std::string(spec_example) + "\r\n\r\n");
    CHECK(s.field("X-Correlation-Id") == s.id);
    CHECK(s.field("traceparent") == spec_example);  // passed through untouched
    CHECK(s.echoed.empty());
  }
  SECTION("an oversized tracestate is dropped") {
    s.run("GET / HTTP/1.1\r\nHost: x\r\ntraceparent: " + std::string(spec_example) + "\r\ntracestate: a=" +
          std::string(600, 'b') + "\r\n\r\n");
    CHECK(s.count("tracestate") == 0);
  }
}

TEST_CASE("request_id block: YAML to the stage's config, unknown keys refused at their line", "[middleware][config]") {
  struct app_config {
    mw::request_id_block request_id{};
    static constexpr auto describe() {
      return rproxy::config::fields(rproxy::config::doc<&app_config::request_id>("ids"));
    }
  };
  auto ok = rproxy::config::load_string<app_config>("request_id: { header: X-Trace-Id, trust_client: true, sample: true }\n", "a.yaml");
  REQUIRE(ok);
  const auto c = ok->request_id.config();
  CHECK(c.header == "X-Trace-Id");
  CHECK(c.trust_client);
  CHECK(c.sample);
  CHECK(c.trace);
  auto bad = rproxy::config::load_string<app_config>("request_id:\n  hedaer: X\n", "a.yaml");
  REQUIRE_FALSE(bad);
  REQUIRE(bad.error().begin() != bad.error().end());
  CHECK(bad.error().begin()->to_string().find("a.yaml:2") != std::string::npos);
}
