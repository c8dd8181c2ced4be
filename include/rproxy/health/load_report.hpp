// rproxy/health/load_report.hpp: dynamic weights from load reports that backends publish.
//
//     rproxy::health::load_report_poller poller(ex, pool, {.path = "/metric", .interval = 5s});
//     poller.on_report([](std::string_view id, const std::error_code& ec, std::uint32_t w) {
//       if (ec) log("bad load report", id, ec.message()); else log("weight", id, w);
//     });
//     poller.start();  ...  poller.stop();
//
// Every round (every `interval`, +/- `jitter`) the poller sends `GET path` to each backend of
// the pool's current snapshot (at the backend's address, or on `port` when set) and, on a good
// report, calls pool->set_weight(id, w): the next pick sees the new weight.
//
// The report (docs/balancing.md, "Dynamic weights"): status 200, a body of at most
// `max_body` bytes (4 KiB), one of
//   - a bare JSON number, or {"weight": N}: the weight itself, a number 0..max_weight (10000),
//     rounded to an integer; 0 puts the backend on standby (no new flows);
//   - {"load": X}: the backend's utilisation, 0 (idle) .. 1 (full; more counts as 1): the
//     weight becomes max(1, round(base x 100 x (1 - X))), where base is the configured weight
//     (a base of 0, standby, stays 0).
// Other members of the object are ignored; an object with both or neither of weight and load
// is malformed. A malformed report, another status, a reply over the bound, a timeout or a
// refused connection leave the weight unchanged and are counted (stats()).
//
// The base weight (what the load form scales) is `base_weight(id)` when that option is set (an
// app passes its configured weights, so a reload may keep the reported weights in the pool);
// otherwise the backend's weight when the poller first sees it, and again whenever something
// else (a config reload, the admin API) set a weight other than the poller's last.
//
// Threads, stop() and destruction as for health::checker: work on a strand of `ex`, on_report
// called there, nothing called after stop() returns.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/dispatch.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
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
#include <rproxy/core/json.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/health/checker.hpp>
#include <rproxy/health/detail/http_get.hpp>
#include <rproxy/health/error.hpp>

namespace rproxy::health {

/// What a backend reported.
struct load_report {
  enum class kind { weight, load };
  kind what = kind::weight;
  double value = 0;  ///< the weight (0..max_weight) or the load (0..1, clamped)
};

inline constexpr std::uint32_t max_reported_weight = 10000;

/// Parses a report body (see the top of this file). Whitespace around it is allowed.
inline result<load_report> parse_load_report(std::string_view body, std::uint32_t max_weight = max_reported_weight) {
  const auto bad = [] { return failure(make_error_code(error::bad_load_report)); };
  auto doc = json::parse(body, json::limits{.max_bytes = 4096, .max_depth = 4, .max_nodes = 64});
  if (!doc) return bad();
  auto root = doc->root();
  std::optional<json::value> v;
  load_report r;
  if (root.is_number()) {
    v = root;
  } else if (root.is_object()) {
    auto w = root.find("weight");
    auto l = root.find("load");
    if (w.has_value() == l.has_value()) return bad();
    v = w ? w : l;
    if (l) r.what = load_report::kind::load;
  } else {
    return bad();
  }
  if (!v->is_number() || !std::isfinite(v->as_number()) || v->as_number() < 0) return bad();
  r.value = v->as_number();
  if (r.what == load_report::kind::weight && r.value > max_weight) return bad();
  if (r.what == load_report::kind::load) r.value = std::min(r.value, 1.0);
  return r;
}

/// The weight a report asks for, given the backend's base (configured) weight.
inline std::uint32_t weight_for(const load_report& r, std::uint32_t base) noexcept {
  if (r.what == load_report::kind::weight) return static_cast<std::uint32_t>(std::lround(r.value));
  if (base == 0) return 0;  // configured standby stays standby
  const double w = static_cast<double>(base) * 100.0 * (1.0 - r.value);
  return static_cast<std::uint32_t>(std::max<long>(1, std::lround(w)));
}

struct load_report_options {
  std::string path = "/metric";
  std::uint16_t port = 0;                    ///< 0: the backend's own port
  std::string host{};                        ///< Host field; empty: address:port
  std::chrono::milliseconds interval{5000};
  std::chrono::milliseconds timeout{2000};
  double jitter = 0.1;
  std::size_t max_body = 4096;               ///< bound of the reply body (the head adds 4 KiB)
  std::uint32_t max_weight = max_reported_weight;
  /// The configured weight of a backend, the base of the load form (unset: see above).
  std::function<std::optional<std::uint32_t>(std::string_view backend_id)> base_weight{};
};

/// Counts of report outcomes.
struct load_report_stats {
  std::uint64_t ok = 0;           ///< good reports (weight applied)
  std::uint64_t bad = 0;          ///< answered, but not a valid report (status, body, size)
  std::uint64_t unreachable = 0;  ///< refused, timed out, reset
};

template <class Pool = balance::pool>
class load_report_poller {
public:
  using report_fn = std::function<void(std::string_view backend_id, const std::error_code&, std::uint32_t weight)>;

