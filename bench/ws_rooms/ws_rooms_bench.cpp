// Room messages through rproxy::rooms::registry::handle (parse, validate, encode once, keep in the
// history, share with the members), by room size, beside the same message with its frame
// encoded once per recipient (what a server without the shared buffer does), and with two
// threads sending to one room (its lock contended) or to two rooms. Each case runs 0.3 s; the
// table gives ns per message and the per-recipient encoding's time as a multiple of ours.
#include <rproxy/rooms/registry.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace rooms = rproxy::rooms;

namespace {

using clock_type = std::chrono::steady_clock;

template <class F>
double ns_per_op(F&& f) {
  std::size_t n = 0;
  const auto start = clock_type::now();
  auto now = start;
  for (; now - start < std::chrono::milliseconds(300); now = clock_type::now())
    for (int i = 0; i < 16; ++i, ++n) f();
  return std::chrono::duration<double, std::nano>(now - start).count() / static_cast<double>(n);
}

void fail(const char* what) {
  std::fprintf(stderr, "bench_ws_rooms: %s\n", what);
  std::exit(1);
}

rooms::rooms_block config() {
  rooms::rooms_block c;
  c.max_members = 1000;
  c.history = 100;
  c.max_rooms_per_session = 4;
  return c;
}

const auto now = rooms::time_point{} + std::chrono::hours(1000);
const std::string text = R"({"op":"message","id":7,"room":"r","text":"hello there, how is everyone doing today? <3 & \u00e9"})";

void fill(rooms::registry& reg, std::string_view room, std::size_t members, std::uint16_t worker) {
  std::string create = R"({"op":"create","room":")";
  create.append(room).append("\"}");
  if (!reg.handle({rooms::make_session_id(worker, 0), "owner"}, create, now).ok) fail("create");
  std::string join = R"({"op":"join","room":")";
  join.append(room).append("\"}");
  for (std::size_t i = 1; i < members; ++i) {
    std::string user = "u";  // appended: g++ 12 -O3 warns falsely on "u" + std::to_string(i)
    user.append(std::to_string(i));
    if (!reg.handle({rooms::make_session_id(worker, i), user}, join, now).ok) fail("join");
  }
}

}  // namespace

int main() {
  std::printf("%-30s %12s %18s %10s\n", "case", "shared ns", "per-recipient ns", "x shared");
  for (std::size_t members : {1, 10, 100, 1000}) {
    rooms::registry reg(config());
    fill(reg, "r", members, 0);
    const rooms::caller c{rooms::make_session_id(0, 0), "owner"};
    std::size_t sink = 0;
    const double shared = ns_per_op([&] {
      auto out = reg.handle(c, text, now);
      if (!out.ok) fail("message");
      sink += out.deliveries[0].to->size();
    });
    const double per_recipient = ns_per_op([&] {
      auto out = reg.handle(c, text, now);
      if (!out.ok) fail("message");
      for (auto s : *out.deliveries[0].to) {  // a frame built for each member
        rooms::json_out f;
        f.str("type", "message").str("room", "r").unum("msg_id", s).str("from", "owner").str("role", "owner");
        f.str("text", "hello there, how is everyone doing today? <3 & \xc3\xa9").num("ts", 1);
        sink += std::move(f).done().size();
      }
    });
    char name[64];
    std::snprintf(name, sizeof name, "message, %zu members", members);
    std::printf("%-30s %12.0f %18.0f %10.2f\n", name, shared, per_recipient, per_recipient / shared);
    if (sink == 0) fail("nothing delivered");
  }

  // Two threads, 100 members per room: one room (contended) or one room each.
  for (bool same : {true, false}) {
    rooms::registry reg(config());
    fill(reg, "a", 100, 0);
    fill(reg, "b", 100, 1);
    std::atomic<std::size_t> total{0};
    std::atomic<bool> stop{false};
    auto run = [&](std::uint16_t worker, const char* room) {
      std::string msg = R"({"op":"message","room":")";
      msg.append(room).append(R"(","text":"hi"})");
      const std::uint16_t home = room[0] == 'a' ? 0 : 1;
      const rooms::caller c{rooms::make_session_id(home, worker == home ? 0 : 1), worker == home ? "owner" : "u1"};
      std::size_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (!reg.handle(c, msg, now).ok) fail("message (threads)");
        ++n;
      }
      total += n;
    };
    const auto start = clock_type::now();
    std::thread t1(run, 0, "a");
    std::thread t2(run, 1, same ? "a" : "b");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop = true;
    t1.join();
    t2.join();
    const double ns = std::chrono::duration<double, std::nano>(clock_type::now() - start).count() /
                      static_cast<double>(total.load());
    std::printf("%-30s %12.0f %18s %10s\n", same ? "2 threads, one room" : "2 threads, two rooms", ns, "-", "-");
  }
  return 0;
}
