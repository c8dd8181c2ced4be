// libFuzzer target: what an HTTP/3 server sends our client (codec/h3/client_session.hpp with
// client_message.hpp's response checks, over nghttp3), with no QUIC: the session runs on the
// in-memory connection of tests/support/h3_client_pair.hpp.
// Input: records of [stream selector][length: 2 bytes][bytes], the selector's low 3 bits
// naming the stream (request streams 0, 4, 8; the server's control and QPACK streams 3, 7, 11)
// and bit 3 a FIN; three GET requests are open when it starts.
// Invariants:
//   - no crash, no sanitizer report;
//   - a request gets at most one outcome (an end or an error), and an ended one had a final
//     head with a status of 200..599 whose fields stay within the limits;
//   - once the session fails the connection, nothing more is read.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "../support/h3_client_pair.hpp"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const rproxy::codec::h3::client_limits limits{.max_fields = 20, .max_field_bytes = 4096};
  h3_test::pair p(limits);
  p.start();
  std::map<std::uint64_t, int> outcomes;
  auto& rec = p.conn.app().handler();
  for (std::uint64_t t = 0; t < 3; ++t) {
    rproxy::codec::h3::request_head r;
    r.authority = "fuzz";
    r.path = "/" + std::to_string(t);
    check(static_cast<bool>(p.client().submit(r, t)));
  }
  check(p.pump(1000, false));  // the requests and the control streams go out; the server's side is the input
  static constexpr std::int64_t streams[8] = {0, 4, 8, 3, 7, 11, 0, 3};
  std::size_t at = 0;
  bool failed = false;
  while (at + 3 <= size && !failed) {
    const auto sel = data[at];
    std::size_t len = static_cast<std::size_t>(data[at + 1]) | (static_cast<std::size_t>(data[at + 2]) << 8);
    at += 3;
    len = std::min(len, size - at);
    const auto sid = streams[sel & 7];
    const bool fin = (sel & 8) != 0;
    if (p.client().on_stream_data(p.conn, sid, std::span<const std::uint8_t>(data + at, len), fin) != 0) failed = true;
    at += len;
  }
  if (failed) p.client().on_closed(p.conn);
  for (const auto& [tag, r] : rec.responses) {
    check(tag < 3);
    check(!(r.ended && r.error));
    if (r.ended) {
      check(r.status >= 200 && r.status <= 599);
      check(r.headers.size() <= limits.max_fields);
    }
  }
  if (failed) check(p.conn.done);
  return 0;
}
