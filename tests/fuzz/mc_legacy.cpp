// Fuzz target: the legacy (0xFE) server list ping and its kick response. Checks, for any input:
//  - detection agrees whether the bytes arrive whole or one by one (need_more is monotonic);
//  - an accepted ping re-encodes to exactly the bytes it came from;
//  - a kick built from fuzzed text is well formed and parses back.
#include <rproxy/codec/mc/legacy.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace mc = rproxy::codec::mc;

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const mc::byte_view in{reinterpret_cast<const std::byte*>(data), size};
  for (bool idle : {false, true}) {
    const auto whole = mc::detect_legacy_ping(in, idle);
    // every prefix is need_more or the same answer (a decision never changes with more bytes)
    for (std::size_t n = 0; n <= size; ++n) {
      const auto part = mc::detect_legacy_ping(in.first(n), idle && n == size);
      if (part.need_more()) continue;
      check(part.status() == whole.status());
      if (part.is_ok()) {
        check(part.value() == whole.value());
        check(part.size() == whole.size());
      }
      break;
    }
    if (whole.is_ok() && whole.value() && whole.value()->kind == mc::legacy_ping_kind::v1_6) {
      mc::bytes again;
      mc::append_legacy_ping(again, *whole.value());
      check(again.size() == whole.size() && std::equal(again.begin(), again.end(), in.begin()));
    }
  }
  (void)mc::parse_legacy_kick(in);

  // a kick from fuzzed text round-trips (the text lost only its separators and bad UTF-8)
  // (inputs under 10000 bytes never reach the 32767-unit cut)
  const std::string text(reinterpret_cast<const char*>(data), std::min<std::size_t>(size, 10000));
  const mc::legacy_status s{127, "1.20.4", text, static_cast<std::int32_t>(size), 100};
  const auto kick = mc::make_legacy_kick(mc::legacy_ping_kind::v1_6, s);
  auto back = mc::parse_legacy_kick(kick);
  check(back.is_ok() && back.size() == kick.size());
  check(back->online == s.online && back->max == 100 && back->protocol == 127);
  check(back->motd.find('\0') == std::string::npos);
  const auto beta = mc::make_legacy_kick(mc::legacy_ping_kind::beta, s);
  check(mc::parse_legacy_kick(beta).is_ok());
  return 0;
}
