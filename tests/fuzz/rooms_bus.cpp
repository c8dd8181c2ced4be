// libFuzzer target for rproxy/rooms/bus_message.hpp: what another ws-server instance (or
// anything that can write to Redis) sends about a room. Any bytes: decode_bus() returns an
// event or an error, never reads out of bounds; an accepted event has the names its kind needs,
// valid by the rooms protocol's rules, a frame that is one flat JSON object with no raw
// < > & ', and encodes back to the same bytes.
#include <rproxy/rooms/bus_message.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "rooms_bus invariant broken: %s\n", what);
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view wire(reinterpret_cast<const char*>(data), size);
  rproxy::rooms::bus_limits lim;
  lim.max_bytes = 4096;
  lim.max_frame_bytes = 2048;
  lim.max_name_bytes = 16;
  auto e = rproxy::rooms::decode_bus(wire, lim);
  if (!e) return 0;
  check(wire.size() <= lim.max_bytes && e->frame.size() <= lim.max_frame_bytes, "within bounds");
  const auto shape = rproxy::rooms::detail::shape_of(e->kind);
  check(shape.room == !e->room.empty() && shape.user == !e->user.empty() && shape.by == !e->by.empty(), "names by kind");
  for (auto n : {e->room, e->user, e->by})
    check(n.empty() || !rproxy::rooms::check_name(n, lim.max_name_bytes, "name"), "valid names");
  check(e->frame.find_first_of("<>&'") == std::string_view::npos, "HTML-safe frame");
  check((e->kind == rproxy::rooms::bus_kind::message) == (e->id != 0), "message ids");
  check(rproxy::rooms::encode_bus(*e) == wire, "encodes back to the same bytes");
  return 0;
}
