#include <rproxy/core/block_pool.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

namespace {

struct conn {
  std::uint64_t id = 0;
  char body[120] = {};
  static void* operator new(std::size_t n) { return rproxy::block_pool<conn>::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { rproxy::block_pool<conn>::deallocate(p, n); }
};

struct bigger : conn {  // a derived type: its size is not the pool's, so the heap serves it
  char more[64] = {};
};

}  // namespace

TEST_CASE("block_pool: blocks of one slab sit side by side, a freed one is the next one made", "[core][block_pool]") {
  std::vector<conn*> made;
  for (int i = 0; i < 100; ++i) {
    made.push_back(new conn);
    made.back()->id = static_cast<std::uint64_t>(i);
  }
  // Consecutive blocks of a slab are one block size apart (128 bytes for 128-byte objects):
  // no allocator header between them.
  std::size_t adjacent = 0;
  for (std::size_t i = 1; i < made.size(); ++i)
    if (reinterpret_cast<std::byte*>(made[i]) - reinterpret_cast<std::byte*>(made[i - 1]) == sizeof(conn)) ++adjacent;
  CHECK(adjacent >= 90);  // (a new slab may start in between)
  for (int i = 0; i < 100; ++i) CHECK(made[static_cast<std::size_t>(i)]->id == static_cast<std::uint64_t>(i));
  conn* freed = made[42];
  delete freed;
  conn* again = new conn;
  CHECK(again == freed);  // last freed, first made
  made[42] = again;
  std::set<conn*> distinct(made.begin(), made.end());
  CHECK(distinct.size() == made.size());
  for (auto* c : made) delete c;
}

TEST_CASE("block_pool: a block freed on another thread is reused there", "[core][block_pool]") {
  conn* c = new conn;
  conn* on_other = nullptr;
  std::thread t([&] {
    delete c;             // joins this thread's free list
    on_other = new conn;  // and is the next block made here
    delete on_other;
  });
  t.join();
  CHECK(on_other == c);
}

TEST_CASE("block_pool: a type of another size goes to the heap", "[core][block_pool]") {
  conn* top = new conn;
  delete top;            // the top of this thread's free list
  conn* b = new bigger;  // conn's operator new, with bigger's size: not from the pool
  CHECK(b != top);
  static_cast<bigger*>(b)->more[63] = 1;
  delete static_cast<bigger*>(b);  // the sized delete sends it back to the heap, not to the pool
  conn* next = new conn;
  CHECK(next == top);
  delete next;
}
