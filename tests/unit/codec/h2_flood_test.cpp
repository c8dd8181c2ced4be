// HTTP/2 flood defences of h2::server_session, each attack written as raw frames (RFC 9113
// §4.1, §6: the frames are built by hand here, an oracle independent of nghttp2), expecting
// GOAWAY with the right code. Also pins what libnghttp2 1.52 (Debian bookworm, with its
// security patches) does by itself, so a change of the library shows here.
#include <catch2/catch.hpp>

#include <rproxy/codec/h2/server_session.hpp>

#include "h2_peer.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace h2 = rproxy::codec::h2;
namespace f = h2_test::frames;
using h2_test::fields;
using namespace std::chrono_literals;

namespace {

const h2::clock::time_point t0{};

struct outcome {
  std::vector<h2::event> events;
  std::vector<f::parsed> frames;
  std::optional<f::parsed> goaway() const { return f::find(frames, f::GOAWAY); }
  bool delivered(std::int32_t id) const {
    for (const auto& e : events)
      if (e.what == h2::event_kind::request && e.stream_id == id) return true;
    return false;
  }
  std::optional<h2::event> goaway_sent() const {
    for (const auto& e : events)
      if (e.what == h2::event_kind::goaway_sent) return e;
    return std::nullopt;
  }
};

/// A connection that opened normally, then `attack`, fed in pieces of `piece` bytes at `now`.
outcome run(h2::server_session& s, const std::string& attack, std::size_t piece = 4096, h2::clock::time_point now = t0) {
  outcome o;
  std::string out;
  auto take = [&](std::span<const h2::event> es) {
    for (const auto& e : es) o.events.push_back({e.what, e.stream_id, {}, e.error, e.code});
    out += s.pending_output();
    s.consume_output(s.pending_output().size());
  };
  take(s.feed(std::string(f::preface) + f::settings() + f::settings_ack(), now));
  for (std::size_t i = 0; i < attack.size(); i += piece) take(s.feed(std::string_view(attack).substr(i, piece), now));
  take(s.poll());
  o.frames = f::parse(out);
  return o;
}

}  // namespace

TEST_CASE("h2 flood: rapid reset (CVE-2023-44487) gets GOAWAY ENHANCE_YOUR_CALM", "[h2][flood]") {
  h2::limits lim;
  lim.max_resets = 50;
  h2::server_session s{lim};
  std::string attack;
  for (std::uint32_t i = 0; i < 100; ++i) {
    const std::uint32_t id = 1 + 2 * i;
    attack += f::headers(id, f::get(), false) + f::rst_stream(id, NGHTTP2_CANCEL);
  }
  const auto o = run(s, attack);
  const auto g = o.goaway();
  REQUIRE(g);
  CHECK(g->code() == NGHTTP2_ENHANCE_YOUR_CALM);
  REQUIRE(o.goaway_sent());
  CHECK(o.goaway_sent()->error == h2::error::rapid_reset);
  CHECK(o.goaway_sent()->code == h2::code::enhance_your_calm);
  CHECK(g->last_stream() <= 2 * 51 + 1);  // nothing read after the 51st reset
  CHECK(s.failed());
  CHECK(s.done());
}

TEST_CASE("h2 flood: resets the client provokes count too (MadeYouReset, CVE-2025-8671)", "[h2][flood]") {
  h2::limits lim;
  lim.max_resets = 50;
  const fields post{{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}, {"content-length", "1"}};
  const std::vector<std::pair<const char*, std::string (*)(std::uint32_t, const fields&)>> attacks{
      {"content-length mismatch after a valid head",
       [](std::uint32_t id, const fields& p) { return f::headers(id, p, false) + f::data(id, "ab", true); }},
      {"a pseudo-header field in trailers after a valid head",
       [](std::uint32_t id, const fields&) { return f::headers(id, f::get(), false) + f::headers(id, {{":path", "/x"}}, true); }},
  };
  for (const auto& [name, make] : attacks) {
    INFO(name);
    std::string attack;
    for (std::uint32_t i = 0; i < 100; ++i) attack += make(1 + 2 * i, post);
    h2::server_session s{lim};
    const auto o = run(s, attack, 64 * 1024);
    const auto g = o.goaway();
    REQUIRE(g);
    CHECK(g->code() == NGHTTP2_ENHANCE_YOUR_CALM);
    REQUIRE(o.goaway_sent());
    CHECK(o.goaway_sent()->error == h2::error::rapid_reset);
    std::size_t rst = 0;
    for (const auto& fr : o.frames) rst += fr.type == f::RST_STREAM;
    CHECK(rst == 51);
  }
}

