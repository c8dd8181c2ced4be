// rproxy/cluster/keys.hpp: Redis key names with a Redis Cluster hash tag.
//
// Redis Cluster puts a key in the slot of its hash tag, the text between the first '{' and the
// next '}'. Every key of one thing (a room's channel, history and members; one limiter's counter)
// gets the same tag, so one Lua script or MULTI can touch them all and the cluster can still
// spread different things over its shards:
//
//     key_of("rproxy:", "room", "lobby", "history")   // "rproxy:room{lobby}:history"
//     key_of("rproxy:", "rl", "7:request...", "")     // "rproxy:rl{7:request...}"
//
// The tag is escaped so that it is always the whole tag: '{', '}' and '%' become %7B, %7D, %25.
// The prefix (from the `redis:` block) must hold no brace (validated there): a brace in it would
// become the tag.
#pragma once

#include <string>
#include <string_view>

namespace rproxy::cluster {

/// Appends `tag` with '{', '}' and '%' percent-escaped.
inline void append_tag(std::string& out, std::string_view tag) {
  for (char c : tag) {
    switch (c) {
      case '{': out += "%7B"; break;
      case '}': out += "%7D"; break;
      case '%': out += "%25"; break;
      default: out += c;
    }
  }
}

/// prefix + kind + "{" + escaped tag + "}" (+ ":" + suffix when the suffix is not empty).
inline std::string key_of(std::string_view prefix, std::string_view kind, std::string_view tag,
                          std::string_view suffix = {}) {
  std::string k;
  k.reserve(prefix.size() + kind.size() + tag.size() + suffix.size() + 4);
  k += prefix;
  k += kind;
  k += '{';
  append_tag(k, tag);
  k += '}';
  if (!suffix.empty()) {
    k += ':';
    k += suffix;
  }
  return k;
}

/// The hash tag Redis Cluster would use for `key` (the whole key when it has none), as in the
/// cluster specification: the text between the first '{' and the next '}', if not empty.
inline std::string_view hash_tag_of(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open == std::string_view::npos) return key;
  const auto close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

/// The Redis Cluster slot of `key` (CRC16/XMODEM of its hash tag, mod 16384).
inline unsigned cluster_slot(std::string_view key) noexcept {
  std::string_view t = hash_tag_of(key);
  unsigned crc = 0;
  for (unsigned char c : t) {
    crc ^= static_cast<unsigned>(c) << 8;
    for (int i = 0; i < 8; ++i) crc = (crc & 0x8000u) ? ((crc << 1) ^ 0x1021u) : (crc << 1);
    crc &= 0xFFFFu;
  }
  return crc & 16383u;
}

}  // namespace rproxy::cluster