  load_report_poller(asio::any_io_executor ex, std::shared_ptr<Pool> pool, load_report_options o)
      : impl_(std::make_shared<impl>(std::move(ex), std::move(pool), std::move(o))) {}
  load_report_poller(const load_report_poller&) = delete;
  load_report_poller& operator=(const load_report_poller&) = delete;
  ~load_report_poller() { stop(); }

  void start() {
    if (impl_->started.exchange(true) || impl_->stopped.load()) return;
    asio::dispatch(impl_->strand, [self = impl_] { self->round(); });
  }
  void stop() {
    if (impl_->stopped.exchange(true)) return;
    { std::lock_guard vl(impl_->apply_mu); }
    asio::dispatch(impl_->strand, [self = impl_] { self->cancel_all(); });
  }

  /// Called when a backend's reports turn bad (ec set, weight unchanged), turn good again, or
  /// change its weight (ec empty): once per change, not once per poll.
  void on_report(report_fn f) {
    std::lock_guard lk(impl_->mu);
    impl_->on_report = std::move(f);
  }

  /// Totals over all backends since start.
  load_report_stats stats() const {
    std::lock_guard lk(impl_->mu);
    return impl_->totals;
  }
  /// The weight last applied to a backend from its report, if any.
  std::optional<std::uint32_t> reported_weight(std::string_view id) const {
    std::lock_guard lk(impl_->mu);
    auto it = impl_->targets.find(id);
    if (it == impl_->targets.end()) return std::nullopt;
    return it->second.applied;
  }

  const load_report_options& options() const noexcept { return impl_->opt; }

private:
  using backend_ptr = std::remove_cvref_t<decltype(std::declval<Pool&>().snapshot()->backends[0])>;
  using backend_type = typename backend_ptr::element_type;

  struct target {
    std::weak_ptr<backend_type> backend;
    std::uint64_t generation = 0;
    std::uint64_t round = 0;
    std::uint32_t base = 1;                    ///< configured weight the load form scales
    std::optional<std::uint32_t> applied;      ///< last weight this poller set
    std::error_code last_error;                ///< of the last poll (empty: good)
    bool polled = false;
    std::shared_ptr<asio::cancellation_signal> in_flight;
  };

  struct impl : std::enable_shared_from_this<impl> {
    impl(asio::any_io_executor ex, std::shared_ptr<Pool> p, load_report_options o)
        : strand(asio::make_strand(ex)), timer(strand), pool(std::move(p)), opt(std::move(o)),
          rng(std::random_device{}() ^ (static_cast<std::uint64_t>(std::random_device{}()) << 32)) {
      if (opt.interval.count() < 1) opt.interval = std::chrono::milliseconds(1);
      if (opt.timeout.count() < 1) opt.timeout = std::chrono::milliseconds(1);
    }

    asio::strand<asio::any_io_executor> strand;
    asio::steady_timer timer;
    std::shared_ptr<Pool> pool;
    load_report_options opt;
    std::atomic<bool> started{false}, stopped{false};
    mutable std::mutex mu;  // targets, totals, on_report
    std::map<std::string, target, std::less<>> targets;
    load_report_stats totals;
    report_fn on_report;
    std::recursive_mutex apply_mu;
    std::uint64_t rounds = 0, next_generation = 1, rng;

