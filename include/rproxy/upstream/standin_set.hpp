// rproxy/upstream/standin_set.hpp: what the HTTP/2 and HTTP/3 backends (upstream/h2_backends.hpp,
// upstream/h3_backends.hpp) have in common: per backend key (group, address and the settings
// that shape its connections), one Upstream per worker, each a stand-in listening on loopback,
// kept across reloads while the key stays. A reload stages the next set aside and commits it
// only once nothing after it can fail, so a failed reload leaves the running backends as they
// were. Upstream has `std::error_code listen()` and `void stop()`.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace rproxy::upstream {

template <class Upstream>
class standin_set {
public:
  using entry = std::vector<std::shared_ptr<Upstream>>;  ///< per worker

  /// The stand-ins of a config version, built aside: made for new keys, shared with the live
  /// set for known ones. Until commit() nothing live changes; a staged set dropped uncommitted
  /// stops only the stand-ins it made.
  class staged {
  public:
    staged() = default;
    staged(staged&& o) noexcept : next_(std::move(o.next_)), made_(std::exchange(o.made_, {})) {}
    staged& operator=(staged&&) = delete;
    ~staged() {
      for (auto& up : made_) up->stop();
    }

  private:
    friend class standin_set;
    std::map<std::string, entry> next_;
    std::vector<std::shared_ptr<Upstream>> made_;  ///< stopped unless committed
  };

  /// What get() found for a key.
  struct found {
    const entry* standins = nullptr;  ///< null: a new stand-in could not listen (`error`)
    bool kept = false;                ///< shared with the live set
    std::error_code error;
  };

  /// The stand-ins of `key` in `s`: the live set's, or new ones, make(i) for each worker i, each
  /// listening (those made stop with `s` unless it is committed).
  template <class Make>
  found get(staged& s, const std::string& key, std::size_t workers, Make make) {
    auto& e = s.next_[key];
    if (auto it = live_.find(key); it != live_.end()) {
      e = it->second;  // shared: the live set keeps it until commit
      return {&e, true, {}};
    }
    if (e.empty()) {
      for (std::size_t i = 0; i < workers; ++i) {
        std::shared_ptr<Upstream> up = make(i);
        s.made_.push_back(up);
        if (auto ec = up->listen()) return {nullptr, false, ec};
        e.push_back(std::move(up));
      }
    }
    return {&e, false, {}};
  }

  /// Makes a staged set the live one: the stand-ins of keys gone from it stop.
  void commit(staged& s) {
    for (auto& [key, e] : live_)
      if (!s.next_.contains(key))
        for (auto& up : e) up->stop();
    live_ = std::move(s.next_);
    s.made_.clear();
  }

  void stop() {
    for (auto& [key, e] : live_)
      for (auto& up : e) up->stop();
  }

private:
  std::map<std::string, entry> live_;
};

}  // namespace rproxy::upstream
