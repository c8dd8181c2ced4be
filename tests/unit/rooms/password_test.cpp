// rproxy/rooms/password.hpp: PBKDF2-HMAC-SHA256 against RFC 7914 section 11's test vectors (also
// what Python's hashlib.pbkdf2_hmac gives), and the salted hash's check.
#include <catch2/catch.hpp>

#include <rproxy/rooms/password.hpp>

#include <string>
#include <vector>

namespace {
std::string hex(const std::vector<unsigned char>& b) {
  static constexpr char d[] = "0123456789abcdef";
  std::string s;
  for (auto c : b) s += d[c >> 4], s += d[c & 15];
  return s;
}
std::string kdf(std::string_view pw, std::string_view salt, std::uint32_t it, std::size_t len) {
  std::vector<unsigned char> out(len);
  REQUIRE(rproxy::rooms::pbkdf2_sha256(pw, reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), it, out.data(),
                                   out.size()));
  return hex(out);
}
}  // namespace

TEST_CASE("PBKDF2-HMAC-SHA256 matches RFC 7914's vectors", "[rooms]") {
  CHECK(kdf("passwd", "salt", 1, 64) ==
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
  CHECK(kdf("Password", "NaCl", 80000, 64) ==
        "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d");
  CHECK(kdf("password", "salt", 4096, 32) == "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a");
  std::vector<unsigned char> out(32);
  CHECK_FALSE(rproxy::rooms::pbkdf2_sha256("x", out.data(), 1, 0, out.data(), out.size()));  // 0 iterations
}

TEST_CASE("password_hash: salted, checked exactly", "[rooms]") {
  auto a = rproxy::rooms::password_hash::make("correct horse", 1000);
  auto b = rproxy::rooms::password_hash::make("correct horse", 1000);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->check("correct horse"));
  CHECK(b->check("correct horse"));
  CHECK_FALSE(a->check("correct hors"));
  CHECK_FALSE(a->check("correct horsE"));
  CHECK_FALSE(a->check(""));
  CHECK(a->iterations() == 1000);
  // Two hashes of one password differ (random salts): compare their bytes.
  CHECK(std::memcmp(&*a, &*b, sizeof *a) != 0);
}

TEST_CASE("password_hash: encoded for other instances, decoded strictly", "[rooms]") {
  auto h = rproxy::rooms::password_hash::make("correct horse", 1000);
  REQUIRE(h);
  const std::string text = h->encode();
  CHECK(text.rfind("pbkdf2-sha256$1000$", 0) == 0);
  CHECK(text.find("correct") == std::string::npos);
  auto back = rproxy::rooms::password_hash::decode(text);
  REQUIRE(back);
  CHECK(back->check("correct horse"));
  CHECK_FALSE(back->check("correct horsE"));
  CHECK(back->encode() == text);
  std::string upper = text;
  upper.back() = 'A';
  for (std::string bad : {std::string(), std::string("pbkdf2-sha256$"), text.substr(0, text.size() - 1), text + "0", upper,
                          "pbkdf2-sha1" + text.substr(13), "pbkdf2-sha256$0" + text.substr(18),
                          "pbkdf2-sha256$01000" + text.substr(18), "pbkdf2-sha256$99999999" + text.substr(18)}) {
    INFO(bad);
    CHECK_FALSE(rproxy::rooms::password_hash::decode(bad));
  }
}
