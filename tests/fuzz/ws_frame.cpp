// libFuzzer target: the WebSocket frame parser (codec/ws/parser.hpp), with and without
// permessage-deflate. data[0] picks the setup (role, deflate, context takeover, windows),
// data[1] the split points; the rest is the wire.
//   - parsing whole, in pieces of random sizes and byte by byte gives the same items and error
//     (the parser is split-independent);
//   - every message respects the limits, text is valid UTF-8, control payloads <= 125 bytes;
//   - what was parsed, re-encoded by the writer (masked as its sender would, compressed when
//     deflate was negotiated), parses back to the same items;
//   - ASan/UBSan check every byte access; small limits keep it bounded (a zip bomb stops at
//     max_message_size).
#include <rproxy/codec/ws/collector.hpp>
#include <rproxy/codec/ws/writer.hpp>
#include <rproxy/core/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ws = rproxy::codec::ws;

namespace {

using items = std::vector<ws::received_item>;

items run(std::string_view wire, const ws::parser_options& o, const std::optional<ws::deflate_params>& d,
          std::uint32_t seed) {
  ws::collector c{o, d};
  std::size_t i = 0;
  while (i < wire.size() && !c.failed()) {
    std::size_t n = wire.size() - i;
    if (seed != 0) {
      seed = seed * 1664525u + 1013904223u;
      n = std::min<std::size_t>(n, 1 + (seed >> 16) % 23);
    }
    c.feed(wire.substr(i, n));
    i += n;
  }
  return c.received;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t setup = data[0];
  const std::uint32_t seed = data[1] + 1u;
  const std::string_view wire(reinterpret_cast<const char*>(data + 2), size - 2);

  ws::parser_options o;
  o.side = (setup & 1) ? ws::role::client : ws::role::server;
  o.max_frame_size = 4096;
  o.max_message_size = 8192;
  o.inflate_chunk = (setup & 0x40) ? 64 : 1024;
  std::optional<ws::deflate_params> d;
  if (setup & 2) {
    ws::deflate_params p;
    p.server_no_context_takeover = (setup & 4) != 0;
    p.client_no_context_takeover = (setup & 8) != 0;
    p.server_max_window_bits = (setup & 0x10) ? 9 : 15;
    p.client_max_window_bits = (setup & 0x20) ? 8 : 15;
    d = p;
  }

  const items whole = run(wire, o, d, 0);
  // One known exception (codec/ws/deflate.hpp): zlib checks a match's distance against its
  // window plus what the current inflate() call wrote, so a sender that reaches back past the
  // negotiated window (< 15 bits) is decoded or refused (1007) depending on how its bytes
  // arrive. Such a difference must end one of the runs with bad_compressed_data.
  const auto same = [&](const items& other) {
    if (other == whole) return true;
    const auto zlib_refused = [](const items& it) { return !it.empty() && it.back().error == ws::error::bad_compressed_data; };
    return d && d->receive_window(o.side) < 15 && (zlib_refused(whole) || zlib_refused(other));
  };
  if (!same(run(wire, o, d, seed))) std::abort();
  if (wire.size() <= 512) {
    ws::collector c{o, d};
    for (char ch : wire)
      if (!c.failed()) c.feed(std::string_view(&ch, 1));
    if (!same(c.received)) std::abort();
  }

  // Invariants of what was accepted.
  std::size_t errors = 0;
  for (const auto& r : whole) {
    switch (r.what) {
      case ws::event::data:
        if (r.data.size() > o.max_message_size) std::abort();
        if (r.op == ws::opcode::text && !rproxy::utf8::is_valid(r.data)) std::abort();
        if (r.op != ws::opcode::text && r.op != ws::opcode::binary) std::abort();
        break;
      case ws::event::ping:
      case ws::event::pong:
        if (r.data.size() > ws::max_control_payload) std::abort();
        break;
      case ws::event::close:
        if (r.data.size() > ws::max_control_payload - 2) std::abort();
        if (r.code != ws::close_code::no_status && !ws::is_valid_close_code(r.code)) std::abort();
        if (!rproxy::utf8::is_valid(r.data)) std::abort();
        break;
      case ws::event::error:
        ++errors;
        if (&r != &whole.back()) std::abort();
        if (r.code != 1002 && r.code != 1007 && r.code != 1009) std::abort();
        break;
      case ws::event::need_more: std::abort();
    }
  }
  if (errors > 1) std::abort();

  // Re-encode what was received as its sender would have sent it, and parse that again.
  const ws::role sender = o.side == ws::role::server ? ws::role::client : ws::role::server;
  std::optional<ws::deflater> z;
  if (d) z.emplace(d->send_window(sender), d->send_reset(sender));
  std::uint32_t k = seed;
  const auto next_key = [&] {
    k = k * 1664525u + 1013904223u;
    return ws::mask_key{static_cast<std::uint8_t>(k >> 24), static_cast<std::uint8_t>(k >> 16),
                        static_cast<std::uint8_t>(k >> 8), static_cast<std::uint8_t>(k)};
  };
  const auto mask = [&]() -> std::optional<ws::mask_key> {
    if (sender == ws::role::client) return next_key();
    return std::nullopt;
  };
  std::string again;
  items expect;
  for (const auto& r : whole) {
    if (r.what == ws::event::error) break;
    expect.push_back(r);
    if (r.what == ws::event::data) {
      const ws::message_options mo{.fragment_size = seed % 5 == 0 ? 0 : seed % 97, .compress = z ? &*z : nullptr};
      const bool ok = sender == ws::role::client ? ws::append_message(again, r.op, r.data, mo, next_key)
                                                 : ws::append_message(again, r.op, r.data, mo);
      if (!ok) std::abort();
    } else if (r.what == ws::event::close) {
      ws::append_close(again, r.code == ws::close_code::no_status ? 0 : r.code, r.data, mask());
    } else {
      ws::append_frame(again, r.what == ws::event::ping ? ws::opcode::ping : ws::opcode::pong, r.data,
                       {.mask = mask()});
    }
  }
  // The re-encoded frames may be longer than the originals (deflate can expand), so the
  // frame limit is lifted; the message limit stays.
  ws::parser_options o2 = o;
  o2.max_frame_size = 1u << 20;
  if (run(again, o2, d, seed) != expect) std::abort();
  return 0;
}
