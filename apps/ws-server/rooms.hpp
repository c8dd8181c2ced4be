// apps/ws-server/rooms.hpp: the rooms core moved into the library (rproxy/rooms/); this header
// keeps the old name for bench/ws_rooms until it includes <rproxy/rooms/registry.hpp>.
#pragma once

#include <rproxy/rooms/registry.hpp>

namespace ws_server = rproxy::rooms;
