// flow/http1_io.hpp's receive buffer: bytes kept in order across compaction and growth, room
// bounded by the capacity, and a buffer that starts small grows only when it is full.
#include <rproxy/flow/http1_io.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using rproxy::flow::http1_detail::recv_buffer;

/// Reads `s` into `b` as a socket read would: into the room prepare(n) gives.
std::size_t fill(recv_buffer& b, std::string_view s, std::size_t n) {
  auto room = b.prepare(n);
  const auto k = std::min(room.size(), s.size());
  std::memcpy(room.data(), s.data(), k);
  b.commit(k);
  return k;
}

}  // namespace

TEST_CASE("recv_buffer: a fixed buffer compacts and bounds its room", "[flow][http1]") {
  recv_buffer b(8);
  CHECK(b.capacity() == 8);
  CHECK(fill(b, "abcdef", 100) == 6);
  b.consume(4);
  CHECK(b.view() == "ef");
  CHECK(b.prepare(100).size() == 6);  // compacted: "ef" moved to the front
  CHECK(b.view() == "ef");
  CHECK(fill(b, "ghijklmn", 100) == 6);
  CHECK(b.view() == "efghijkl");
  CHECK(b.full());
  CHECK(b.prepare().empty());
  b.consume(8);
  CHECK(b.view().empty());
  CHECK_FALSE(b.full());
}

TEST_CASE("recv_buffer: a buffer with an initial size grows to its capacity only when full", "[flow][http1]") {
  recv_buffer b(64, 16);
  CHECK(b.capacity() == 64);
  CHECK(b.prepare().size() == 16);  // all the room there is: the initial size
  const std::string text = "0123456789abcdefghijklmnopqrstuvwxyz";
  CHECK(fill(b, text, 100) == 16);
  CHECK_FALSE(b.full());
  CHECK(b.prepare(100).size() == 48);  // full at 16: grown to 64, the bytes kept
  CHECK(b.view() == text.substr(0, 16));
  CHECK(fill(b, std::string_view(text).substr(16), 100) == 20);
  CHECK(b.view() == text);
  b.consume(10);
  CHECK(b.view() == std::string_view(text).substr(10));

  b.clear();  // empty, and back at the initial size
  CHECK(b.view().empty());
  CHECK(b.prepare().size() == 16);
  CHECK(fill(b, "xy", 100) == 2);
  CHECK(b.view() == "xy");
}

TEST_CASE("recv_buffer: a partly consumed buffer compacts before it grows", "[flow][http1]") {
  recv_buffer b(32, 8);
  CHECK(fill(b, "abcdefgh", 100) == 8);
  b.consume(6);
  CHECK(b.prepare(100).size() == 6);  // room made by compaction: no growth yet
  CHECK(fill(b, "ijklmn", 100) == 6);
  CHECK(b.view() == "ghijklmn");
  CHECK(b.prepare(100).size() == 24);  // full now: grown
  CHECK(b.view() == "ghijklmn");
  CHECK(fill(b, std::string(30, 'z'), 100) == 24);
  CHECK(b.full());
  CHECK(b.prepare(100).empty());
}

TEST_CASE("recv_buffer: append goes through the same room", "[flow][http1]") {
  recv_buffer b(16, 4);
  b.append("abcd");
  b.append("efgh");  // full at 4: grown
  CHECK(b.view() == "abcdefgh");
}
