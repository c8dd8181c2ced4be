// libFuzzer target: the HTTP/1.1 request parser.
//   - parsing the input whole or split at data[0] % size gives the same events, messages and
//     error (the parser is split-independent);
//   - whatever the parser accepts, the serializer accepts, and it parses back the same;
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

http1::request_collector run(std::string_view bytes, std::size_t cut) {
  http1::request_collector c{small_limits()};
  c.feed(bytes.substr(0, cut));
  c.feed(bytes.substr(cut));
  c.finish();
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto whole = run(bytes, size);
  const auto split = run(bytes, data[0] % size);
  if (whole.messages() != split.messages() || whole.events() != split.events() ||
      whole.last_error() != split.last_error() || whole.upgraded() != split.upgraded())
    std::abort();

  for (const auto& m : whole.messages()) {
    if (m.upgrade) continue;
    auto head = m.head;  // re-frame with Content-Length and parse back
    http1::set_content_length(head.fields, m.body.size());
    http1::request_collector again;  // default limits: the new Content-Length adds bytes
    again.feed(http1::serialize(head) + m.body);
    if (again.messages().size() != 1 || again.messages()[0].head != head ||
        again.messages()[0].body != m.body)
      std::abort();
  }
  return 0;
}