    void round() {
      if (stopped.load()) return;
      const auto this_round = ++rounds;
      auto snap = pool->snapshot();
      struct launch {
        std::string id;
        asio::ip::tcp::endpoint ep;
        std::uint64_t generation;
        std::shared_ptr<asio::cancellation_signal> cancel;
      };
      std::vector<launch> launches;
      std::vector<std::shared_ptr<asio::cancellation_signal>> orphans;
      {
        std::lock_guard lk(mu);
        for (const auto& b : snap->backends) {
          auto it = targets.find(b->id());
          if (it == targets.end() || it->second.backend.lock() != b) {
            if (it != targets.end() && it->second.in_flight) orphans.push_back(it->second.in_flight);
            target t;
            t.backend = b;
            t.base = b->weight();
            t.generation = next_generation++;
            it = targets.insert_or_assign(b->id(), std::move(t)).first;
          }
          auto& t = it->second;
          t.round = this_round;
          if (t.in_flight) continue;
          auto ep = balance::detail::endpoint_of(b->address());
          if (opt.port != 0) ep.port(opt.port);
          t.in_flight = std::make_shared<asio::cancellation_signal>();
          launches.push_back({it->first, ep, t.generation, t.in_flight});
        }
        std::erase_if(targets, [&](const auto& kv) {
          if (kv.second.round == this_round) return false;
          if (kv.second.in_flight) orphans.push_back(kv.second.in_flight);
          return true;
        });
      }
      for (auto& o : orphans) o->emit(asio::cancellation_type::terminal);
      for (auto& l : launches) {
        auto c = l.cancel;
        asio::co_spawn(strand, poll(this->shared_from_this(), std::move(l.id), l.ep, l.generation),
                       asio::bind_cancellation_slot(c->slot(), [c](std::exception_ptr) {}));
      }
      std::uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      timer.expires_after(jittered_interval(opt.interval, opt.jitter, z ^ (z >> 31)));
      timer.async_wait([self = this->shared_from_this()](std::error_code ec) {
        if (!ec) self->round();
      });
    }

    void cancel_all() {
      timer.cancel();
      std::vector<std::shared_ptr<asio::cancellation_signal>> running;
      {
        std::lock_guard lk(mu);
        for (auto& [id, t] : targets)
          if (t.in_flight) running.push_back(t.in_flight);
      }
      for (auto& c : running) c->emit(asio::cancellation_type::terminal);
    }

    static asio::awaitable<void> poll(std::shared_ptr<impl> self, std::string id, asio::ip::tcp::endpoint ep,
                                      std::uint64_t generation) {
      detail::http_get_result g;
      try {
        g = co_await detail::http_get(self->strand, ep, self->opt.host, self->opt.path, self->opt.timeout,
                                      self->opt.max_body + 4096);
      } catch (const std::system_error& e) {
        g.error = e.code();
      } catch (...) {
        g.error = make_error_code(error::probe_failed);
      }
      self->apply(id, generation, g);
    }

    void apply(const std::string& id, std::uint64_t generation, const detail::http_get_result& g) {
      if (stopped.load()) return;
      std::error_code ec = g.error;
      std::optional<load_report> report;
      const bool answered = !ec;
      if (!ec && g.status != 200) ec = make_error_code(error::bad_status);
      if (!ec && g.body.size() > opt.max_body) ec = make_error_code(error::response_too_large);
      if (!ec) {
        auto r = parse_load_report(g.body, opt.max_weight);
        if (r) report = *r;
        else ec = r.error();
      }

      std::optional<std::uint32_t> base;
      if (report && opt.base_weight) base = opt.base_weight(id);
      std::shared_ptr<backend_type> b;
      std::uint32_t weight = 0;
      bool notify = false;
      report_fn cb;
      {
        std::lock_guard lk(mu);
        auto it = targets.find(id);
        if (it == targets.end() || it->second.generation != generation) return;
        auto& t = it->second;
        t.in_flight.reset();
        b = t.backend.lock();
        if (!b) return;
        if (ec) {
          ++(answered ? totals.bad : totals.unreachable);
          notify = !t.polled || t.last_error != ec;
          weight = b->weight();
        } else {
          ++totals.ok;
          const auto current = b->weight();
          if (base) t.base = *base;
          else if (!opt.base_weight && (!t.applied || current != *t.applied)) t.base = current;  // someone else set it
          weight = weight_for(*report, t.base);
          notify = !t.polled || t.last_error || !t.applied || *t.applied != weight;
          t.applied = weight;
        }
        t.last_error = ec;
        t.polled = true;
        if (notify) cb = on_report;
      }
      std::lock_guard al(apply_mu);
      if (stopped.load()) return;
      if (!ec && b->weight() != weight) pool->set_weight(id, weight);
      if (notify && cb) cb(id, ec, weight);
    }
  };

  std::shared_ptr<impl> impl_;
};

}  // namespace rproxy::health
