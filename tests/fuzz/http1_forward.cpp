// libFuzzer target for the HTTP header rewriting (rproxy/codec/http1/forward.hpp and
// forwarded.hpp): a request head that parses is rewritten as a proxy forwards it; no forbidden
// field survives (hop-by-hop, Connection-listed except Host, forwarding fields from the client,
// names the proxy sets, names with '_'), Host is kept, trailers pass only when allowed, and the
// forwarded head serializes to a request the parser accepts (with its limits grown by what the
// proxy adds).
#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/forwarded.hpp>
#include <rproxy/codec/http1/limits.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/serializer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace http1 = rproxy::codec::http1;

namespace {
void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "http1_forward fuzz: %s\n", what);
    std::abort();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool trusted = data[0] & 1, underscore = data[0] & 2;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  http1::request_parser p;
  if (p.parse(in).what != http1::event::head) return 0;
  const auto& head = p.head();
  static const std::vector<std::string> strip{"X-User", "X-Role"};
  static const std::vector<std::string> allow{"X-Checksum", "X-User", "Host"};
  const http1::forward_rules rules{.strip = strip, .allow_underscore = underscore, .allow_trailers = allow};

  http1::request_head up{std::string(head.method), std::string(head.target), head.version};
  http1::copy_forwarded_fields(head.fields, up.fields, rules);
  const auto host = head.fields.find("host");
  http1::add_forwarding_fields(up.fields, head.fields,
                               {.peer = "192.0.2.1", .host = host.value_or(""), .proto = "http", .trusted = trusted});
  std::size_t forwarding = 0;
  for (const auto& f : up.fields) {
    check(!http1::is_hop_by_hop_field(f.name), "a hop-by-hop field survived");
    for (const auto& s : strip) check(!http1::detail::iequals(f.name, s), "a stripped name survived");
    check(underscore || f.name.find('_') == std::string::npos, "a name with '_' survived");
    check(http1::detail::iequals(f.name, "host") || !head.fields.has_token("connection", f.name),
          "a Connection-listed field survived");
    forwarding += http1::is_forwarding_field(f.name) ? 1 : 0;
  }
  check(forwarding == 4 || forwarding == 5, "forwarding fields are not the proxy's own set");
  check(up.fields.count("x-forwarded-for") == 1 && up.fields.count("forwarded") == 1, "forwarding fields repeated");
  check(trusted || up.fields.find("x-forwarded-for") == "192.0.2.1", "an untrusted client's X-Forwarded-For was kept");
  check(trusted || up.fields.find("x-real-ip") == "192.0.2.1", "an untrusted client's X-Real-IP was kept");
  check(up.fields.count("host") == head.fields.count("host"), "Host was removed");

  // Trailers: the same input's fields taken as trailers.
  const auto trailers = http1::forwarded_trailers(head.fields, head.fields, rules);
  for (const auto& t : trailers) {
    check(http1::detail::iequals(t.name, "x-checksum"), "a trailer that is not allowed passed");
  }
  const std::string bytes = http1::serialize(up);
  // The proxy adds at most five forwarding fields, two of them carrying the Host value: a head
  // at the parser's limits grows past them by that much, no more.
  http1::limits grown;
  grown.max_header_count += 5;
  grown.max_header_bytes += 2 * host.value_or("").size() + 1024;
  http1::request_parser again(grown);
  check(again.parse(bytes).what == http1::event::head, "the forwarded head does not parse");
  return 0;
}
