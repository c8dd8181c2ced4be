// rproxy/health/checker.hpp: active health checking of every backend of a pool.
//
//     auto pool = std::make_shared<rproxy::balance::pool>();
//     rproxy::health::checker<rproxy::health::http_probe> hc(
//         ex, pool, rproxy::health::http_probe{.path = "/healthz"},
//         {.interval = 5s, .timeout = 2s, .jitter = 0.1, .rise = 2, .fall = 3});
//     hc.on_change([](std::string_view id, bool up, const rproxy::health::probe_result& r) {
//       log(id, up, r.error.message());
//     });
//     hc.start();
//     ...
//     hc.stop();   // cancels the timer and the probes in flight; then the checker may go
//
// Every round (the first at start(), then every `interval`, each one moved by up to
// +/- `jitter` x interval at random so that many proxies do not probe in step) probes each
// backend of the pool's current snapshot, so backends added by pool.update() are probed from
// the next round and removed ones are forgotten. A backend still being probed is skipped.
// `fall` failures in a row mark a healthy backend down, `rise` successes in a row bring it back;
// on each change the checker calls `pool->set_health(id, healthy)` (balancers skip it at once)
// and the on_change callback. A successful probe's latency feeds the backend's latency EWMA
// (p2c_ewma) when the pool's backends have observe_latency(). A checker starts from the pool's
// view of each backend (`probe_healthy()` when the backend has it, else healthy), so a checker
// made anew on a config reload does not lose a down verdict.
//
// The probe type is a template parameter (any `health::probe`): tcp_probe, http_probe, or an
// app's own. The pool type needs snapshot() (backends with id() and address()) and
// set_health(id, bool); its address must convert to a tcp endpoint (or have .endpoint()).
//
// Threads: the checker's work runs on a strand of `ex`; on_change is called there.
// start(), stop(), on_change() and healthy() may be called from any thread. Once stop() has
// returned, no on_change call and no set_health() from this checker is running or will run
// (stop() waits for one in progress on another thread; called from within on_change it does
// not wait). Destroying the checker stops it; its shared state lives on until the cancelled
// probes have unwound on the executor.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/bind_executor.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/co_spawn.hpp>
#include <asio/dispatch.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/stage.hpp>
#include <rproxy/health/check_options.hpp>
#include <rproxy/health/error.hpp>
#include <rproxy/health/probe.hpp>

namespace rproxy::health {

/// An interval moved by up to +/- `jitter` (clamped to 0..1) of itself; `random` is any 64-bit
/// random value. Never less than 1 ms.
inline std::chrono::milliseconds jittered_interval(std::chrono::milliseconds interval, double jitter,
                                                   std::uint64_t random) noexcept {
  const double j = std::clamp(jitter, 0.0, 1.0);
  const double u = static_cast<double>(random >> 11) * 0x1.0p-53;  // [0, 1)
  const double ms = static_cast<double>(interval.count()) * (1.0 + j * (2.0 * u - 1.0));
  return std::chrono::milliseconds{std::max<std::int64_t>(1, static_cast<std::int64_t>(ms))};
}

/// The rise/fall state machine of one backend (the checker keeps one per backend).
class health_threshold {
public:
  explicit health_threshold(bool healthy = true) noexcept : healthy_(healthy) {}

  /// Counts one result; returns true when it changes the verdict.
  bool record(bool ok, unsigned rise, unsigned fall) noexcept {
    if (ok) {
      fails_ = 0;
      if (healthy_) return false;
      if (++oks_ < std::max(1u, rise)) return false;
      oks_ = 0;
      healthy_ = true;
      return true;
    }
    oks_ = 0;
    if (!healthy_) return false;
    if (++fails_ < std::max(1u, fall)) return false;
    fails_ = 0;
    healthy_ = false;
    return true;
  }

  bool healthy() const noexcept { return healthy_; }
  unsigned successes_in_a_row() const noexcept { return oks_; }
  unsigned failures_in_a_row() const noexcept { return fails_; }

private:
  bool healthy_;
  unsigned oks_ = 0;   // while down
  unsigned fails_ = 0; // while up
};

template <probe Probe, class Pool = balance::pool>
class checker {
public:
  using probe_type = Probe;
  using pool_type = Pool;
  using change_fn = std::function<void(std::string_view backend_id, bool healthy, const probe_result&)>;

