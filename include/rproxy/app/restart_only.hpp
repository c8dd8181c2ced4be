// rproxy/app/restart_only.hpp: the keys of an app's config that a reload does not apply
// (listener addresses, a TLS listener added or removed, the admin endpoint, a file opened
// once...): the values of the config the process started with stay in force until a restart.
// An app's config lists them once, with their values in that config:
//
//     rproxy::app::restart_keys restart_only() const {
//       return {{"listen", listen.to_string()}, {"tls", tls ? "on" : "off"}, {"audit", app::value_text(audit)}};
//     }
//
// `validate FILE` prints that list, and every reload that changes one of them, compared with the
// config the listeners were opened from, logs one line naming the keys (app/run_main.hpp calls
// warn_restart_changes for any config that lists them):
//   restart required: these changes apply at the next start   keys="listen, tls"
#pragma once

#include <concepts>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/config/starter_config.hpp>

namespace rproxy::app {

/// One restart-only key and its value as text (empty: unset).
struct restart_key {
  std::string key;
  std::string value;
};
using restart_keys = std::vector<restart_key>;

/// A config value as the YAML `init` would write it, on one line (a block's lines joined by
/// "; "): what restart keys compare and `validate` prints. File names, never file contents.
template <class T>
std::string value_text(const T& v) {
  const auto r = config::detail::render(v, false);
  if (r.is_inline) return r.text;
  std::string out;
  for (const auto& l : r.lines) {
    const auto b = l.find_first_not_of(' ');
    if (b != std::string::npos) out.append(out.empty() ? "" : "; ").append(l, b);
  }
  return out;
}

/// A config that lists its restart-only keys.
template <class Config>
concept lists_restart_keys = requires(const Config& c) {
  { c.restart_only() } -> std::same_as<restart_keys>;
};

/// The keys whose values differ from `running` to `next`, in `next`'s order, joined by ", "
/// (a key in only one of the lists counts as changed); "" when none did.
inline std::string changed_keys(const restart_keys& running, const restart_keys& next) {
  std::string out;
  const auto note = [&out](std::string_view key) { out.append(out.empty() ? "" : ", ").append(key); };
  for (const auto& n : next) {
    const restart_key* r = nullptr;
    for (const auto& k : running)
      if (k.key == n.key) r = &k;
    if (r == nullptr || r->value != n.value) note(n.key);
  }
  for (const auto& r : running) {
    bool kept = false;
    for (const auto& n : next) kept = kept || n.key == r.key;
    if (!kept) note(r.key);
  }
  return out;
}

/// What `validate` prints after "FILE: ok": one line per key, with its value in this config.
inline void print_restart_keys(std::ostream& out, const restart_keys& keys) {
  if (keys.empty()) return;
  out << "restart-only keys (a reload keeps the values the process started with):\n";
  for (const auto& k : keys) out << "  " << k.key << ": " << (k.value.empty() ? "(unset)" : k.value) << "\n";
}

/// On each reload of `rt`, warns (one line naming the keys) when the next config's restart-only
/// keys differ from the first config's; the rest of the reload applies as usual, so the line
/// repeats on every reload until a restart.
template <class Runtime>
void warn_restart_changes(Runtime& rt) {
  rt.on_reload([&rt, first = rt.config().get()](const auto& next) {
    if (auto keys = changed_keys(first->restart_only(), next->restart_only()); !keys.empty())
      rt.log().warn("restart required: these changes apply at the next start", {{"keys", keys}});
  });
}

}  // namespace rproxy::app
