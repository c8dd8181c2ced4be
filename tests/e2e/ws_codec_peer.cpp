// ws_codec_peer: codec/ws as a command-line filter, so ws_codec_test.py can check it against
// the npm `ws` package (ws_codec/peer.js) in both directions.
//
//   ws_codec_peer decode ROLE DEFLATE   stdin: the wire bytes in hex; stdout: one line per item
//       "text HEX" | "binary HEX" | "ping HEX" | "pong HEX" | "close CODE HEX" | "error CODE"
//       (parsed whole, byte by byte and in 7-byte pieces; exit 3 if these disagree)
//   ws_codec_peer encode ROLE DEFLATE   stdin: one item per line, "text HEX [FRAGMENT]",
//       "binary HEX [FRAGMENT]", "ping HEX", "pong HEX", "close CODE HEX"; stdout: wire in hex
//
// ROLE is the codec's side (server | client); DEFLATE is "-" or the negotiated parameters
// "SNCT,CNCT,SMWB,CMWB" (e.g. "1,0,15,10"). Data messages are compressed when DEFLATE is set.
#include <rproxy/codec/ws/collector.hpp>
#include <rproxy/codec/ws/writer.hpp>

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace ws = rproxy::codec::ws;

namespace {

std::string to_hex(std::string_view s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) out.append({digits[c >> 4], digits[c & 15]});
  return out;
}

std::string from_hex(std::string_view h) {
  std::string out;
  const auto v = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(v(h[i]) << 4 | v(h[i + 1])));
  return out;
}

std::optional<ws::deflate_params> parse_deflate(std::string_view s) {
  if (s == "-") return std::nullopt;
  ws::deflate_params p;
  int snct = 0, cnct = 0, smwb = 15, cmwb = 15;
  if (std::sscanf(std::string(s).c_str(), "%d,%d,%d,%d", &snct, &cnct, &smwb, &cmwb) != 4) return std::nullopt;
  p.server_no_context_takeover = snct != 0;
  p.client_no_context_takeover = cnct != 0;
  p.server_max_window_bits = static_cast<std::uint8_t>(smwb);
  p.client_max_window_bits = static_cast<std::uint8_t>(cmwb);
  return p;
}

std::string render(const std::vector<ws::received_item>& items) {
  std::string out;
  for (const auto& r : items) {
    switch (r.what) {
      case ws::event::data: out += (r.op == ws::opcode::text ? "text " : "binary ") + to_hex(r.data); break;
      case ws::event::ping: out += "ping " + to_hex(r.data); break;
      case ws::event::pong: out += "pong " + to_hex(r.data); break;
      case ws::event::close: out += "close " + std::to_string(r.code) + " " + to_hex(r.data); break;
      case ws::event::error: out += "error " + std::to_string(r.code); break;
      case ws::event::need_more: break;
    }
    out += "\n";
  }
  return out;
}

int decode(ws::role side, const std::optional<ws::deflate_params>& d) {
  std::string hex, line;
  while (std::getline(std::cin, line)) hex += line;
  const std::string wire = from_hex(hex);
  ws::parser_options o;
  o.side = side;
  std::string first;
  for (std::size_t step : {wire.size() + 1, std::size_t{1}, std::size_t{7}}) {
    ws::collector c{o, d};
    for (std::size_t i = 0; i < wire.size() && !c.failed(); i += step) c.feed(std::string_view(wire).substr(i, step));
    const std::string out = render(c.received);
    if (first.empty()) {
      first = out;
      std::cout << out;
    } else if (out != first) {
      std::cerr << "ws_codec_peer: pieces of " << step << " bytes parse differently:\n" << out;
      return 3;
    }
  }
  return 0;
}

int encode(ws::role side, const std::optional<ws::deflate_params>& d) {
  std::optional<ws::deflater> z;
  if (d) z.emplace(d->send_window(side), d->send_reset(side));
  std::uint32_t seed = 0x9e3779b9;
  const auto next_key = [&] {
    seed = seed * 1664525u + 1013904223u;
    return ws::mask_key{static_cast<std::uint8_t>(seed >> 24), static_cast<std::uint8_t>(seed >> 16),
                        static_cast<std::uint8_t>(seed >> 8), static_cast<std::uint8_t>(seed)};
  };
  const auto mask = [&]() -> std::optional<ws::mask_key> {
    if (side == ws::role::client) return next_key();
    return std::nullopt;
  };
  std::string out, line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string kind, hex;
    in >> kind;
    if (kind == "close") {
      unsigned code = 0;
      in >> code >> hex;
      ws::append_close(out, static_cast<std::uint16_t>(code), from_hex(hex), mask());
      continue;
    }
    in >> hex;
    const std::string payload = from_hex(hex);
    if (kind == "ping" || kind == "pong") {
      ws::append_frame(out, kind == "ping" ? ws::opcode::ping : ws::opcode::pong, payload, {.mask = mask()});
      continue;
    }
    std::size_t fragment = 0;
    in >> fragment;
    const ws::message_options mo{.fragment_size = fragment, .compress = z ? &*z : nullptr};
    const auto op = kind == "text" ? ws::opcode::text : ws::opcode::binary;
    const bool ok = side == ws::role::client ? ws::append_message(out, op, payload, mo, next_key)
                                             : ws::append_message(out, op, payload, mo);
    if (!ok) {
      std::cerr << "ws_codec_peer: compression failed\n";
      return 1;
    }
  }
  std::cout << to_hex(out) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: ws_codec_peer decode|encode server|client DEFLATE\n";
    return 2;
  }
  const std::string mode = argv[1], role = argv[2];
  const ws::role side = role == "client" ? ws::role::client : ws::role::server;
  const auto d = parse_deflate(argv[3]);
  if (mode == "decode") return decode(side, d);
  if (mode == "encode") return encode(side, d);
  std::cerr << "ws_codec_peer: unknown mode " << mode << "\n";
  return 2;
}
