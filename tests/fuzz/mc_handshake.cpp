// Fuzz target: the bytes a client sends a Minecraft proxy first (codec/mc hello_reader,
// handshake, login start, packet framing). Checks, for any input:
//  - fed whole or fed in pieces (split points taken from the input), the same events and error;
//  - replay() + unread() is exactly the input consumed so far (byte-exact replay);
//  - an accepted handshake / login start re-encodes to exactly the bytes it came from;
//  - its routing host looks up in a host table (route/host.hpp) without trouble, and a host
//    added to a table is found again.
#include <rproxy/codec/mc/handshake.hpp>
#include <rproxy/codec/mc/hello.hpp>
#include <rproxy/codec/mc/login.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>
#include <rproxy/route/host.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <variant>
#include <vector>

namespace mc = rproxy::codec::mc;

namespace {

struct outcome {
  std::vector<std::size_t> sizes;
  std::error_code error;
  mc::bytes replay;
  mc::bytes unread;
};

void check(bool ok) {
  if (!ok) std::abort();
}

outcome run(mc::byte_view in, std::size_t step) {
  mc::hello_reader r;
  outcome o;
  for (std::size_t at = 0; at < in.size(); at += step) {
    r.feed(in.subspan(at, std::min(step, in.size() - at)));
    for (;;) {
      auto e = r.next();
      if (e.failed()) {
        o.error = e.error();
        break;
      }
      if (e.need_more()) break;
      o.sizes.push_back(e.size());
      if (auto* hs = std::get_if<mc::handshake>(&*e)) {
        mc::bytes again;
        mc::append_handshake(again, *hs);
        const auto replay = r.replay();
        check(replay.size() >= again.size());
        check(std::equal(again.begin(), again.end(), replay.end() - static_cast<std::ptrdiff_t>(again.size())));
        const auto a = hs->address();
        static const auto table = [] {
          rproxy::route::host_table<int> t;
          t.add("lobby.example.com", 1);
          t.add("*.example.com", 2);
          return t;
        }();
        (void)table.find(a.host);
        if (rproxy::route::is_valid_host_pattern(a.host)) {
          rproxy::route::host_table<int> mine;
          check(mine.add(a.host, 7));
          check(mine.find(a.host) && *mine.find(a.host) == 7);
        }
      } else if (auto* ls = std::get_if<mc::login_start>(&*e)) {
        mc::bytes body;
        mc::append_login_start_body(body, *ls, r.handshake_packet()->protocol_version);
        mc::bytes again;
        mc::append_frame(again, body);
        const auto replay = r.replay();
        check(std::equal(again.begin(), again.end(), replay.end() - static_cast<std::ptrdiff_t>(again.size())));
      }
    }
    if (o.error) break;
  }
  o.replay.assign(r.replay().begin(), r.replay().end());
  o.unread.assign(r.unread().begin(), r.unread().end());
  if (!o.error) {
    // everything fed is either replayed or unread, in order
    mc::bytes all = o.replay;
    all.insert(all.end(), o.unread.begin(), o.unread.end());
    check(all.size() == in.size() && std::equal(all.begin(), all.end(), in.begin()));
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const mc::byte_view in{reinterpret_cast<const std::byte*>(data), size};
  const auto whole = run(in, size + 1);
  const std::size_t step = size ? 1 + data[0] % 7 : 1;
  const auto split = run(in, step);
  check(whole.sizes == split.sizes);
  check(whole.error == split.error);
  if (!whole.error) {
    check(whole.replay == split.replay);
    check(whole.unread == split.unread);
  }
  // the raw packet parsers on the input as one packet body
  if (auto hs = mc::parse_handshake(in)) {
    mc::bytes again;
    mc::append_handshake_body(again, *hs);
    check(again.size() == size && std::equal(again.begin(), again.end(), in.begin()));
  }
  return 0;
}