TEST_CASE("h2 flood: a few malformed requests are only reset", "[h2][flood]") {
  h2::limits lim;
  lim.max_resets = 50;
  std::string attack;
  for (std::uint32_t i = 0; i < 40; ++i)
    attack += f::headers(1 + 2 * i, f::get(), false) + f::headers(1 + 2 * i, {{":path", "/x"}}, true);
  h2::server_session s{lim};
  const auto o = run(s, attack);
  CHECK_FALSE(o.goaway());
  CHECK_FALSE(s.failed());
}

TEST_CASE("h2 flood: resets spread over windows are allowed", "[h2][flood]") {
  h2::limits lim;
  lim.max_resets = 50;
  lim.flood_window = 10s;
  h2::server_session s{lim};
  s.feed(std::string(f::preface) + f::settings() + f::settings_ack(), t0);
  std::uint32_t id = 1;
  for (int window = 0; window < 4; ++window) {
    std::string burst;
    for (int i = 0; i < 40; ++i, id += 2) burst += f::headers(id, f::get(), false) + f::rst_stream(id, NGHTTP2_CANCEL);
    s.feed(burst, t0 + window * 11s);
    s.consume_output(s.pending_output().size());
    for (const auto& e : s.poll())
      if (e.what == h2::event_kind::reset) s.release(e.stream_id);
  }
  CHECK_FALSE(s.failed());  // 160 resets, at most 40 per window
}

TEST_CASE("h2 flood: SETTINGS, PING, PRIORITY and WINDOW_UPDATE floods", "[h2][flood]") {
  h2::limits lim;
  lim.max_control_frames = 200;
  for (const auto& [name, one] : std::vector<std::pair<const char*, std::string>>{{"SETTINGS", f::settings({{0x3, 100}})},
                                                                                 {"PING", f::ping()},
                                                                                 {"PRIORITY", f::priority(5)},
                                                                                 {"WINDOW_UPDATE", f::window_update(0, 1)}}) {
    INFO(name);
    h2::server_session s{lim};
    std::string attack;
    for (int i = 0; i < 400; ++i) attack += one;
    const auto o = run(s, attack);
    const auto g = o.goaway();
    REQUIRE(g);
    CHECK(g->code() == NGHTTP2_ENHANCE_YOUR_CALM);
    REQUIRE(o.goaway_sent());
    CHECK(o.goaway_sent()->error == h2::error::control_flood);
  }
}

