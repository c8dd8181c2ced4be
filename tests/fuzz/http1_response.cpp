// libFuzzer target: the HTTP/1.1 response parser (data[1] picks the request method: GET, HEAD
// or CONNECT, which changes the framing).
//   - parsing the input whole or split at data[0] % size gives the same events, messages and
//     error (the parser is split-independent);
//   - every head the parser accepts serializes and parses back the same;
//   - ASan/UBSan check that no byte outside the input is read; small limits keep it bounded.
#include <rproxy/codec/http1/collector.hpp>
#include <rproxy/codec/http1/serializer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace http1 = rproxy::codec::http1;

namespace {

http1::limits small_limits() {
  http1::limits l;
  l.max_start_line = 512;
  l.max_header_bytes = 2048;
  l.max_header_count = 32;
  l.max_chunk_line = 64;
  l.max_body_size = 16 * 1024;
  l.max_trailer_bytes = 512;
  return l;
}

http1::response_collector run(std::string_view bytes, std::size_t cut, std::string_view method) {
  http1::response_collector c{small_limits()};
  c.parser().set_request_method(method);
  c.feed(bytes.substr(0, cut));
  c.feed(bytes.substr(cut));
  c.finish();
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static constexpr std::string_view methods[] = {"GET", "HEAD", "CONNECT"};
  const auto method = methods[data[1] % 3];
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 2, size - 2);
  const auto whole = run(bytes, bytes.size(), method);
  const auto split = run(bytes, bytes.empty() ? 0 : data[0] % bytes.size(), method);
  if (whole.messages() != split.messages() || whole.events() != split.events() ||
      whole.last_error() != split.last_error() || whole.upgraded() != split.upgraded())
    std::abort();

  for (const auto& m : whole.messages()) {
    http1::response_collector again;
    again.parser().set_request_method("HEAD");  // the head alone, no body expected
    again.feed(http1::serialize(m.head));
    if (again.messages().empty() || again.messages()[0].head != m.head) std::abort();
  }
  return 0;
}
