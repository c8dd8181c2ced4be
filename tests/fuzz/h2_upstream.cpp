// libFuzzer target: what flow/h2.hpp sends a backend for an HTTP/2 request: each request the
// session delivers, turned into an HTTP/1.1 request head by the HTTP/1.1 adapter's
// upstream_head() with the framing the HTTP/2 flow picks (Content-Length when the client sent
// one, else chunked unless the request ended with its head).
// Input: what a client sends after the connection preface (the target sends the preface).
// Invariants:
//   - no crash, no sanitizer report;
//   - the upstream head is exactly one HTTP/1.1 request head for codec/http1's own parser
//     (nothing left over: no second, smuggled request in it);
//   - its framing is the one chosen (chunked, or that Content-Length, or none), never both;
//   - the method and target are the client's, Host is there once, and no field the forwarding
//     rules drop (connection-specific, Transfer-Encoding from the client) gets through.
#include <rproxy/codec/h2/server_session.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/flow/http1.hpp>

#include <asio/ip/address_v4.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

namespace h2 = rproxy::codec::h2;
namespace http1 = rproxy::codec::http1;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void check_upstream(const rproxy::flow::http1_adapter& a, const h2::request& r, bool ended) {
  if (r.method() == "CONNECT") return;  // answered 501 by the flow, never forwarded
  rproxy::flow::http_flow ctx;
  ctx.client = {asio::ip::address_v4::loopback(), 40000};
  const auto cl = r.content_length();
  http1::message_info info;
  info.chunked = !cl && !ended;
  info.has_content_length = cl.has_value();
  info.content_length = cl.value_or(0);
  const std::string head = a.upstream_head(ctx, r.head(), info);

  http1::request_parser p({.max_header_bytes = 1u << 20, .max_header_count = 10000});
  const auto pr = p.parse(head);
  check(pr.what == http1::event::head);
  check(pr.consumed == head.size());
  check(p.head().method == r.method());
  check(p.head().target == r.target());
  check(p.head().fields.count("host") == 1);
  check(p.info().chunked == info.chunked);
  if (info.chunked) check(!p.head().fields.contains("content-length"));
  else if (info.content_length > 0) check(p.info().has_content_length && p.info().content_length == info.content_length);
  else check(!p.head().fields.contains("transfer-encoding"));
  for (std::string_view bad : {"connection", "keep-alive", "upgrade", "proxy-connection", "te"}) check(!p.head().fields.contains(bad));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const rproxy::flow::http1_adapter adapter{};
  h2::limits lim;
  lim.max_header_list_size = 16 * 1024;
  lim.max_concurrent_streams = 16;
  h2::server_session s(lim);
  std::string in = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  in.append(reinterpret_cast<const char*>(data), size);
  std::set<std::int32_t> requests, ended;
  for (const auto& e : s.feed(in, h2::clock::time_point{})) {
    if (e.what == h2::event_kind::request) requests.insert(e.stream_id);
    if (e.what == h2::event_kind::end_stream) ended.insert(e.stream_id);
  }
  for (auto id : requests)
    if (s.has_stream(id)) check_upstream(adapter, s.request(id), ended.contains(id));
  return 0;
}
