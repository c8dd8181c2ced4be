// libFuzzer target: the WebSocket flow's hello reader (flow/ws.hpp), what reads a client's
// first bytes from the network: the upgrade request (bounded), or a plain request answered with
// the page or 426. data[0] picks the chunk size the bytes arrive in.
//   - the outcome does not depend on how the bytes were split (checked against one whole read),
//     except that a hello is ready once its head is whole: rest() then holds the bytes after
//     the head that came with it (a prefix of those of the whole read);
//   - a ready hello has a valid key, and rest() is exactly the bytes after its head;
//   - an answer is an HTTP/1.1 response; the buffer never grows past its bound;
//   - ASan/UBSan check every byte access.
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/ws/handshake.hpp>
#include <rproxy/flow/ws.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace flow = rproxy::flow;

namespace {

struct outcome {
  flow::hello_step::kind what = flow::hello_step::kind::need_more;
  std::string bytes;   ///< answer
  std::string key;     ///< ready: the Sec-WebSocket-Key
  std::string rest;    ///< ready: bytes after the head
  std::size_t fed = 0; ///< input bytes the reader took (its buffer bounds them)
};

outcome run(const flow::ws_adapter<>& a, std::string_view in, std::size_t chunk) {
  auto r = a.make_reader();
  flow::ws_flow ctx;
  outcome o;
  std::size_t at = 0;
  for (;;) {
    auto step = r.next(ctx, false);
    if (step.what != flow::hello_step::kind::need_more) {
      o.what = step.what;
      o.fed = at;
      if (step.what == flow::hello_step::kind::answer) {
        o.bytes = step.bytes;
        if (!o.bytes.starts_with("HTTP/1.1 ")) std::abort();
      }
      if (step.what == flow::hello_step::kind::ready) {
        o.key = std::string(r.upgrade().key);
        o.rest = std::string(r.rest());
        if (!rproxy::codec::ws::detail::valid_key(o.key)) std::abort();
      }
      return o;
    }
    if (at == in.size()) return o;  // the client stopped: still need_more
    auto room = r.prepare(std::min(chunk, in.size() - at));
    if (room.empty()) std::abort();  // a full buffer must have failed the hello
    std::memcpy(room.data(), in.data() + at, room.size());
    r.commit(room.size());
    at += room.size();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  static const flow::ws_adapter<> a = [] {
    flow::ws_adapter<> x;
    x.request_limits.max_start_line = 512;
    x.request_limits.max_header_bytes = 1024;
    x.page = "<p>page</p>";
    x.deflate.enabled = true;
    return x;
  }();
  const outcome whole = run(a, in, in.size() + 1);
  const outcome split = run(a, in, chunk);
  if (whole.what != split.what || whole.bytes != split.bytes || whole.key != split.key) std::abort();
  if (!std::string_view(whole.rest).starts_with(split.rest)) std::abort();
  if (whole.what == flow::hello_step::kind::ready) {
    // rest() is the end of what the reader took (the input may be longer than its buffer)
    if (whole.rest.size() > whole.fed || in.substr(whole.fed - whole.rest.size(), whole.rest.size()) != whole.rest) std::abort();
  }
  return 0;
}
