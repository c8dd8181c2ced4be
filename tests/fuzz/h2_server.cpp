// libFuzzer target: the HTTP/2 server session (codec/h2/server_session.hpp).
// Input: byte 0 picks the splits and clock steps; the rest is what a client sends after the
// connection preface (the target sends the preface first, so every input is HTTP/2 input).
// The bytes go through the session in pieces of random sizes, with time passing and tick().
// A driver that answers every request at once (a body, trailers on some) runs alongside.
// Invariants:
//   - no crash, no sanitizer report;
//   - bounded memory: streams held <= max_concurrent_streams + what is being answered,
//     output gathered per call <= max_output_chunk + one frame;
//   - split independence: whole or in pieces, the same requests, bodies and refusals;
//   - every request head satisfies the validation rules (an HTTP/1.1 backend could take it
//     as it is): a token method, a request-target, Host first and once, lowercase token names,
//     valid field values, at most one cookie field; data only on delivered streams and within
//     max_body_size; events only after their stream's request.
#include <rproxy/codec/h2/server_session.hpp>
#include <rproxy/codec/http1/detail/chars.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <string_view>

namespace h2 = rproxy::codec::h2;
namespace http1 = rproxy::codec::http1;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void check_head(const h2::request& r) {
  const auto& h = r.head();
  check(http1::detail::is_token(h.method));
  check(!h.target.empty() && http1::detail::all_of_class(h.target, http1::detail::cc_target));
  check(h.target.front() == '/' || h.target == "*" || h.method == "CONNECT");
  check(h.fields.size() >= 1 && h.fields[0].name == "host" && h.fields.count("host") == 1);
  check(h.fields.count("cookie") <= 1);
  for (const auto& f : h.fields) {
    check(http1::is_valid_field_name(f.name) && http1::is_valid_field_value(f.value));
    for (char c : f.name) check(!(c >= 'A' && c <= 'Z'));
    for (std::string_view bad : {"connection", "transfer-encoding", "keep-alive", "upgrade", "proxy-connection"})
      check(f.name != bad);
    if (f.name == "te") check(http1::detail::iequals(f.value, "trailers"));
  }
  for (const auto& f : r.trailers()) check(http1::is_valid_field_name(f.name) && http1::is_valid_field_value(f.value));
}

/// What the client's bytes made the session report, as text (heads, body bytes per stream,
/// ends, refusals); `failed` when the session ended the connection.
struct transcript {
  std::string text;
  bool failed = false;
  std::size_t streams = 0;  // requests delivered or refused
};

transcript run(std::uint8_t control, std::string_view input, bool split) {
  std::uint32_t rng = control * 2654435761u + 1;
  auto next = [&rng] {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
  };

  h2::limits lim;
  lim.max_concurrent_streams = 8;
  lim.max_header_list_size = 4096;
  lim.max_header_count = 32;
  lim.max_body_size = 8192;
  lim.stream_window = 16384;
  lim.connection_window = 65535;
  lim.max_resets = 20;
  lim.max_control_frames = 50;
  lim.max_empty_frames = 20;
  lim.max_output_chunk = 16384;
  lim.enable_connect_protocol = (control & 1) != 0;
  h2::server_session s{lim};

  transcript t;
  std::map<std::int32_t, std::uint64_t> body;  // delivered, not yet released
  std::map<std::int32_t, std::string> bytes;   // every body received, per stream
  std::set<std::int32_t> ended;                // streams whose request ended (END_STREAM)
  std::set<std::string> refused;
  auto now = h2::clock::time_point{};
  auto handle = [&](std::span<const h2::event> events) {
    for (const auto& e : events) {
      switch (e.what) {
        case h2::event_kind::request: {
          check(!body.count(e.stream_id));
          const auto& r = s.request(e.stream_id);
          check_head(r);
          body[e.stream_id] = 0;
          ++t.streams;
          t.text += "req " + std::to_string(e.stream_id) + " " + std::string(r.method()) + " " + std::string(r.target());
          for (const auto& f : r.head().fields) t.text += "|" + std::string(f.name) + ":" + std::string(f.value);
          t.text += "\n";
          break;
        }
        case h2::event_kind::data:
          check(body.count(e.stream_id) == 1);
          body[e.stream_id] += e.data.size();
          check(body[e.stream_id] <= lim.max_body_size);
          bytes[e.stream_id] += e.data;  // chunk boundaries depend on the split: compare the whole
          s.consume(e.stream_id, e.data.size());
          break;
        case h2::event_kind::end_stream: {
          check(body.count(e.stream_id) == 1);
          check_head(s.request(e.stream_id));  // with its trailers
          ended.insert(e.stream_id);
          t.text += "end " + std::to_string(e.stream_id) + " trailers " + std::to_string(s.request(e.stream_id).trailers().size()) + "\n";
          const bool trailers = (e.stream_id & 2) != 0;
          s.submit_response(e.stream_id, 200, http1::fields{{"content-type", "text/plain"}});
          s.send_data(e.stream_id, std::string(e.stream_id % 5000, 'r'));
          if (trailers) s.end_stream(e.stream_id, http1::fields{{"grpc-status", "0"}});
          else s.end_stream(e.stream_id);
          break;
        }
        case h2::event_kind::closed:
        case h2::event_kind::reset:
          check(body.count(e.stream_id) == 1);
          body.erase(e.stream_id);
          // A request body cut by a reset (its content-length overrun, say) is streamed up to the
          // chunk that broke it, and where that chunk begins depends on the split: only whole
          // bodies are compared.
          if (!ended.count(e.stream_id)) bytes.erase(e.stream_id);
          s.release(e.stream_id);
          break;
        case h2::event_kind::rejected:
          // nghttp2's refusals surface when their RST_STREAM is sent: when, depends on the output
          refused.insert(std::to_string(e.stream_id) + " " + std::to_string(static_cast<int>(e.error)));
          ++t.streams;
          break;
        case h2::event_kind::goaway_sent: t.failed = true; break;
        default: break;
      }
    }
  };

  handle(s.feed("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", now));
  std::size_t at = 0;
  while (at < input.size()) {
    const std::size_t piece = split ? 1 + next() % 256 : input.size();
    handle(s.feed(input.substr(at, piece), now));
    at += piece;
    check(s.pending_output().size() <= lim.max_output_chunk + 16384 + 9);
    if (split) {
      s.consume_output(next() % 3 == 0 ? 0 : s.pending_output().size());  // sometimes the client does not read
      handle(s.poll());
      if (next() % 8 == 0) {
        now += std::chrono::milliseconds(next() % 20000);
        handle(s.tick(now));
      }
    }
    check(s.streams() <= lim.max_concurrent_streams + body.size());
    check(body.size() <= lim.max_concurrent_streams);
  }
  for (int i = 0; i < 8 && s.want_write(); ++i) {
    s.consume_output(s.pending_output().size());
    handle(s.poll());
  }
  s.shutdown();
  handle(s.poll());
  for (const auto& [id, b] : bytes) t.text += "body " + std::to_string(id) + " " + b + "\n";
  for (const auto& r : refused) t.text += "rejected " + r + "\n";
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto split = run(data[0], input, true);
  const auto whole = run(data[0], input, false);
  // Split independence: the same input in other pieces (and with time passing, and a client
  // that reads its output or not) gives the same requests, bodies and refusals, unless one of
  // the runs ended the connection (a timeout, or the unread output at another point) or came
  // to the stream limit (streams count until their RST_STREAM is written, which depends on
  // when output is taken).
  if (!split.failed && !whole.failed && split.streams < 8 && whole.streams < 8) check(split.text == whole.text);
  return 0;
}
