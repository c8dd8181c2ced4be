// Laws of the HTTP/1.1 codec, for requests and responses alike:
//   1. round trip: parse(serialize(x)) == x, for random heads, bodies, chunked or
//      Content-Length framing (with chunk extensions and trailers), pipelined streams;
//   2. split independence: feeding the bytes in any split (every split point for small
//      streams, random multi-splits for larger ones) gives the same events and messages;
//   3. the same for corrupted streams: whatever the error, it does not depend on the split.
#include <rproxy/codec/http1/collector.hpp>
#include <rproxy/codec/http1/serializer.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

namespace http1 = rproxy::codec::http1;
using http1::role;

namespace {

constexpr std::string_view tchars =
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

struct gen {
  std::mt19937_64 rng;

  std::size_t uniform(std::size_t lo, std::size_t hi) {
    return std::uniform_int_distribution<std::size_t>(lo, hi)(rng);
  }
  bool coin(double p = 0.5) { return std::bernoulli_distribution(p)(rng); }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[uniform(0, v.size() - 1)]; }

  std::string from(std::string_view alphabet, std::size_t lo, std::size_t hi) {
    std::string s(uniform(lo, hi), '\0');
    for (auto& c : s) c = alphabet[uniform(0, alphabet.size() - 1)];
    return s;
  }
  std::string token(std::size_t lo, std::size_t hi) { return from(tchars, lo, hi); }
  char vchar() {  // field-vchar: VCHAR or obs-text
    const auto c = uniform(0x21, 0x7e + 128);
    return static_cast<char>(c <= 0x7e ? c : c - 0x7f + 0x80);
  }
  std::string field_value() {
    std::string s;
    const auto n = uniform(0, 30);
    for (std::size_t i = 0; i < n; ++i) {
      const bool inner = i > 0 && i + 1 < n;
      s.push_back(inner && coin(0.15) ? (coin() ? ' ' : '\t') : vchar());
    }
    return s;
  }
  std::string bytes(std::size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(uniform(0, 255));
    return s;
  }
  std::size_t body_size() {
    const auto r = uniform(0, 9);
    return r < 3 ? 0 : r < 8 ? uniform(1, 64) : uniform(65, 3000);
  }
};

bool reserved(std::string_view name) {
  for (std::string_view r : {"content-length", "transfer-encoding", "host", "connection", "upgrade",
                             "expect"})
    if (std::equal(name.begin(), name.end(), r.begin(), r.end(), [](char a, char b) {
          return (a >= 'A' && a <= 'Z' ? a - 'A' + 'a' : a) == b;
        }))
      return true;
  return false;
}

http1::fields random_fields(gen& g, std::size_t max) {
  http1::fields f;
  const auto n = g.uniform(0, max);
  while (f.size() < n) {
    auto name = g.token(1, 16);
    if (!reserved(name)) f.add(name, g.field_value());
  }
  return f;
}

/// Chunked encoding of `body` in random pieces, with random size spellings and extensions.
std::string chunked(gen& g, std::string_view body, const http1::fields& trailers) {
  static const std::vector<std::string> exts{"", "", ";a", ";a=b", " ; name = \"quoted \\\" v\"",
                                             ";x=1;y=\"\"", "\t;t"};
  std::string out;
  auto size_line = [&](std::size_t n) {
    std::string hex;
    for (std::size_t v = n;; v >>= 4) {
      hex.insert(hex.begin(), g.coin() ? "0123456789abcdef"[v & 15] : "0123456789ABCDEF"[v & 15]);
      if (v < 16) break;
    }
    out += std::string(g.coin(0.1) ? g.uniform(1, 3) : 0, '0') + hex + g.pick(exts) + "\r\n";
  };
  while (!body.empty()) {
    const auto n = std::min(body.size(), g.coin(0.3) ? g.uniform(1, 8) : g.uniform(1, 1500));
    size_line(n);
    out.append(body.substr(0, n)).append("\r\n");
    body.remove_prefix(n);
  }
  size_line(0);
  for (const auto& f : trailers) out += f.name + ": " + f.value + "\r\n";
  return out + "\r\n";
}

struct stream {
  std::string bytes;
  std::vector<http1::request> requests;
  std::vector<http1::response> responses;
};

