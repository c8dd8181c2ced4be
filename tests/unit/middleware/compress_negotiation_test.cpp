// Accept-Encoding negotiation (RFC 9110 §12.5.3): a table of fields and the coding chosen, and
// the parser's bounds and errors.
#include <rproxy/middleware/compress_negotiation.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace {
namespace mw = rproxy::middleware;
using mw::content_coding;
constexpr auto identity = content_coding::identity, gzip = content_coding::gzip, br = content_coding::br,
               zstd = content_coding::zstd;

constexpr std::array<content_coding, 3> server_order{zstd, br, gzip};

content_coding choose(std::string_view field, std::span<const content_coding> prefer = server_order) {
  const std::array<std::string_view, 1> lines{field};
  return mw::negotiate(lines, prefer);
}

struct row {
  std::string_view field;
  content_coding expected;
};

}  // namespace

TEST_CASE("negotiation: a table of Accept-Encoding fields and the coding chosen", "[middleware][compress]") {
  const std::vector<row> table{
      // browsers' usual fields: the server's order breaks the tie
      {"gzip, deflate, br, zstd", zstd},
      {"gzip, deflate, br", br},
      {"gzip, deflate", gzip},
      {"deflate", identity},
      {"", identity},                        // only identity is acceptable
      {" , ,", identity},                    // empty list elements
      // case, spaces, x-gzip
      {"GZIP", gzip},
      {"x-gzip", gzip},
      {"  br  ,gzip", br},
      {"gzip ; q=0.5 , br ; q=0.4", gzip},
      // q-values: the client's weight first
      {"gzip;q=1.0, br;q=0.9", gzip},
      {"gzip;q=0.8, br;q=0.9, zstd;q=0.7", br},
      {"br;q=0.001, gzip;q=0.002", gzip},
      {"gzip;Q=0.5", gzip},                  // the parameter name is case-insensitive
      {"gzip;q=1, br;q=1.000", br},          // equal weights: the server's order
      {"zstd;q=0, br;q=0, gzip;q=0", identity},
      {"gzip;q=0", identity},
      {"gzip;q=0.0", identity},
      // "*": any coding not named
      {"*", zstd},
      {"*;q=0.5, zstd;q=0", br},
      {"*;q=0", identity},
      {"gzip, *;q=0", gzip},
      {"br;q=0.1, *;q=0.5", zstd},
      // identity outranks a coding only when named (or covered by "*") with a greater weight
      {"identity", identity},
      {"gzip;q=0.5, identity", identity},
      {"gzip, identity;q=0.5", gzip},
      {"gzip;q=0.5, identity;q=0.5", gzip},
      {"identity;q=0, gzip", gzip},
      {"gzip;q=0.4, *;q=0.6", zstd},         // "*" covers zstd with 0.6
      // a coding listed twice keeps its last weight
      {"gzip;q=0, gzip;q=0.3", gzip},
      {"br;q=0.9, br;q=0", identity},
      // unknown codings are ignored
      {"compress, deflate, exi, pack200-gzip", identity},
      {"deflate;q=1, gzip;q=0.1", gzip},
      // malformed: left alone (identity), not a guess
      {"gzip;q=2", identity},
      {"gzip;q=1.5", identity},
      {"gzip;q=0.1234", identity},
      {"gzip;q=", identity},
      {"gzip;q", identity},
      {"gzip;", identity},
      {"gzip;level=9", identity},
      {"gzip;q=0.5;x=1", identity},
      {"gz ip", identity},
      {"gzip\x01", identity},
      {"\"gzip\"", identity},
  };
  for (const auto& r : table) {
    INFO("Accept-Encoding: " << r.field);
    CHECK(choose(r.field) == r.expected);
  }
}

TEST_CASE("negotiation: the server's list decides what may be chosen and in which order", "[middleware][compress]") {
  const std::array<content_coding, 2> gzip_first{gzip, br};
  CHECK(choose("gzip, br, zstd", gzip_first) == gzip);
  CHECK(choose("zstd", gzip_first) == identity);  // not offered
  CHECK(choose("*", gzip_first) == gzip);
  const std::array<content_coding, 1> only_br{br};
  CHECK(choose("gzip;q=1, br;q=0.1", only_br) == br);
  CHECK(choose("gzip", std::span<const content_coding>{}) == identity);
}

TEST_CASE("negotiation: no Accept-Encoding field means no coding", "[middleware][compress]") {
  CHECK(mw::negotiate(std::span<const std::string_view>{}, server_order) == identity);
}

TEST_CASE("negotiation: several field lines are one list", "[middleware][compress]") {
  const std::array<std::string_view, 2> lines{"gzip;q=0.5", "br;q=0.7"};
  CHECK(mw::negotiate(lines, server_order) == br);
  const std::array<std::string_view, 2> bad{"gzip", "br;q=x"};
  CHECK(mw::negotiate(bad, server_order) == identity);  // one malformed line spoils the field
}

TEST_CASE("negotiation: the parser is bounded and says what is wrong", "[middleware][compress]") {
  mw::accept_encoding ae;
  std::string many;
  for (std::size_t i = 0; i < mw::accept_encoding::max_elements; ++i) {
    many += 'x';
    many += std::to_string(i);
    many += ',';
  }
  CHECK_FALSE(mw::parse_accept_encoding(many, ae));  // exactly the limit: fine
  many += "gzip";
  mw::accept_encoding ae2;
  CHECK(mw::parse_accept_encoding(many, ae2) == mw::accept_encoding_error::too_many);
  mw::accept_encoding ae3;
  CHECK(mw::parse_accept_encoding("g@zip", ae3) == mw::accept_encoding_error::bad_token);
  mw::accept_encoding ae4;
  CHECK(mw::parse_accept_encoding("gzip;q=0.5000", ae4) == mw::accept_encoding_error::bad_weight);
  CHECK(mw::parse_accept_encoding("gzip;q=0.5000", ae4).message().find("weight") != std::string::npos);
}

TEST_CASE("negotiation: weights in thousandths", "[middleware][compress]") {
  mw::accept_encoding ae;
  REQUIRE_FALSE(mw::parse_accept_encoding("gzip;q=0.25, br;q=1., zstd;q=0.", ae));
  CHECK(ae.weight_of(gzip) == 250);
  CHECK(ae.weight_of(br) == 1000);
  CHECK(ae.weight_of(zstd) == 0);
  CHECK(ae.any == -1);
  CHECK(mw::coding_token(zstd) == "zstd");
}
