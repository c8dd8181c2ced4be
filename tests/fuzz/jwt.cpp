// libFuzzer target: the network-facing parts of the JWT path: compact JWS splitting, base64url,
// the strict JSON reader (header, claims, JWKS), and full verification against a fixed key set.
// Invariants checked: a decoded base64url segment re-encodes to the same text (one canonical
// form); a JSON document that parses stays within its limits; verification never throws or
// crashes; the seeds genuinely signed with the fixed secret (and valid at the fixed time) verify,
// and no other input does: any mutation of them (header, claims, signature, encoding, framing)
// is refused.
#include <rproxy/core/json.hpp>
#include <rproxy/middleware/base64url.hpp>
#include <rproxy/middleware/jwt.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace mw = rproxy::middleware;
namespace json = rproxy::json;

namespace {
const mw::key_set& keys() {
  static const mw::key_set ks = [] {
    mw::key_set k;
    (void)k.add_hmac_secret("fuzz-secret-0123456789abcdef0123456789", "hs");
    return k;
  }();
  return ks;
}

// The seeds in corpus/jwt/ signed with the secret above, unexpired at `now` below, audience
// "chat", with a "sub": valid_hs256 and escapes. (valid_hs512 is refused: HS512 needs a secret of
// 64 bytes or more, and this one has 38.)
constexpr std::array<std::string_view, 2> genuine = {
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImhzIn0."
    "eyJzdWIiOiJhbGljZSIsImF1ZCI6WyJjaGF0IiwieCJdLCJleHAiOjE4MDAwMDAwMDAsIm5iZiI6MTYwMDAwMDAwMCwiaWF0IjoxNzAwMDAwMDAwLCJyb2xlIjoibW9kIn0."
    "VZORDS1Fc793V3mRITmI5bBxdCabmJD4Yed3iJ60g3U",
    "eyJhbGciOiJIUzI1NiIsIngiOiJcdTAwZTlcdWQ4M2RcdWRlMDBcbiJ9."
    "eyJzdWIiOiJcInFcIiIsImF1ZCI6ImNoYXQiLCJleHAiOjE4MDAwMDAwMDAsIm4iOlsxLC0yLjVlLTMsdHJ1ZSxmYWxzZSxudWxsLHt9XX0."
    "qwljvrYdvX_vnRO48mzlH7Fl-QcKj3HnLlmi6CWCsPo",
};

void check(bool ok) {
  if (!ok) std::abort();
}

void walk(json::value v, std::size_t depth, const json::limits& lim) {
  check(depth <= lim.max_depth);
  std::size_t n = 0;
  for (json::value c : v.children()) {
    ++n;
    if (v.is_object()) check(v.find(c.key()).has_value());
    walk(c, depth + 1, lim);
  }
  check(n == v.size() || !(v.is_array() || v.is_object()));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  // base64url: canonical round trip
  std::string decoded;
  if (mw::base64url::decode(in, decoded)) check(mw::base64url::encode(decoded) == in);

  // JSON reader on the raw bytes
  json::limits lim;
  lim.max_nodes = 512;
  if (auto doc = json::parse(in, lim)) {
    check(doc->node_count() <= lim.max_nodes);
    walk(doc->root(), 1, lim);
  }

  // the token path
  if (auto t = mw::parse_jwt(in)) {
    check(t->header.root().is_object());
    check(t->claims.root().is_object());
    check(t->signing_input.size() < in.size());
  }
  mw::jwt_config cfg;
  cfg.audiences = {"chat"};
  cfg.required_claims = {"sub"};
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  // Once: every genuine token verifies (else the invariant below would hold vacuously).
  static const bool genuine_verify = [&] {
    for (auto g : genuine) check(mw::verify_jwt(g, keys(), cfg, now).has_value());
    return true;
  }();
  (void)genuine_verify;
  const bool is_genuine = std::find(genuine.begin(), genuine.end(), in) != genuine.end();
  auto v = mw::verify_jwt(in, keys(), cfg, now);
  check(v.has_value() == is_genuine);
  if (v) {
    check(v->alg == mw::jwt_alg::hs256 || v->alg == mw::jwt_alg::hs384 || v->alg == mw::jwt_alg::hs512);
    check(!v->subject().empty());
  }

  // a JWKS document: must never crash, whatever it contains
  if (size < 4096) {
    mw::key_set ks;
    (void)ks.add_jwks(in);
  }
  return 0;
}
