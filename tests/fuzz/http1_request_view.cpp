// libFuzzer target: the Cookie and query parsers behind http1::request_view.
//   - the first input byte splits the rest into a name and a text (Cookie value or target);
//   - find_cookie / find_query_raw return views inside the text (never past it);
//   - percent_decode never grows its input, and decodes what an encoder produced back exactly;
//   - a request_view over a parsed head answers header/cookie/query for names from the input;
//   - without_query_param leaves no parameter of a (non-empty) name, keeps the path, never grows
//     the target, and is the identity on a target that has no such parameter;
//   - append_cookies_without leaves no cookie of a (non-empty) name, never grows the value,
//     keeps every other cookie find_cookie sees, and drops nothing when there is no such cookie.
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/request_view.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace http1 = rproxy::codec::http1;

namespace {

void check_inside(std::string_view outer, std::string_view inner) {
  if (inner.empty()) return;
  if (inner.data() < outer.data() || inner.data() + inner.size() > outer.data() + outer.size()) std::abort();
}

std::string encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    out += '%';
    out += hex[u >> 4];
    out += hex[u & 15];
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t cut = size > 1 ? data[0] % size : 0;
  const std::string_view name = all.substr(0, std::min(cut, all.size()));
  const std::string_view text = all.substr(std::min(cut, all.size()));

  if (auto c = http1::find_cookie(text, name)) check_inside(text, *c);
  const auto q = http1::query_of_target(text);
  check_inside(text, q);
  if (auto v = http1::find_query_raw(q, name)) {
    check_inside(q, *v);
    std::string out;
    if (http1::percent_decode(*v, out) && out.size() > v->size()) std::abort();
  }
  std::string dec;
  if (!http1::percent_decode(encode(text), dec, false) || dec != text) std::abort();

  const std::string stripped = http1::without_query_param(text, name);
  if (stripped.size() > text.size() || http1::path_of_target(stripped) != http1::path_of_target(text)) std::abort();
  if (!name.empty() && http1::find_query_raw(http1::query_of_target(stripped), name)) std::abort();  // (an empty name removes nothing)
  if (!http1::find_query_raw(q, name) && stripped != text) std::abort();

  std::string kept;
  const std::size_t dropped = http1::append_cookies_without(kept, text, name);
  if (kept.size() > text.size() + static_cast<std::size_t>(std::count(text.begin(), text.end(), ';'))) std::abort();  // ("a;b" -> "a; b")
  if (!name.empty() && http1::find_cookie(kept, name)) std::abort();
  if ((dropped > 0) != (!name.empty() && http1::find_cookie(text, name).has_value())) std::abort();
  for (std::string_view other : {std::string_view("a"), std::string_view("session")})
    if (other != name && http1::find_cookie(text, other) != http1::find_cookie(kept, other)) std::abort();

  // The same names against a parsed request carrying the text as target, cookie and header.
  std::string req = "GET /";
  req += text.substr(0, 256);
  req += " HTTP/1.1\r\nHost: h\r\nCookie: ";
  req += text.substr(0, 256);
  req += "\r\n\r\n";
  http1::request_parser p;
  if (p.parse(req).what == http1::event::head) {
    http1::request_view v{p.head()};
    if (auto h = v.header(name)) check_inside(req, *h);
    if (auto c = v.cookie(name)) check_inside(req, *c);
    (void)v.query(name);
    (void)v.path();
  }
  return 0;
}