  checker(asio::any_io_executor ex, std::shared_ptr<Pool> pool, Probe probe, check_options o)
      : impl_(std::make_shared<impl>(std::move(ex), std::move(pool), std::move(probe), o)) {}

  checker(const checker&) = delete;
  checker& operator=(const checker&) = delete;
  ~checker() { stop(); }

  /// Starts the rounds (the first one at once). Once only; no effect after stop().
  void start() {
    if (impl_->started.exchange(true) || impl_->stopped.load()) return;
    asio::dispatch(impl_->strand, [self = impl_] { self->round(); });
  }

  /// Cancels the timer and the probes in flight. Idempotent.
  void stop() {
    if (impl_->stopped.exchange(true)) return;
    { std::lock_guard vl(impl_->verdict_mu); }  // a verdict being applied on another thread ends first
    asio::dispatch(impl_->strand, [self = impl_] { self->cancel_all(); });
  }

  /// Called on each change of a backend's verdict (on the checker's strand).
  void on_change(change_fn f) {
    std::lock_guard lk(impl_->mu);
    impl_->on_change = std::move(f);
  }

  /// The checker's verdict for a backend; false for an id it has not seen in a round.
  bool healthy(std::string_view backend_id) const {
    std::lock_guard lk(impl_->mu);
    auto it = impl_->targets.find(backend_id);
    return it != impl_->targets.end() && it->second.state.healthy();
  }

  /// The last result for a backend, if any.
  std::optional<probe_result> last_result(std::string_view backend_id) const {
    std::lock_guard lk(impl_->mu);
    auto it = impl_->targets.find(backend_id);
    if (it == impl_->targets.end() || !it->second.last) return std::nullopt;
    return it->second.last;
  }

  const check_options& options() const noexcept { return impl_->opt; }

private:
  using backend_ptr = std::remove_cvref_t<decltype(std::declval<Pool&>().snapshot()->backends[0])>;
  using backend_type = typename backend_ptr::element_type;

  /// Cancels one probe: by stop(), by its backend leaving, or by its guard timer.
  struct probe_cancel {
    asio::cancellation_signal signal;
    bool overran = false;
  };

  struct target {
    asio::ip::tcp::endpoint endpoint;
    std::weak_ptr<backend_type> backend;
    health_threshold state;
    std::uint64_t generation = 0;            ///< tells a result from an older backend of this id apart
    std::uint64_t round = 0;                 ///< last round that saw it in the pool
    std::shared_ptr<probe_cancel> in_flight; ///< set while a probe runs
    std::optional<probe_result> last;
  };

  static bool initial_health(const backend_type& b) {
    if constexpr (requires { b.probe_healthy(); }) return b.probe_healthy();
    else return true;
  }

  struct impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor ex, std::shared_ptr<Pool> p, Probe pr, check_options o)
        : strand(asio::make_strand(ex)), timer(strand), pool(std::move(p)), probe(std::move(pr)), opt(o),
          rng(std::random_device{}() ^ (static_cast<std::uint64_t>(std::random_device{}()) << 32)) {
      if (opt.interval.count() < 1) opt.interval = std::chrono::milliseconds(1);
      if (opt.timeout.count() < 1) opt.timeout = std::chrono::milliseconds(1);
    }

    asio::strand<asio::any_io_executor> strand;
    asio::steady_timer timer;  // strand only
    std::shared_ptr<Pool> pool;
    Probe probe;
    check_options opt;
    std::atomic<bool> started{false};
    std::atomic<bool> stopped{false};
    mutable std::mutex mu;  // targets, on_change (targets are written on the strand only)
    std::map<std::string, target, std::less<>> targets;
    change_fn on_change;
    std::recursive_mutex verdict_mu;  // held while a verdict is applied; stop() waits for it
    std::uint64_t rounds = 0;           // strand only
    std::uint64_t next_generation = 1;  // strand only
    std::uint64_t rng;                  // strand only

    std::uint64_t next_random() noexcept {  // splitmix64
      std::uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      return z ^ (z >> 31);
    }

