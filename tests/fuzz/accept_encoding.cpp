// libFuzzer target for the Accept-Encoding parser and the compress stage's choice
// (middleware/compress_negotiation.hpp). The input is split at NUL bytes into field lines.
// Invariants: the parser stays within its bounds and never crashes; the choice is identity or a
// coding the server offers; a chosen coding is acceptable (weight > 0) and no offered coding
// weighs more; the choice ignores ASCII case; a malformed line means identity.
#include <rproxy/middleware/compress_negotiation.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {
namespace mw = rproxy::middleware;
using mw::content_coding;

void check(bool ok) {
  if (!ok) std::abort();
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> lines;
  for (std::size_t b = 0;;) {
    const auto e = in.find('\0', b);
    lines.push_back(in.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
    if (e == std::string_view::npos) break;
    b = e + 1;
  }
  // the server's order: taken from the first byte, so every order is tried
  static constexpr std::array<std::array<content_coding, 3>, 6> orders{{
      {content_coding::zstd, content_coding::br, content_coding::gzip}, {content_coding::zstd, content_coding::gzip, content_coding::br},
      {content_coding::br, content_coding::zstd, content_coding::gzip}, {content_coding::br, content_coding::gzip, content_coding::zstd},
      {content_coding::gzip, content_coding::zstd, content_coding::br}, {content_coding::gzip, content_coding::br, content_coding::zstd},
  }};
  const auto& order = orders[size > 0 ? data[0] % orders.size() : 0];
  const std::size_t offered = size > 1 ? 1 + data[1] % 3 : 3;
  const std::span<const content_coding> prefer(order.data(), offered);

  mw::accept_encoding ae;
  bool malformed = false;
  for (auto line : lines)
    if (mw::parse_accept_encoding(line, ae)) {
      malformed = true;
      break;
    }
  const content_coding chosen = mw::negotiate(lines, prefer);
  if (malformed) {
    check(chosen == content_coding::identity);
  } else {
    check(ae.present);
    for (int w : ae.weight) check(w >= -1 && w <= 1000);
    check(ae.any >= -1 && ae.any <= 1000);
    check(chosen == mw::choose_coding(ae, prefer));
    if (chosen != content_coding::identity) {
      bool offered_it = false;
      for (auto c : prefer) {
        offered_it = offered_it || c == chosen;
        check(ae.weight_of(c) <= ae.weight_of(chosen));
      }
      check(offered_it);
      check(ae.weight_of(chosen) > 0);
    }
  }
  std::vector<std::string> low;
  for (auto line : lines) low.push_back(lowered(line));
  std::vector<std::string_view> low_views(low.begin(), low.end());
  check(mw::negotiate(low_views, prefer) == chosen);
  return 0;
}