template <class Message>
void add_body(gen& g, stream& s, Message& m, bool allow_chunked, bool allow_until_close,
              bool& until_close) {
  m.body = g.bytes(g.body_size());
  const auto pick = g.uniform(0, 9);
  if (allow_until_close && pick == 0) {
    until_close = true;
    m.keep_alive = false;
    s.bytes += http1::serialize(m.head) + m.body;
  } else if (allow_chunked && pick < 5) {
    http1::set_chunked(m.head.fields);
    m.trailers = g.coin(0.3) ? random_fields(g, 3) : http1::fields{};
    s.bytes += http1::serialize(m.head) + chunked(g, m.body, m.trailers);
  } else {
    // a request without a body needs no Content-Length; a response would read until close
    constexpr bool is_request = std::is_same_v<Message, http1::request>;
    if (!m.body.empty() || !is_request || g.coin())
      http1::set_content_length(m.head.fields, m.body.size());
    s.bytes += http1::serialize(m.head) + m.body;
  }
}

void add_request(gen& g, stream& s) {
  static const std::vector<std::string> methods{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS",
                                                "HEAD", "TRACE"};
  static constexpr std::string_view target_chars =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?%[]{}|^`\"<>\\";
  http1::request r;
  r.head.method = g.coin(0.8) ? g.pick(methods) : g.token(1, 10);
  r.head.target = g.coin(0.9) ? "/" + g.from(target_chars, 0, 40)
                              : "http://" + g.from("abcxyz.", 1, 10) + "/" + g.from(target_chars, 0, 10);
  r.head.version = g.coin(0.85) ? http1::http_version::http11 : http1::http_version::http10;
  r.head.fields = random_fields(g, 8);
  const bool v11 = r.head.version == http1::http_version::http11;
  if (v11 || g.coin()) r.head.fields.add(g.coin() ? "Host" : "host", g.from("abc.-0123456789:", 0, 20));
  r.keep_alive = g.coin(0.85);
  http1::set_keep_alive(r.head, r.keep_alive);
  bool until_close = false;
  add_body(g, s, r, v11, false, until_close);
  s.requests.push_back(std::move(r));
}

/// Returns false once the stream must end (a body delimited by the close).
bool add_response(gen& g, stream& s, bool last) {
  static const std::vector<unsigned> statuses{100, 200, 200, 201, 204, 206, 301, 304, 404, 418, 500, 503};
  http1::response r;
  r.head.status = g.pick(statuses);
  r.head.reason = g.coin(0.8) ? std::string(http1::reason_phrase(r.head.status))
                              : g.field_value();
  r.head.version = g.coin(0.85) ? http1::http_version::http11 : http1::http_version::http10;
  r.head.fields = random_fields(g, 8);
  r.keep_alive = g.coin(0.85);
  http1::set_keep_alive(r.head, r.keep_alive);
  const auto st = r.head.status;
  if (st < 200 || st == 204 || st == 304) {  // never a body; Content-Length is ignored
    if (st != 100 && g.coin(0.3)) http1::set_content_length(r.head.fields, g.uniform(0, 99));
    s.bytes += http1::serialize(r.head);
    s.responses.push_back(std::move(r));
    return true;
  }
  bool until_close = false;
  add_body(g, s, r, r.head.version == http1::http_version::http11, last, until_close);
  s.responses.push_back(std::move(r));
  return !until_close;
}

template <role R>
stream make_stream(gen& g) {
  stream s;
  const auto n = g.uniform(1, 4);
  for (std::size_t i = 0; i < n; ++i) {
    if constexpr (R == role::request) {
      add_request(g, s);
    } else if (!add_response(g, s, i + 1 == n)) {
      break;
    }
  }
  return s;
}

struct outcome {
  std::vector<http1::request> requests;
  std::vector<http1::response> responses;
  std::vector<http1::event> events;
  http1::error error{};
  bool upgraded = false;
  friend bool operator==(const outcome&, const outcome&) = default;
};

/// Feeds `bytes` cut at `cuts` (ascending), then ends the stream.
template <role R>
outcome run(std::string_view bytes, const std::vector<std::size_t>& cuts) {
  http1::basic_collector<R> c;
  std::size_t prev = 0;
  for (auto cut : cuts) {
    c.feed(bytes.substr(prev, cut - prev));
    prev = cut;
  }
  c.feed(bytes.substr(prev));
  c.finish();
  outcome o;
  if constexpr (R == role::request) o.requests = c.messages(); else o.responses = c.messages();
  o.events = c.events();
  o.error = c.last_error();
  o.upgraded = c.upgraded();
  return o;
}

std::vector<std::size_t> random_cuts(gen& g, std::size_t size) {
  std::vector<std::size_t> cuts(g.uniform(1, std::min<std::size_t>(size, 40)));
  for (auto& c : cuts) c = g.uniform(0, size);
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

/// Law 2: every split of `bytes` gives `whole`.
template <role R>
void check_splits(gen& g, std::string_view bytes, const outcome& whole) {
  if (bytes.size() <= 400) {
    for (std::size_t cut = 0; cut <= bytes.size(); ++cut) {
      INFO("split at " << cut);
      REQUIRE(run<R>(bytes, {cut}) == whole);
    }
  } else {
    for (int i = 0; i < 12; ++i) {
      const auto cuts = random_cuts(g, bytes.size());
      INFO("cuts " << cuts.size() << " first " << cuts.front());
      REQUIRE(run<R>(bytes, cuts) == whole);
    }
  }
  if (bytes.size() <= 2000) {  // one byte at a time
    std::vector<std::size_t> all(bytes.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    REQUIRE(run<R>(bytes, all) == whole);
  }
}

std::string corrupt(gen& g, std::string s) {
  static const std::vector<char> nasty{'\r', '\n', ' ', '\t', ':', ',', '\0', '0', 'a', ';', '"',
                                       '\x7f', '\x80', '/'};
  const auto n = g.uniform(1, 3);
  for (std::size_t i = 0; i < n && !s.empty(); ++i) {
    const auto at = g.uniform(0, s.size() - 1);
    switch (g.uniform(0, 3)) {
      case 0: s[at] = g.pick(nasty); break;
      case 1: s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), g.pick(nasty)); break;
      case 2: s.erase(at, 1); break;
      default: s[at] = static_cast<char>(g.uniform(0, 255)); break;
    }
  }
  return s;
}

template <role R>
using role_c = std::integral_constant<role, R>;
using roles = std::tuple<role_c<role::request>, role_c<role::response>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("http1 law: parse(serialize(x)) == x", "[laws][http1]", roles) {
  constexpr role R = TestType::value;
  gen g{std::mt19937_64{R == role::request ? 0x5eed1u : 0x5eed2u}};
  for (int i = 0; i < 400; ++i) {
    const auto s = make_stream<R>(g);
    INFO("stream #" << i << ": " << s.bytes.substr(0, 300));
    const auto o = run<R>(s.bytes, {});
    REQUIRE(o.error == http1::error{});
    if constexpr (R == role::request) {
      REQUIRE(o.requests == s.requests);
    } else {
      REQUIRE(o.responses == s.responses);
    }
    const auto completes = std::count(o.events.begin(), o.events.end(), http1::event::message_complete);
    REQUIRE(static_cast<std::size_t>(completes) == s.requests.size() + s.responses.size());
  }
}

TEMPLATE_LIST_TEST_CASE("http1 law: any byte split gives the same events and messages",
                        "[laws][http1]", roles) {
  constexpr role R = TestType::value;
  gen g{std::mt19937_64{R == role::request ? 0x5b1u : 0x5b2u}};
  for (int i = 0; i < 150; ++i) {
    const auto s = make_stream<R>(g);
    INFO("stream #" << i << " of " << s.bytes.size() << " bytes");
    check_splits<R>(g, s.bytes, run<R>(s.bytes, {}));
  }
}

TEMPLATE_LIST_TEST_CASE("http1 law: corrupted input fails the same way for any split",
                        "[laws][http1]", roles) {
  constexpr role R = TestType::value;
  gen g{std::mt19937_64{R == role::request ? 0xbad1u : 0xbad2u}};
  int failures = 0;
  for (int i = 0; i < 300; ++i) {
    const auto s = make_stream<R>(g);
    const auto bytes = corrupt(g, s.bytes);
    const auto whole = run<R>(bytes, {});
    failures += whole.error != http1::error{} ? 1 : 0;
    INFO("stream #" << i << ": " << bytes.substr(0, 300));
    check_splits<R>(g, bytes, whole);
  }
  CHECK(failures > 100);  // the corruption does reach the parser's checks
}
