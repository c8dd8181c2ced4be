// libFuzzer target for rproxy::middleware::cidr::parse: no crash on any text; a block that
// parses is written back (to_string) to text that parses to the same block and contains its
// own network address.
#include <rproxy/middleware/ip.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = rproxy::middleware::cidr::parse(text);
  if (!c) return 0;
  auto back = rproxy::middleware::cidr::parse(c->to_string());
  if (!back || !(*back == *c) || !c->contains(c->network())) {
    std::fprintf(stderr, "cidr fuzz: '%.*s' does not round-trip\n", static_cast<int>(size), text.data());
    std::abort();
  }
  return 0;
}