    void round() {
      if (stopped.load()) return;
      const std::uint64_t this_round = ++rounds;
      auto snap = pool->snapshot();
      struct launch {
        std::string id;
        asio::ip::tcp::endpoint endpoint;
        std::uint64_t generation;
        std::shared_ptr<probe_cancel> cancel;
      };
      std::vector<launch> launches;
      std::vector<std::shared_ptr<probe_cancel>> orphans;  // probes of backends that left
      {
        std::lock_guard lk(mu);
        for (const auto& b : snap->backends) {
          const auto ep = balance::detail::endpoint_of(b->address());
          auto it = targets.find(b->id());
          if (it == targets.end() || it->second.backend.lock() != b || it->second.endpoint != ep) {
            if (it != targets.end() && it->second.in_flight) orphans.push_back(it->second.in_flight);
            target t;
            t.endpoint = ep;
            t.backend = b;
            t.state = health_threshold(initial_health(*b));
            t.generation = next_generation++;
            it = targets.insert_or_assign(b->id(), std::move(t)).first;
          }
          auto& t = it->second;
          t.round = this_round;
          if (t.in_flight) continue;  // still probing from an earlier round
          t.in_flight = std::make_shared<probe_cancel>();
          launches.push_back({it->first, ep, t.generation, t.in_flight});
        }
        std::erase_if(targets, [&](const auto& kv) {
          if (kv.second.round == this_round) return false;
          if (kv.second.in_flight) orphans.push_back(kv.second.in_flight);
          return true;
        });
      }
      for (auto& o : orphans) o->signal.emit(asio::cancellation_type::terminal);
      for (auto& l : launches) {
        auto c = l.cancel;
        asio::co_spawn(strand, run_probe(this->shared_from_this(), std::move(l.id), l.endpoint, l.generation, c),
                       asio::bind_cancellation_slot(c->signal.slot(), [c](std::exception_ptr) {}));
      }
      timer.expires_after(jittered_interval(opt.interval, opt.jitter, next_random()));
      timer.async_wait([self = this->shared_from_this()](std::error_code ec) {
        if (!ec) self->round();
      });
    }

    void cancel_all() {
      timer.cancel();
      std::vector<std::shared_ptr<probe_cancel>> running;
      {
        std::lock_guard lk(mu);
        for (auto& [id, t] : targets)
          if (t.in_flight) running.push_back(t.in_flight);
      }
      for (auto& c : running) c->signal.emit(asio::cancellation_type::terminal);
    }

    static asio::awaitable<void> run_probe(std::shared_ptr<impl> self, std::string id, asio::ip::tcp::endpoint ep,
                                           std::uint64_t generation, std::shared_ptr<probe_cancel> cancel) {
      // A probe that overruns its timeout is cancelled a little later.
      asio::steady_timer guard(self->strand);
      guard.expires_after(self->opt.timeout + std::max<std::chrono::milliseconds>(std::chrono::milliseconds(100),
                                                                                   self->opt.timeout / 4));
      guard.async_wait([cancel](std::error_code ec) {
        if (ec) return;
        cancel->overran = true;
        cancel->signal.emit(asio::cancellation_type::terminal);
      });
      probe_result r;
      try {
        r = co_await self->probe.check(self->strand, ep, self->opt.timeout);
      } catch (const std::system_error& e) {
        r.error = e.code();
      } catch (...) {
        r.error = make_error_code(error::probe_failed);
      }
      if (cancel->overran) {
        r.error = make_error_code(error::probe_timeout);
        r.detail = "the probe overran its timeout";
      }
      guard.cancel();
      self->record(id, generation, std::move(r));
    }

    void record(const std::string& id, std::uint64_t generation, probe_result r) {
      if (stopped.load()) return;
      bool changed = false, up = false;
      std::shared_ptr<backend_type> b;
      change_fn cb;
      {
        std::lock_guard lk(mu);
        auto it = targets.find(id);
        if (it == targets.end() || it->second.generation != generation) return;  // backend left
        auto& t = it->second;
        t.in_flight.reset();
        t.last = r;
        changed = t.state.record(!r.error, opt.rise, opt.fall);
        up = t.state.healthy();
        b = t.backend.lock();
        if (changed) cb = on_change;
      }
      if (!r.error && b) {
        if constexpr (requires { b->observe_latency(r.latency); }) b->observe_latency(r.latency);
      }
      if (!changed) return;
      std::lock_guard vl(verdict_mu);
      if (stopped.load()) return;
      pool->set_health(id, up);
      if (cb) cb(id, up, r);
    }
  };

  std::shared_ptr<impl> impl_;
};

}  // namespace rproxy::health
