// libFuzzer target for rproxy/net/proxy_protocol.hpp. For each input and two parser setups:
//   - parsing it whole and split in two at data[0] % size gives the same result (status, error,
//     header and consumed total; for not_proxy, buffered() plus the rest is the whole input);
//   - short inputs fed one byte at a time agree too;
//   - a parsed header, written again (v1 or v2) and parsed again, is the same header.
#include <rproxy/net/proxy_protocol.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

namespace pp = rproxy::net::proxy_protocol;

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "proxy_protocol fuzz: %s\n", what);
    std::abort();
  }
}

struct outcome {
  pp::parse_result result;
  pp::header header;
  std::vector<std::byte> replay;  // for not_proxy: buffered() followed by the rest of the input
};

outcome run(const pp::parser_options& o, std::span<const std::byte> in,
            const std::vector<std::size_t>& cuts) {
  pp::parser p(o);
  outcome out;
  std::size_t at = 0, consumed = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(in.size());
  for (std::size_t end : ends) {
    const auto chunk = in.subspan(at, end - at);
    out.result = p.parse(chunk);
    consumed += out.result.consumed;
    if (out.result.status == pp::parse_status::not_proxy) {
      out.replay.assign(p.buffered().begin(), p.buffered().end());
      const auto rest = in.subspan(at);
      out.replay.insert(out.replay.end(), rest.begin(), rest.end());
    }
    at = end;
    if (out.result.status != pp::parse_status::need_more) break;
  }
  out.result.consumed = consumed;
  if (out.result.status == pp::parse_status::done) {
    check(p.size() == consumed, "size() differs from the consumed total");
    out.header = p.get();
  }
  return out;
}

void same(const outcome& a, const outcome& b, std::span<const std::byte> in) {
  check(a.result.status == b.result.status, "status differs between splits");
  // consumed is split-invariant for done (the header length); for not_proxy the replay is.
  if (a.result.status == pp::parse_status::done)
    check(a.result.consumed == b.result.consumed, "consumed differs between splits");
  check(a.result.error == b.result.error, "error differs between splits");
  check(a.header == b.header, "header differs between splits");
  if (a.result.status == pp::parse_status::not_proxy) {
    check(std::equal(a.replay.begin(), a.replay.end(), in.begin(), in.end()) &&
              std::equal(b.replay.begin(), b.replay.end(), in.begin(), in.end()),
          "not_proxy lost or invented payload bytes");
  }
  if (a.result.status == pp::parse_status::need_more)
    check(a.result.consumed == in.size(), "need_more did not consume its input");
}

void reemit(const pp::parser_options& o, const pp::header& h) {
  std::vector<std::byte> bytes;
  if (h.version == 1) {
    const auto line = pp::write_v1(h);
    const auto* p = reinterpret_cast<const std::byte*>(line.data());
    bytes.assign(p, p + line.size());
  } else {
    bytes = pp::write_v2(h);
  }
  pp::parser p(o);
  const auto r = p.parse(bytes);
  check(r.status == pp::parse_status::done, "re-emitted header does not parse");
  check(r.consumed == bytes.size(), "re-emitted header not consumed whole");
  check(p.get() == h, "re-emitted header parses differently");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  const pp::parser_options setups[] = {{}, {.max_v2_length = 300, .optional = true}};
  for (const auto& o : setups) {
    const outcome whole = run(o, in, {});
    same(whole, run(o, in, {data[0] % size}), in);
    if (size <= 128) {
      std::vector<std::size_t> cuts;
      for (std::size_t i = 1; i < size; ++i) cuts.push_back(i);
      same(whole, run(o, in, cuts), in);
    }
    if (whole.result.status == pp::parse_status::done) reemit(o, whole.header);
    if (whole.result.status == pp::parse_status::error)
      check(whole.result.error.category() == rproxy::net::proxy_error_category(),
            "error outside the proxy_error category");
  }
  return 0;
}
