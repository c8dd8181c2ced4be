// rproxy/app/restart_only.hpp: the settings of an app that a reload cannot apply (its listeners
// are the first config's), and one warning line when a reloaded config changes any of them.
//
//     rproxy::app::restart_only(rt, rproxy::app::setting("listen", [](const config& c) { return c.listen.to_string(); }),
//                               rproxy::app::setting("tls.listen", [](const config& c) { return c.tls ? c.tls->listen.to_string() : ""; }));
//
// Each setting names a key and renders it from a config (anything with ==); a reload whose
// config renders one differently from the first config logs
//   restart required: these changes apply at the next start   keys="listen, tls.listen"
// and the rest of the reload applies as usual. The comparison is with the first config, the one
// the listeners were opened from, so the line repeats on every reload until a restart.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace rproxy::app {

/// One restart-only setting: its key as the config file spells it, and how to read it.
template <class Render>
struct restart_setting {
  std::string_view key;
  Render render;
};

template <class Render>
restart_setting<Render> setting(std::string_view key, Render render) {
  return {key, std::move(render)};
}

/// The keys of `settings` that differ between configs `a` and `b`, comma separated ("" if none).
template <class Config, class... Renders>
std::string changed_keys(const Config& a, const Config& b, const restart_setting<Renders>&... settings) {
  std::string out;
  const auto note = [&](const auto& s) {
    if (!(s.render(a) == s.render(b))) out.append(out.empty() ? "" : ", ").append(s.key);
  };
  (note(settings), ...);
  return out;
}

/// On each reload of `rt`, warns (one line naming the keys) when a setting differs from the
/// first config's. The keys must outlive the runtime (string literals do).
template <class Runtime, class... Renders>
void restart_only(Runtime& rt, restart_setting<Renders>... settings) {
  rt.on_reload([&rt, first = rt.config().get(), settings...](const auto& next) {
    if (auto keys = changed_keys(*first, *next, settings...); !keys.empty())
      rt.log().warn("restart required: these changes apply at the next start", {{"keys", keys}});
  });
}

}  // namespace rproxy::app
