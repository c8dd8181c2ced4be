// Fuzz target: the status state and everything behind it (status response JSON, text
// components, ping/pong, compressed frames). Checks, for any input:
//  - a packet stream fed whole or in pieces gives the same packets, with and without compression;
//  - accepted status JSON re-renders to JSON that parses back to the same struct (round trip);
//  - compressed payloads never inflate past the declared size.
#include <rproxy/codec/mc/compression.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/codec/mc/text_component.hpp>
#include <rproxy/core/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace mc = rproxy::codec::mc;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

std::pair<std::vector<mc::bytes>, std::error_code> packets(mc::byte_view in, std::size_t step, const mc::compression& c) {
  mc::packet_reader r{1 << 16};
  r.set_compression(c);
  std::vector<mc::bytes> out;
  for (std::size_t at = 0; at < in.size(); at += step) {
    r.feed(in.subspan(at, std::min(step, in.size() - at)));
    for (auto p = r.next(); p; p = r.next()) {
      check(p->body.size() <= c.max_uncompressed);
      out.emplace_back(p->body.begin(), p->body.end());
    }
    if (r.error()) return {out, r.error()};
  }
  return {out, {}};
}

void status_json(std::string_view text) {
  auto s = mc::parse_status_json(text);
  if (!s) return;
  const auto json = mc::to_json(*s);
  auto again = mc::parse_status_json(json);
  check(again.has_value());
  check(*again == *s);
  check(mc::to_json(*again) == json);
  (void)mc::plain_text(s->description);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const mc::byte_view in{reinterpret_cast<const std::byte*>(data), size};
  const std::string_view text{reinterpret_cast<const char*>(data), size};

  // JSON: any accepted document dumps to text that parses back and dumps the same
  if (auto doc = rproxy::json::parse(text, mc::json_limits)) {
    const auto dumped = rproxy::json::dump(doc->root());
    auto again = rproxy::json::parse(dumped, mc::json_limits);
    check(again.has_value() && again->node_count() == doc->node_count());
    check(rproxy::json::dump(again->root()) == dumped);
  }
  status_json(text);

  // packet streams, plain and compressed (threshold from the first byte)
  const std::size_t step = size ? 1 + data[size - 1] % 13 : 1;
  for (const auto& c : {mc::compression{}, mc::compression{size ? data[0] : 0, 1 << 16}}) {
    const auto whole = packets(in, size + 1, c);
    const auto split = packets(in, step, c);
    check(whole == split);
    for (const auto& body : whole.first) {
      if (auto json = mc::parse_status_response(body)) status_json(*json);
      if (auto p = mc::parse_ping(body)) {
        mc::bytes again;
        mc::append_ping(again, *p);
        check(mc::bytes(again.begin() + 1, again.end()) == body);
      }
      (void)mc::parse_status_request(body);
    }
  }
  return 0;
}
