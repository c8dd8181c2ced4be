// Laws of the PROXY protocol codec, for both versions over many generated headers:
//   round trip    parse(write(h)) == h, and writing the parsed header gives the same bytes;
//   any split     every split of header+payload into chunks parses to the same header and the
//                 same total consumed count, which is the header length: payload is never eaten;
//   prefixes      every strict prefix of a header is need_more, with all of it consumed.
#include <rproxy/net/proxy_protocol.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstddef>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace pp = rproxy::net::proxy_protocol;

namespace {

using rng_t = std::mt19937_64;

int uniform(rng_t& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

std::vector<std::byte> random_bytes(rng_t& rng, std::size_t n) {
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(uniform(rng, 0, 255));
  return v;
}

asio::ip::address random_address(rng_t& rng, bool v6) {
  if (!v6) {
    asio::ip::address_v4::bytes_type b;
    for (auto& x : b) x = static_cast<unsigned char>(uniform(rng, 0, 255));
    return asio::ip::address_v4(b);
  }
  asio::ip::address_v6::bytes_type b{};
  // mostly sparse addresses so "::" compression and v4-mapped forms get exercised
  for (auto& x : b) x = uniform(rng, 0, 2) == 0 ? static_cast<unsigned char>(uniform(rng, 0, 255)) : 0;
  if (uniform(rng, 0, 5) == 0) {
    b[10] = b[11] = 0xFF;
  }
  return asio::ip::address_v6(b);
}

unsigned short random_port(rng_t& rng) {
  switch (uniform(rng, 0, 3)) {
    case 0: return 0;
    case 1: return 65535;
    default: return static_cast<unsigned short>(uniform(rng, 0, 65535));
  }
}

std::string random_path(rng_t& rng) {
  std::string s(static_cast<std::size_t>(uniform(rng, 0, 108)), 'a');
  for (auto& c : s) c = static_cast<char>(uniform(rng, 0, 255));
  if (!s.empty() && s.back() == '\0') s.back() = 'z';  // trailing NULs are padding
  return s;
}

pp::tlv random_tlv(rng_t& rng) {
  static constexpr std::uint8_t types[] = {pp::tlv_type::alpn,      pp::tlv_type::authority,
                                           pp::tlv_type::noop,      pp::tlv_type::unique_id,
                                           pp::tlv_type::ssl,       pp::tlv_type::netns,
                                           0xE0,                    0xEE,
                                           0xF0,                    0x7F};
  pp::tlv t;
  t.type = types[uniform(rng, 0, static_cast<int>(std::size(types)) - 1)];
  if (t.type == pp::tlv_type::ssl) {
    t.value = random_bytes(rng, 5);
    for (int i = uniform(rng, 0, 3); i > 0; --i) {
      const auto sub = static_cast<std::uint8_t>(uniform(rng, 0x21, 0x25));
      const auto v = random_bytes(rng, static_cast<std::size_t>(uniform(rng, 0, 20)));
      t.value.push_back(static_cast<std::byte>(sub));
      t.value.push_back(std::byte{0});
      t.value.push_back(static_cast<std::byte>(v.size()));
      t.value.insert(t.value.end(), v.begin(), v.end());
    }
  } else {
    const int max = t.type == pp::tlv_type::unique_id ? 128 : 60;
    t.value = random_bytes(rng, static_cast<std::size_t>(uniform(rng, 0, max)));
  }
  return t;
}

// A generated case: the header as a writer gets it, the bytes, and the header a parse must give.
struct sample {
  pp::header expected;
  std::vector<std::byte> bytes;
};

struct v1_codec {
  static constexpr const char* name = "v1";
  static sample make(rng_t& rng) {
    pp::header h;
    h.version = 1;
    const int kind = uniform(rng, 0, 4);
    if (kind == 0) {  // UNKNOWN
      const auto line = pp::write_v1(h);
      return {h, {reinterpret_cast<const std::byte*>(line.data()),
                  reinterpret_cast<const std::byte*>(line.data()) + line.size()}};
    }
    const bool v6 = kind >= 3;
    h.family = v6 ? pp::family::inet6 : pp::family::inet;
    h.transport = pp::transport::stream;
    h.source = {random_address(rng, v6), random_port(rng)};
    h.destination = {random_address(rng, v6), random_port(rng)};
    const auto line = pp::write_v1(h);
    REQUIRE(line.size() <= pp::v1_max_length);
    const auto* p = reinterpret_cast<const std::byte*>(line.data());
    return {h, {p, p + line.size()}};
  }
};

struct v2_codec {
  static constexpr const char* name = "v2";
  static sample make(rng_t& rng) {
    pp::header h;
    h.command = uniform(rng, 0, 4) == 0 ? pp::command::local : pp::command::proxy;
    h.family = static_cast<pp::family>(uniform(rng, 0, 3));
    h.transport = h.family == pp::family::unspec
                      ? pp::transport::unspec
                      : static_cast<pp::transport>(uniform(rng, 1, 2));
    switch (h.family) {
      case pp::family::inet:
      case pp::family::inet6: {
        const bool v6 = h.family == pp::family::inet6;
        h.source = {random_address(rng, v6), random_port(rng)};
        h.destination = {random_address(rng, v6), random_port(rng)};
        break;
      }
      case pp::family::unix_socket:
        h.source_path = random_path(rng);
        h.destination_path = random_path(rng);
        break;
      case pp::family::unspec: break;
    }
    for (int i = uniform(rng, 0, 5); i > 0; --i) h.tlvs.push_back(random_tlv(rng));
    const bool crc = uniform(rng, 0, 2) == 0;
    sample s{h, pp::write_v2(h, {.crc32c = crc})};
    if (crc) {  // the writer appended a CRC32C TLV: its value is the last 4 bytes
      s.expected.tlvs.push_back(
          pp::tlv{pp::tlv_type::crc32c, std::vector<std::byte>(s.bytes.end() - 4, s.bytes.end())});
    }
    return s;
  }
};

using codecs = std::tuple<v1_codec, v2_codec>;

// Feeds `chunks` in order; returns the final result with `consumed` summed over all calls.
pp::parse_result feed(pp::parser& p, const std::vector<std::span<const std::byte>>& chunks) {
  pp::parse_result last;
  std::size_t consumed = 0;
  for (const auto& c : chunks) {
    last = p.parse(c);
    consumed += last.consumed;
    if (last.status != pp::parse_status::need_more) break;
  }
  last.consumed = consumed;
  return last;
}

constexpr int samples = 500;

}  // namespace

TEMPLATE_LIST_TEST_CASE("proxy_protocol: parse(write(h)) == h", "[laws][proxy]", codecs) {
  rng_t rng(Catch::rngSeed() + 1);
  for (int i = 0; i < samples; ++i) {
    const sample s = TestType::make(rng);
    pp::parser p;
    const auto r = p.parse(s.bytes);
    INFO(TestType::name << " sample " << i);
    REQUIRE(r.status == pp::parse_status::done);
    CHECK(r.consumed == s.bytes.size());
    CHECK(p.get() == s.expected);
    // emitting the parsed header again gives the same bytes
    if (s.expected.version == 1) {
      const auto line = pp::write_v1(p.get());
      CHECK(std::equal(line.begin(), line.end(), s.bytes.begin(), s.bytes.end(),
                       [](char a, std::byte b) { return static_cast<std::byte>(a) == b; }));
    } else {
      CHECK(pp::write_v2(p.get()) == s.bytes);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("proxy_protocol: every split point parses the same", "[laws][proxy]",
                        codecs) {
  rng_t rng(Catch::rngSeed() + 2);
  for (int i = 0; i < samples; ++i) {
    const sample s = TestType::make(rng);
    auto input = s.bytes;
    const auto payload = random_bytes(rng, static_cast<std::size_t>(uniform(rng, 0, 40)));
    input.insert(input.end(), payload.begin(), payload.end());
    const std::span<const std::byte> in(input);
    INFO(TestType::name << " sample " << i);
    for (std::size_t k = 0; k <= in.size(); ++k) {
      pp::parser p;
      const auto r = feed(p, {in.first(k), in.subspan(k)});
      INFO("split at " << k);
      REQUIRE(r.status == pp::parse_status::done);
      CHECK(r.consumed == s.bytes.size());
      CHECK(p.size() == s.bytes.size());
      CHECK(p.get() == s.expected);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("proxy_protocol: random multi-splits and bytewise feeding",
                        "[laws][proxy]", codecs) {
  rng_t rng(Catch::rngSeed() + 3);
  for (int i = 0; i < samples; ++i) {
    const sample s = TestType::make(rng);
    auto input = s.bytes;
    const auto payload = random_bytes(rng, static_cast<std::size_t>(uniform(rng, 0, 40)));
    input.insert(input.end(), payload.begin(), payload.end());
    const std::span<const std::byte> in(input);
    INFO(TestType::name << " sample " << i);
    for (int round = 0; round < 10; ++round) {
      std::vector<std::span<const std::byte>> chunks;
      const bool bytewise = round == 0;
      for (std::size_t at = 0; at < in.size();) {
        const std::size_t n =
            bytewise ? 1 : static_cast<std::size_t>(uniform(rng, 0, static_cast<int>(in.size() - at)));
        chunks.push_back(in.subspan(at, n));  // empty chunks included
        at += n;
      }
      pp::parser p({.optional = uniform(rng, 0, 1) == 1});
      const auto r = feed(p, chunks);
      REQUIRE(r.status == pp::parse_status::done);
      CHECK(r.consumed == s.bytes.size());
      CHECK(p.get() == s.expected);
    }
  }
}

TEMPLATE_LIST_TEST_CASE("proxy_protocol: every strict prefix is need_more, all consumed",
                        "[laws][proxy]", codecs) {
  rng_t rng(Catch::rngSeed() + 4);
  for (int i = 0; i < samples / 4; ++i) {
    const sample s = TestType::make(rng);
    const std::span<const std::byte> in(s.bytes);
    for (std::size_t k = 0; k < in.size(); ++k) {
      pp::parser p({.optional = true});
      const auto r = p.parse(in.first(k));
      INFO(TestType::name << " sample " << i << " prefix " << k);
      CHECK(r.status == pp::parse_status::need_more);
      CHECK(r.consumed == k);
    }
  }
}
