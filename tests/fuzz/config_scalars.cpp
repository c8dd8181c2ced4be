// libFuzzer target for the config scalars (rproxy/config/duration.hpp, byte_size.hpp,
// endpoint.hpp): no crash on any text, and a value that parses is written back to text that
// parses to the same value.
#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/duration.hpp>
#include <rproxy/config/endpoint.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace cfg = rproxy::config;

namespace {
void check(bool ok, const char* what, std::string_view text) {
  if (!ok) {
    std::fprintf(stderr, "config_scalars fuzz: %s: '%.*s'\n", what, static_cast<int>(text.size()), text.data());
    std::abort();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto d = cfg::parse_duration<std::chrono::nanoseconds>(text); d && d->count() >= 0) {
    auto back = cfg::parse_duration<std::chrono::nanoseconds>(cfg::format_duration(*d));
    check(back && *back == *d, "duration round trip", text);
  }
  if (auto b = cfg::parse_byte_size(text)) {
    auto back = cfg::parse_byte_size(cfg::format_byte_size(*b));
    check(back && back->bytes == b->bytes, "byte size round trip", text);
  }
  if (auto e = cfg::parse_endpoint(text)) {
    auto back = cfg::parse_endpoint(e->to_string());
    check(back && *back == *e, "endpoint round trip", text);
  }
  return 0;
}
