// libFuzzer target: which upgrades the HTTP/1.1 adapter passes on (flow/http1_upgrade.hpp,
// http1_adapter::offered_upgrades) and the upstream head of an upgrade (upstream_head). The
// input is a client's request head; data[0] picks the adapter's list of protocols.
//   - an upgrade is passed on only for a bodiless HTTP/1.1 request the parser calls an upgrade,
//     and only the listed protocols' tokens (a "/version" kept), as a valid field value;
//   - the upstream head of a passed-on upgrade parses whole as an upgrade request, with no body,
//     `Connection: upgrade` and exactly the offered protocols in one Upgrade field;
//   - never crashes or throws (the serializer throws on a field that would split the head).
#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/flow/http1_upgrade.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace http1 = rproxy::codec::http1;
namespace d = rproxy::codec::http1::detail;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "http1_upgrade fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const std::vector<std::string> lists[] = {{"websocket"}, {"websocket", "h2c", "foo"}, {}};
  const auto& list = lists[data[0] % 3];
  rproxy::flow::http1_adapter a;
  a.upgrades = list;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  http1::request_parser parser;
  if (parser.parse(in).what != http1::event::head) return 0;
  const auto info = parser.info();
  std::string offered = "left over";
  const bool ok = a.offered_upgrades(parser.head(), info, offered);
  check(ok == !offered.empty(), "the answer and the list disagree");
  if (!ok) return 0;
  check(info.upgrade && parser.head().method != "CONNECT", "passed on what the parser does not call an upgrade");
  check(!info.chunked && info.content_length == 0, "an upgrade with a body was passed on");
  check(http1::is_valid_field_value(offered), "the offered protocols are not a field value");
  d::for_each_element(offered, [&](std::string_view token) {
    bool listed = false;
    for (const auto& u : list) listed = listed || d::iequals(token.substr(0, token.find('/')), u);
    check(listed, "a protocol not listed was offered");
    check(parser.head().fields.has_token("upgrade", token), "a token the client did not send was offered");
    return true;
  });

  rproxy::flow::http_flow ctx;
  ctx.client = asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 40000);
  ctx.backend = asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 8080);
  const std::string up = a.upstream_head(ctx, parser.head(), info, offered);  // must not throw
  http1::limits more{};
  more.max_header_count += 16;
  more.max_header_bytes += 4096;
  http1::request_parser again(more);
  check(again.parse(up).what == http1::event::head, "the upstream head does not parse");
  check(again.info().upgrade && again.info().content_length == 0 && !again.info().chunked, "the upstream head is no bodiless upgrade");
  check(again.head().fields.count("upgrade") == 1 && again.head().fields.find("upgrade") == offered, "Upgrade is not what was offered");
  check(again.head().fields.count("connection") == 1 && again.head().fields.find("connection") == "upgrade", "Connection is not 'upgrade'");
  check(again.parse(std::string_view(up).substr(up.size())).what == http1::event::upgrade, "the upgrade request does not end at its head");
  return 0;
}
