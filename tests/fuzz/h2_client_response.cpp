// libFuzzer target: what an HTTP/2 server sends our client (codec/h2/client_session.hpp, the
// backend side of flow/h2_upstream.hpp), in memory.
// Input: [chunk size byte][the server's bytes]: the bytes are fed in chunks of that size (1..256),
// after the client has queued its preface and three requests (stream 1: GET; 3: POST with a body
// and trailers; 5: GET). Response bytes are consumed as they arrive (window given back).
// Invariants:
//   - no crash, no sanitizer report;
//   - events name only the submitted streams; a stream gets a response head at most once and
//     before any data, and at most one outcome (end_stream or reset), with no event after it;
//   - a response head has a status of 200..999, and its fields and trailers stay within the
//     limits; body bytes never exceed the window the client gave;
//   - once the session has failed, feeding yields no event and want_write() ends.
#include <rproxy/codec/h2/client_session.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace h2 = rproxy::codec::h2;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
struct field {
  std::string name, value;
};
struct seen {
  bool head = false, done = false;
  std::size_t bytes = 0;
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t chunk = std::size_t{data[0]} + 1;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  h2::client_limits lim;
  lim.max_header_count = 20;
  lim.max_header_list_size = 4096;
  lim.stream_window = 64 * 1024;
  h2::client_session c{lim};
  const std::vector<field> none;
  auto a = c.submit({"GET", "http", "fuzz", "/a"}, none, true);
  auto b = c.submit({"POST", "http", "fuzz", "/b"}, std::vector<field>{{"content-type", "application/grpc"}, {"te", "trailers"}}, false);
  auto d = c.submit({"GET", "http", "fuzz", "/d"}, none, true);
  check(a && b && d && *a == 1 && *b == 3 && *d == 5);
  check(!c.send_data(*b, "hello"));
  check(!c.end_stream(*b, std::vector<field>{{"grpc-timeout", "1S"}}));
  c.consume_output(c.pending_output().size());
  std::map<std::int32_t, seen> streams{{1, {}}, {3, {}}, {5, {}}};
  bool was_failed = false;
  while (!in.empty()) {
    const auto part = in.substr(0, chunk);
    in.remove_prefix(part.size());
    const auto events = c.feed(part);
    if (was_failed) check(events.empty());
    for (const auto& e : events) {
      if (e.what == h2::client_event_kind::goaway) {
        check(e.stream_id == 0);
        continue;
      }
      auto it = streams.find(e.stream_id);
      check(it != streams.end());
      auto& s = it->second;
      check(!s.done);
      switch (e.what) {
        case h2::client_event_kind::response: {
          check(!s.head);
          s.head = true;
          const auto& r = c.response(e.stream_id);
          check(r.status >= 200 && r.status <= 999);
          check(r.headers.size() < lim.max_header_count);
          break;
        }
        case h2::client_event_kind::data:
          check(s.head);
          s.bytes += e.data.size();
          check(s.bytes <= 16 * 1024 * 1024);
          c.consume(e.stream_id, e.data.size());
          break;
        case h2::client_event_kind::end_stream:
          check(s.head);
          check(c.response(e.stream_id).trailers.size() <= lim.max_header_count);
          s.done = true;
          break;
        case h2::client_event_kind::reset: s.done = true; break;
        default: break;
      }
    }
    c.consume_output(c.pending_output().size());
    was_failed = c.failed();
  }
  if (c.failed()) {
    c.consume_output(c.pending_output().size());
    check(!c.want_write());
  }
  for (auto [id, s] : streams) c.release(id);
  return 0;
}
