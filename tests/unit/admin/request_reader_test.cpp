#include <rproxy/admin/request_reader.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace {

using rproxy::admin::request_reader;
using step = request_reader::step;

struct seen {
  std::vector<std::string> requests;  // "METHOD target body"
  unsigned error = 0;
};

/// Feeds `input` in pieces of `piece` bytes and collects what the reader gives.
seen read_in_pieces(const std::string& input, std::size_t piece, std::size_t max_body = 1024) {
  request_reader rd(max_body);
  seen out;
  for (std::size_t i = 0; i <= input.size() && out.error == 0; i += piece) {
    rd.feed(std::string_view(input).substr(i, piece));
    for (auto s = rd.next(); s.what != step::need_more; s = rd.next()) {
      if (s.what == step::error) {
        out.error = s.status;
        break;
      }
      out.requests.push_back(rd.head().method + " " + rd.head().target + " " + rd.body());
    }
  }
  return out;
}

}  // namespace

TEST_CASE("admin request reader: any split of pipelined requests gives the same requests", "[admin]") {
  const std::string input =
      "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
  for (std::size_t piece = 1; piece <= input.size(); ++piece) {
    CAPTURE(piece);
    const auto s = read_in_pieces(input, piece);
    CHECK(s.error == 0);
    CHECK(s.requests == std::vector<std::string>{"POST /a hello world", "POST /b abc", "GET /c "});
  }
}

TEST_CASE("admin request reader: a chunked body split right after a chunk's data", "[admin]") {
  request_reader rd(1024);
  rd.feed("POST /r HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  CHECK(rd.next().what == step::need_more);
  rd.feed("0\r\n\r\n");
  REQUIRE(rd.next().what == step::request);
  CHECK(rd.body() == "hello");
  CHECK(rd.keep_alive());
}

TEST_CASE("admin request reader: errors are final and carry the status", "[admin]") {
  CHECK(read_in_pieces("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 7).error ==
        400);
  CHECK(read_in_pieces("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n" + std::string(20, 'x'), 5, 10).error ==
        413);
  request_reader rd(10);
  rd.feed("BAD\r\n\r\n");
  CHECK(rd.next().what == step::error);
  rd.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(rd.next().what == step::error);
}

TEST_CASE("admin request reader: Connection: close and HTTP/1.0 end the connection", "[admin]") {
  request_reader rd(10);
  rd.feed("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  REQUIRE(rd.next().what == step::request);
  CHECK_FALSE(rd.keep_alive());
  request_reader old(10);
  old.feed("GET / HTTP/1.0\r\n\r\n");
  REQUIRE(old.next().what == step::request);
  CHECK_FALSE(old.keep_alive());
}
