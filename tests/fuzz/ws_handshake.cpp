// libFuzzer target: the WebSocket opening handshake (codec/ws/handshake.hpp) on requests
// parsed by the HTTP/1.1 parser. data[0] picks the server's permessage-deflate options.
//   - an accepted request has a valid key, a subprotocol from the server's list that the
//     client offered, deflate parameters in range; the 101 response parses as one, with the
//     accept key of the request's key and a well-formed Sec-WebSocket-Extensions;
//   - a refused request gets a 400 or 426 response that parses;
//   - ASan/UBSan check every byte access.
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/ws/handshake.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace ws = rproxy::codec::ws;
namespace http1 = rproxy::codec::http1;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t setup = data[0];
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  http1::limits l;
  l.max_header_bytes = 4096;
  l.max_start_line = 1024;
  http1::request_parser p{l};
  const auto r = p.parse(in);
  if (r.what != http1::event::head && r.what != http1::event::upgrade) return 0;

  static constexpr std::string_view protocols[] = {"chat", "superchat", "v1.json"};
  ws::handshake_options opt;
  opt.subprotocols = protocols;
  opt.deflate.enabled = (setup & 1) != 0;
  opt.deflate.server_no_context_takeover = (setup & 2) != 0;
  opt.deflate.client_no_context_takeover = (setup & 4) != 0;
  opt.deflate.server_max_window_bits = static_cast<std::uint8_t>(8 + (setup >> 3) % 9);
  opt.deflate.client_max_window_bits = static_cast<std::uint8_t>(7 + (setup >> 5) % 10);
  const auto up = ws::validate_upgrade(p.head(), opt);

  http1::response_parser rp;
  rp.set_request_method("GET");
  if (!up) {
    const std::string resp = ws::make_handshake_error_response(up.error());
    if (rp.parse(resp).what != http1::event::head) std::abort();
    if (rp.head().status != ws::status_for(up.error())) std::abort();
    return 0;
  }
  if (!ws::detail::valid_key(up->key)) std::abort();
  if (!up->subprotocol.empty()) {
    bool listed = false;
    for (auto s : protocols) listed = listed || s == up->subprotocol;
    if (!listed || !p.head().fields.contains("sec-websocket-protocol")) std::abort();
  }
  if (up->deflate) {
    if (!opt.deflate.enabled) std::abort();
    const auto& dp = *up->deflate;
    if (dp.server_max_window_bits < 9 || dp.server_max_window_bits > 15) std::abort();
    if (dp.client_max_window_bits < 8 || dp.client_max_window_bits > 15) std::abort();
    if (opt.deflate.server_no_context_takeover && !dp.server_no_context_takeover) std::abort();
  }
  const std::string resp = ws::make_accept_response(*up);
  if (rp.parse(resp).what != http1::event::head) std::abort();
  if (rp.head().status != 101) std::abort();
  if (rp.head().fields.find("sec-websocket-accept") != std::optional<std::string_view>(ws::accept_key(up->key)))
    std::abort();
  if (auto ext = rp.head().fields.find("sec-websocket-extensions")) {
    std::size_t i = 0;
    std::string_view name;
    std::array<ws::detail::ext_param, 8> params;
    std::size_t count = 0;
    if (!ws::detail::parse_extension(*ext, i, name, params, count) || name != "permessage-deflate" ||
        i != ext->size())
      std::abort();
  } else if (up->deflate) {
    std::abort();
  }
  return 0;
}
