#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace mw = rproxy::middleware;
using namespace std::chrono_literals;

namespace {
struct lines {
  std::vector<std::string> out;
  std::vector<std::uint64_t> suppressed;
  void operator()(const mw::audit_record& r, std::string_view line) {
    out.emplace_back(line);
    suppressed.push_back(r.suppressed);
  }
};
}  // namespace

TEST_CASE("audit_log: logfmt lines with escaping and bounded fields", "[middleware][audit]") {
  mw::audit_record r;
  r.code = rproxy::reject_code::banned;
  r.stage = "ban_check";
  r.reason = "griefing \"again\"";
  r.key = "evil\nuser audit=fake";
  r.client = asio::ip::make_address("2001:db8::7");
  r.flow_id = 9;
  auto line = mw::audit_log::format(r);
  CHECK(line == R"(audit=reject code=banned stage=ban_check client=2001:db8::7 flow=9 key="evil\x0auser audit=fake" reason="griefing \"again\"")");
  CHECK(line.find('\n') == std::string::npos);
  std::string long_key(500, 'k');
  r.key = long_key;
  auto cut = mw::audit_log::format(r, 16);
  INFO(cut);
  CHECK(cut.find("key=\"kkkkkkkkkkkkkkkk...\"") != std::string::npos);
}

TEST_CASE("audit_log: a flood is rate-limited and the gap is reported", "[middleware][audit]") {
  lines sink;
  auto log = mw::audit_log::to(sink, {.per_second = 10, .burst = 5, .max_field = 128});
  mw::audit_record r;
  r.stage = "rate_limit";
  auto t0 = mw::audit_log::clock::time_point(100s);
  int written = 0;
  for (int i = 0; i < 1000; ++i) written += log.record(r, t0);
  CHECK(written == 5);
  CHECK(log.suppressed() == 995);
  // one second later the bucket is full again (burst 5); the first line says how many were dropped
  for (int i = 0; i < 1000; ++i) written += log.record(r, t0 + 1s);
  CHECK(written == 10);
  CHECK(sink.out.size() == 10);
  CHECK(sink.suppressed[5] == 995);
  CHECK(sink.out[5].find("suppressed_before=995") != std::string::npos);
  CHECK(sink.suppressed[6] == 0);
  // over a long flood the written count stays at burst + rate * time
  for (int s = 2; s < 62; ++s)
    for (int i = 0; i < 100; ++i) written += log.record(r, t0 + std::chrono::seconds(s));
  CHECK(written <= 5 + 10 * 61);
}

TEST_CASE("reject_and_audit logs each flow once", "[middleware][audit]") {
  lines sink;
  auto log = mw::audit_log::to(sink);
  rproxy::basic_context<rproxy::flow_info> ctx;
  ctx.id = 3;
  auto v1 = mw::reject_and_audit(ctx, &log, {rproxy::reject_code::rate_limited, "slow", 5}, "rate_limit", "over");
  auto v2 = mw::reject_and_audit(ctx, &log, {rproxy::reject_code::rate_limited, "slow", 5}, "rate_limit", "over");
  CHECK(v1 == v2);
  CHECK(v1.reason().retry_after_s == 5);
  CHECK(ctx.rejected == rproxy::reject_reason{rproxy::reject_code::rate_limited, "slow", 5});
  CHECK(sink.out.size() == 1);
  CHECK(mw::reject_and_audit(ctx, nullptr, {}, "x", "y").is_reject());  // no log: still rejects
}
