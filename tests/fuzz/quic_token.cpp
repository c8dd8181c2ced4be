// libFuzzer: what rproxy reads from a client's first QUIC packets itself (ngtcp2 parses the rest):
// the Retry token (net/quic/token.hpp: bounded, a clear error), the DCID's worker byte
// (net/quic/cid.hpp), and an HTTP/3 request head mapped to the HTTP/1.1 model (codec/h3/request.hpp).
#include <rproxy/codec/h3/request.hpp>
#include <rproxy/net/quic/cid.hpp>
#include <rproxy/net/quic/token.hpp>

#include <arpa/inet.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace quic = rproxy::net::quic;
  static const auto key = quic::token_key::from(std::array<std::uint8_t, 32>{7});
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(4433);
  a.sin_addr.s_addr = htonl(0x7f000001);
  const auto addr = quic::address_bytes::of(reinterpret_cast<const sockaddr*>(&a));
  const std::span<const std::uint8_t> in(data, size);
  if (auto r = key.validate(in, addr, 1'000'000'000ull, std::chrono::seconds(10))) {
    if (r->size > 20) __builtin_trap();
  }
  (void)quic::cid_worker(in, 4);
  (void)quic::connection_id::from(data, size);
  // A header section: NUL-separated name/value pairs.
  rproxy::codec::h3::request req(4096, 32);
  std::string_view s(reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < 64 && !s.empty(); ++i) {
    auto n = s.substr(0, s.find('\0'));
    s.remove_prefix(std::min(s.size(), n.size() + 1));
    auto v = s.substr(0, s.find('\0'));
    s.remove_prefix(std::min(s.size(), v.size() + 1));
    req.add(n, v);
  }
  if (req.finish_head(0) == rproxy::codec::h2::error{}) {
    const auto& h = req.head();
    if (h.fields.size() == 0 || h.fields.begin()->name != "host") __builtin_trap();  // Host always first
  }
  return 0;
}