TEST_CASE("h2 flood: a client that does not read its PING ACKs (nghttp2 max_outbound_ack)", "[h2][flood]") {
  h2::limits lim;
  lim.max_outbound_ack = 100;
  lim.max_control_frames = 100000;  // only the ACK bound acts
  lim.max_output_chunk = 1024;      // the driver's buffer is full: the client does not read
  h2::server_session s{lim};
  s.feed(std::string(f::preface) + f::settings() + f::settings_ack(), t0);
  std::vector<h2::event> events;
  for (int i = 0; i < 300 && !s.failed(); ++i)
    for (const auto& e : s.feed(f::ping(), t0)) events.push_back(e);  // output never consumed
  REQUIRE(s.failed());
  REQUIRE_FALSE(events.empty());
  CHECK(events.back().what == h2::event_kind::goaway_sent);
  CHECK(events.back().error == h2::error::ack_flood);
  CHECK(events.back().code == h2::code::enhance_your_calm);
  // once the client reads again, the ACKs and then the GOAWAY go out
  std::string out;
  for (int i = 0; i < 100 && !s.pending_output().empty(); ++i) {
    out += s.pending_output();
    s.consume_output(s.pending_output().size());
  }
  const auto g = f::find(f::parse(out), f::GOAWAY);
  REQUIRE(g);
  CHECK(g->code() == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(s.done());
}

TEST_CASE("h2 flood: empty DATA frames", "[h2][flood]") {
  h2::limits lim;
  lim.max_empty_frames = 50;
  h2::server_session s{lim};
  std::string attack = f::headers(1, {{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}}, false);
  for (int i = 0; i < 100; ++i) attack += f::data(1, "");
  const auto o = run(s, attack);
  CHECK(o.delivered(1));
  const auto g = o.goaway();
  REQUIRE(g);
  CHECK(g->code() == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(o.goaway_sent()->error == h2::error::empty_frame_flood);
}

TEST_CASE("h2 flood: CONTINUATION floods (CVE-2024-27316 / CVE-2024-28182)", "[h2][flood]") {
  const auto head = f::block(f::get());
  SECTION("more CONTINUATION frames than max_continuations: nghttp2 ends the connection") {
    h2::limits lim;
    lim.max_continuations = 8;
    h2::server_session s{lim};
    // HEADERS without END_HEADERS, then CONTINUATIONs each carrying one more field
    std::string attack = f::frame(f::HEADERS, f::END_STREAM, 1, head);
    for (int i = 0; i < 50; ++i) attack += f::frame(f::CONTINUATION, 0, 1, f::literal("x-pad", std::string(100, 'p')));
    const auto o = run(s, attack);
    CHECK_FALSE(o.delivered(1));
    const auto g = o.goaway();
    REQUIRE(g);
    INFO("GOAWAY code " << g->code());
    CHECK(g->code() == NGHTTP2_ENHANCE_YOUR_CALM);
    REQUIRE(o.goaway_sent());
    CHECK(o.goaway_sent()->error == h2::error::continuation_flood);
    CHECK(s.failed());
  }
  SECTION("empty CONTINUATION frames count as empty frames") {
    h2::limits lim;
    lim.max_continuations = 1000;
    lim.max_empty_frames = 20;
    h2::server_session s{lim};
    std::string attack = f::frame(f::HEADERS, f::END_STREAM, 1, head);
    for (int i = 0; i < 100; ++i) attack += f::frame(f::CONTINUATION, 0, 1, "");
    const auto o = run(s, attack);
    CHECK_FALSE(o.delivered(1));
    REQUIRE(o.goaway());
    CHECK(o.goaway()->code() == NGHTTP2_ENHANCE_YOUR_CALM);
    CHECK(o.goaway_sent()->error == h2::error::empty_frame_flood);
  }
  SECTION("a header block over max_header_list_size within the CONTINUATION bound: 431, memory bounded") {
    h2::limits lim;
    lim.max_header_list_size = 4096;
    h2::server_session s{lim};
    std::string attack = f::frame(f::HEADERS, f::END_STREAM, 1, head);
    for (int i = 0; i < 7; ++i) attack += f::frame(f::CONTINUATION, 0, 1, f::literal("x-big", std::string(8000, 'b')));
    attack += f::frame(f::CONTINUATION, f::END_HEADERS, 1, f::literal("x-last", "1"));
    const auto o = run(s, attack);
    CHECK_FALSE(o.delivered(1));
    CHECK_FALSE(s.failed());
    const auto h = f::find(o.frames, f::HEADERS, 1);
    REQUIRE(h);  // the 431 response (HPACK: ":status: 431" is not in the static table)
    CHECK(h->payload.find("431") != std::string::npos);
  }
}

TEST_CASE("h2 flood: too many fields in one block: 431", "[h2][flood]") {
  h2::limits lim;
  lim.max_header_count = 20;
  h2::server_session s{lim};
  auto fs = f::get();
  for (int i = 0; i < 30; ++i) fs.push_back({"x-f" + std::to_string(i), "v"});
  const auto o = run(s, f::headers(1, fs, true));
  CHECK_FALSE(o.delivered(1));
  bool rejected = false;
  for (const auto& e : o.events)
    if (e.what == h2::event_kind::rejected && e.stream_id == 1) rejected = e.error == h2::error::too_many_headers;
  CHECK(rejected);
  const auto h = f::find(o.frames, f::HEADERS, 1);
  REQUIRE(h);
  CHECK(h->payload.find("431") != std::string::npos);
}

TEST_CASE("h2 flood: what libnghttp2 1.52 (Debian) does alone, without our counters", "[h2][flood]") {
  // A plain nghttp2 server session with default options: its own RST_STREAM rate limit
  // (1.52.0-1+deb12u1: burst 1000, 33/s), its CONTINUATION bound (deb12u2: 8).
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session* s = nullptr;
  nghttp2_session_server_new(&s, cb, nullptr);
  nghttp2_session_callbacks_del(cb);
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, nullptr, 0);
  ssize_t last_rv = 0;
  auto feed = [&](const std::string& in) {
    last_rv = nghttp2_session_mem_recv(s, reinterpret_cast<const std::uint8_t*>(in.data()), in.size());
    std::string out;
    const std::uint8_t* p = nullptr;
    for (ssize_t n; (n = nghttp2_session_mem_send(s, &p)) > 0;) out.append(reinterpret_cast<const char*>(p), n);
    return f::parse(out);
  };
  feed(std::string(f::preface) + f::settings() + f::settings_ack());
  SECTION("rapid reset: GOAWAY after about 1000 resets in a burst") {
    std::string attack;
    std::uint32_t id = 1;
    for (int i = 0; i < 1200; ++i, id += 2) attack += f::headers(id, f::get(), false) + f::rst_stream(id, NGHTTP2_CANCEL);
    const auto g = f::find(feed(attack), f::GOAWAY);
    REQUIRE(g);
    INFO("nghttp2's own rapid-reset GOAWAY code " << g->code() << ", last stream " << g->last_stream());
    CHECK(g->code() == NGHTTP2_INTERNAL_ERROR);
    CHECK(g->last_stream() > 1900);
  }
  SECTION("CONTINUATION: past the 8th after HEADERS, a fatal error and no GOAWAY (the session adds it)") {
    std::string attack = f::frame(f::HEADERS, f::END_STREAM, 1, f::block(f::get()));
    for (int i = 0; i < 8; ++i) attack += f::frame(f::CONTINUATION, 0, 1, f::literal("x-pad", "p"));
    feed(attack);
    CHECK(last_rv == static_cast<ssize_t>(attack.size()));  // 8 are allowed
    const auto frames = feed(f::frame(f::CONTINUATION, 0, 1, f::literal("x-pad", "p")));
    CHECK(last_rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS);
    CHECK_FALSE(f::find(frames, f::GOAWAY));
  }
  nghttp2_session_del(s);
}

TEST_CASE("h2 flood: WINDOW_UPDATEs that size each new stream's window are not a flood", "[h2][flood]") {
  // What grpc-core does with 50 concurrent calls (seen through a frame counter in front of the
  // gateway): HEADERS, a stream WINDOW_UPDATE or two, DATA with END_STREAM, per call, before
  // any response DATA; 101 WINDOW_UPDATEs in all.
  h2::limits lim;
  std::string calls;
  for (std::int32_t id = 1; id <= 99; id += 2) {
    calls += f::headers(id, {{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/test.Echo/Unary"},
                             {"content-type", "application/grpc"}, {"te", "trailers"}},
                        false);
    calls += f::window_update(id, 4 << 20) + f::window_update(0, 1 << 20);
    calls += f::data(id, std::string(7, 'x'), true);
  }
  calls += f::window_update(0, 1);
  h2::server_session ok{lim};
  const auto o = run(ok, calls);
  CHECK_FALSE(o.goaway());
  CHECK(o.delivered(99));
  CHECK_FALSE(ok.failed());

  // The same budget still ends a flood: a few streams and far more WINDOW_UPDATEs.
  h2::server_session flooded{lim};
  std::string attack = f::headers(1, {{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}}, false);
  for (int i = 0; i < 200; ++i) attack += f::window_update(1, 1);
  const auto a = run(flooded, attack);
  REQUIRE(a.goaway());
  CHECK(a.goaway()->code() == NGHTTP2_ENHANCE_YOUR_CALM);
  CHECK(a.goaway_sent()->error == h2::error::control_flood);
}
