// rproxy/observe/registry.hpp: metric families with labels, and the Prometheus text exposition.
//
// At startup (control path) register each family once, bind label values once to get a cheap
// handle, and keep the handle; the data path only touches handles (metrics.hpp: one relaxed
// atomic on the worker's own cache line). A scrape (`serialize_prometheus()`, from any thread)
// renders text exposition format 0.0.4: families sorted by name, series sorted by label values.
//
//     rproxy::observe::registry reg{workers};                  // one shard per worker
//     auto& requests = reg.add_counter_family("rproxy_requests", "Requests handled.",
//                                             {"route", "code"}); // exposed as rproxy_requests_total
//     auto& ok_a = requests.with({"route_a", "200"});            // bind once (locks, allocates)
//     ok_a.inc();                                                // hot path (neither)
//     auto& latency = reg.add_histogram("rproxy_request_duration_seconds", "Request latency.",
//                                       rproxy::observe::default_buckets());
//     reg.add_callback_gauge("rproxy_pool_connections", "Open pooled connections.",
//                            [&pool] { return double(pool.size()); });  // computed at scrape
//     std::string text = reg.serialize_prometheus();
//
// Registration errors (bad names, duplicates, unsorted buckets, wrong label count) are
// programmer errors and throw std::invalid_argument. Callbacks run on the scraping thread with
// the family locked: they must be thread-safe and must not call back into the registry.
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <rproxy/observe/escape.hpp>
#include <rproxy/observe/metrics.hpp>

namespace rproxy::observe {

/// Label values of one series, in the order of the family's label names.
using label_values = std::vector<std::string>;

/// Metric name rule of the exposition format: [a-zA-Z_:][a-zA-Z0-9_:]*.
constexpr bool is_valid_metric_name(std::string_view n) noexcept {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}
/// Label name rule: [a-zA-Z_][a-zA-Z0-9_]*, and names starting with "__" are reserved.
constexpr bool is_valid_label_name(std::string_view n) noexcept {
  if (n.empty() || n.starts_with("__")) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

namespace detail {

[[noreturn]] inline void registration_error(std::string_view name, std::string_view what) {
  throw std::invalid_argument("rproxy::observe::registry: metric '" + std::string(name) + "': " + std::string(what));
}

/// What every family shares: identity, label names, the lock over its series, the header.
class family_base {
public:
  family_base(std::string name, std::string help, std::vector<std::string> label_names, std::string_view type)
      : name_(std::move(name)), help_(std::move(help)), type_(type), label_names_(std::move(label_names)) {
    if (!is_valid_metric_name(name_)) registration_error(name_, "invalid metric name");
    for (std::size_t i = 0; i < label_names_.size(); ++i) {
      if (!is_valid_label_name(label_names_[i]))
        registration_error(name_, "invalid label name '" + label_names_[i] + "'");
      for (std::size_t j = 0; j < i; ++j)
        if (label_names_[j] == label_names_[i]) registration_error(name_, "duplicate label name '" + label_names_[i] + "'");
    }
  }
  family_base(const family_base&) = delete;
  family_base& operator=(const family_base&) = delete;
  virtual ~family_base() = default;

  const std::string& name() const noexcept { return name_; }
  const std::string& help() const noexcept { return help_; }
  const std::vector<std::string>& label_names() const noexcept { return label_names_; }

  /// Appends HELP, TYPE and every series; nothing when the family has no series yet.
  virtual void write(std::string& out) const = 0;

protected:
  /// Checks the count, sanitizes UTF-8: the key a series is stored under.
  label_values key_of(std::span<const std::string_view> values) const {
    if (values.size() != label_names_.size())
      registration_error(name_, "expected " + std::to_string(label_names_.size()) + " label values, got " +
                                    std::to_string(values.size()));
    label_values key;
    key.reserve(values.size());
    for (auto v : values) key.push_back(utf8_sanitized(v));
    return key;
  }
  /// `a="x",b="y"` (escaped), rendered once per series at registration.
  std::string label_text(const label_values& key) const {
    std::string s;
    for (std::size_t i = 0; i < key.size(); ++i) {
      if (i) s.push_back(',');
      s += label_names_[i];
      s += "=\"";
      append_label_value(s, key[i]);
      s.push_back('"');
    }
    return s;
  }
  void write_header(std::string& out) const {
    out += "# HELP ";
    out += name_;
    out.push_back(' ');
    append_help_text(out, help_);
    out += "\n# TYPE ";
    out += name_;
    out.push_back(' ');
    out += type_;
    out.push_back('\n');
  }
  /// `name{labels} ` or `name ` (then the caller appends the value and a newline).
  static void write_series_start(std::string& out, std::string_view name, std::string_view suffix,
                                 std::string_view labels, std::string_view extra_label = {}) {
    out += name;
    out += suffix;
    if (!labels.empty() || !extra_label.empty()) {
      out.push_back('{');
      out += labels;
      if (!labels.empty() && !extra_label.empty()) out.push_back(',');
      out += extra_label;
      out.push_back('}');
    }
    out.push_back(' ');
  }

  std::string name_;
  std::string help_;
  std::string type_;
  std::vector<std::string> label_names_;
  mutable std::mutex mu_;
};

template <class Metric>
constexpr std::string_view type_name() {
  if constexpr (std::is_same_v<Metric, counter>) return "counter";
  else if constexpr (std::is_same_v<Metric, gauge>) return "gauge";
  else return "histogram";
}

}  // namespace detail

/// A family of counters, gauges or histograms sharing a name, a help text and label names.
/// `with(values)` binds label values (control path: locks and may allocate) and returns a
/// reference that stays valid as long as the registry.
template <class Metric>
class family final : public detail::family_base {
  static_assert(std::is_same_v<Metric, counter> || std::is_same_v<Metric, gauge> || std::is_same_v<Metric, histogram>,
                "rproxy::observe::family<M>: M must be counter, gauge or histogram");

public:
  family(std::string name, std::string help, std::vector<std::string> label_names, std::size_t shards,
         std::vector<double> bounds = {})
      : family_base(std::move(name), std::move(help), std::move(label_names), detail::type_name<Metric>()),
        shards_(shards), bounds_(std::move(bounds)) {
    if constexpr (std::is_same_v<Metric, histogram>) {
      for (const auto& l : label_names_)
        if (l == "le") detail::registration_error(name_, "a histogram cannot have a label named 'le'");
      histogram probe{1, bounds_};  // validates the bounds now, at registration
      for (double b : bounds_) {
        std::string le = "le=\"";
        append_prometheus_number(le, b);
        le.push_back('"');
        le_labels_.push_back(std::move(le));
      }
      le_labels_.push_back("le=\"+Inf\"");
    }
  }

  /// The series with these label values (created on first use), e.g. `with({"route_a", "200"})`.
  Metric& with(std::initializer_list<std::string_view> values) {
    return with(std::span<const std::string_view>(values.begin(), values.size()));
  }
  Metric& with(std::span<const std::string_view> values) {
    auto key = key_of(values);
    std::lock_guard lock(mu_);
    auto it = series_.find(key);
    if (it == series_.end()) {
      std::unique_ptr<Metric> m;
      if constexpr (std::is_same_v<Metric, histogram>) m = std::make_unique<Metric>(shards_, bounds_);
      else m = std::make_unique<Metric>(shards_);
      auto text = label_text(key);
      it = series_.emplace(std::move(key), series{std::move(text), std::move(m)}).first;
    }
    return *it->second.metric;
  }
  Metric& with(const label_values& values) {
    std::vector<std::string_view> views(values.begin(), values.end());
    return with(std::span<const std::string_view>(views));
  }

  /// Number of series bound so far.
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return series_.size();
  }

  void write(std::string& out) const override {
    std::lock_guard lock(mu_);
    if (series_.empty()) return;
    write_header(out);
    for (const auto& [key, s] : series_) {
      if constexpr (std::is_same_v<Metric, histogram>) {
        const auto snap = s.metric->collect();
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b < snap.buckets.size(); ++b) {
          cumulative += snap.buckets[b];
          write_series_start(out, name_, "_bucket", s.labels, le_labels_[b]);
          append_integer(out, cumulative);
          out.push_back('\n');
        }
        write_series_start(out, name_, "_sum", s.labels);
        append_prometheus_number(out, snap.sum);
        out.push_back('\n');
        write_series_start(out, name_, "_count", s.labels);
        append_integer(out, snap.count);
        out.push_back('\n');
      } else {
        write_series_start(out, name_, "", s.labels);
        append_integer(out, s.metric->value());
        out.push_back('\n');
      }
    }
  }

private:
  struct series {
    std::string labels;  // rendered label pairs
    std::unique_ptr<Metric> metric;
  };
  std::size_t shards_;
  std::vector<double> bounds_;
  std::vector<std::string> le_labels_;  // le="..." per bucket, then +Inf
  std::map<label_values, series> series_;
};

using counter_family = family<counter>;
using gauge_family = family<gauge>;
using histogram_family = family<histogram>;

/// A family whose values are computed at scrape time by callbacks (pool sizes, backend health,
/// counters kept as atomics elsewhere). Exposed as a gauge or a counter.
class callback_family final : public detail::family_base {
public:
  using callback = std::function<double()>;

  callback_family(std::string name, std::string help, std::vector<std::string> label_names, std::string_view type)
      : family_base(std::move(name), std::move(help), std::move(label_names), type) {}

  /// Sets (or replaces) the callback of the series with these label values.
  void with(std::initializer_list<std::string_view> values, callback fn) {
    with(std::span<const std::string_view>(values.begin(), values.size()), std::move(fn));
  }
  void with(std::span<const std::string_view> values, callback fn) {
    if (!fn) detail::registration_error(name_, "empty callback");
    auto key = key_of(values);
    auto text = label_text(key);
    std::lock_guard lock(mu_);
    series_.insert_or_assign(std::move(key), series{std::move(text), std::move(fn)});
  }
  /// Removes a series (e.g. a backend dropped by a config reload). True if it existed.
  bool erase(std::initializer_list<std::string_view> values) {
    auto key = key_of(std::span<const std::string_view>(values.begin(), values.size()));
    std::lock_guard lock(mu_);
    return series_.erase(key) > 0;
  }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    return series_.size();
  }

  void write(std::string& out) const override {
    std::lock_guard lock(mu_);
    if (series_.empty()) return;
    write_header(out);
    for (const auto& [key, s] : series_) {
      write_series_start(out, name_, "", s.labels);
      append_prometheus_number(out, s.fn());
      out.push_back('\n');
    }
  }

private:
  struct series {
    std::string labels;
    callback fn;
  };
  std::map<label_values, series> series_;
};

/// All metric families of a process. The number of shards (= worker threads) is fixed here.
class registry {
public:
  explicit registry(std::size_t shards = 1) : shards_(detail::checked_shards(shards)) {}
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  std::size_t shards() const noexcept { return shards_; }

  /// A counter family; "_total" is appended to the name unless it is already there.
  counter_family& add_counter_family(std::string name, std::string help, std::vector<std::string> label_names) {
    name = counter_name(std::move(name));
    auto f = std::make_unique<counter_family>(name, std::move(help), std::move(label_names), shards_);
    return add(std::move(f), {name});
  }
  counter& add_counter(std::string name, std::string help) {
    return add_counter_family(std::move(name), std::move(help), {}).with({});
  }

  gauge_family& add_gauge_family(std::string name, std::string help, std::vector<std::string> label_names) {
    auto f = std::make_unique<gauge_family>(name, std::move(help), std::move(label_names), shards_);
    return add(std::move(f), {name});
  }
  gauge& add_gauge(std::string name, std::string help) {
    return add_gauge_family(std::move(name), std::move(help), {}).with({});
  }

  /// A histogram family over fixed upper bounds (finite, strictly increasing; +Inf is implicit).
  histogram_family& add_histogram_family(std::string name, std::string help, std::vector<std::string> label_names,
                                         std::vector<double> bounds) {
    auto f = std::make_unique<histogram_family>(name, std::move(help), std::move(label_names), shards_,
                                                std::move(bounds));
    return add(std::move(f), {name, name + "_bucket", name + "_sum", name + "_count"});
  }
  histogram& add_histogram(std::string name, std::string help, std::vector<double> bounds) {
    return add_histogram_family(std::move(name), std::move(help), {}, std::move(bounds)).with({});
  }

  /// A gauge family whose series are callbacks run at scrape time.
  callback_family& add_callback_gauge_family(std::string name, std::string help, std::vector<std::string> label_names) {
    auto f = std::make_unique<callback_family>(name, std::move(help), std::move(label_names), "gauge");
    return add(std::move(f), {name});
  }
  void add_callback_gauge(std::string name, std::string help, callback_family::callback fn) {
    add_callback_gauge_family(std::move(name), std::move(help), {}).with({}, std::move(fn));
  }
  /// A counter family computed at scrape time (the callback must never decrease).
  callback_family& add_callback_counter_family(std::string name, std::string help,
                                               std::vector<std::string> label_names) {
    name = counter_name(std::move(name));
    auto f = std::make_unique<callback_family>(name, std::move(help), std::move(label_names), "counter");
    return add(std::move(f), {name});
  }
  void add_callback_counter(std::string name, std::string help, callback_family::callback fn) {
    add_callback_counter_family(std::move(name), std::move(help), {}).with({}, std::move(fn));
  }

  /// Appends the text exposition (format 0.0.4) of every family, sorted by name.
  void serialize_prometheus(std::string& out) const {
    std::lock_guard lock(mu_);
    for (const auto& [name, f] : families_) f->write(out);
  }
  std::string serialize_prometheus() const {
    std::string out;
    serialize_prometheus(out);
    return out;
  }

  /// Content-Type of serialize_prometheus() output, for the admin /metrics reply.
  static constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

private:
  static std::string counter_name(std::string name) {
    if (!name.ends_with("_total")) name += "_total";
    return name;
  }

  template <class F>
  F& add(std::unique_ptr<F> f, std::initializer_list<std::string> sample_names) {
    std::lock_guard lock(mu_);
    for (const auto& s : sample_names)
      if (sample_names_.contains(s)) detail::registration_error(f->name(), "name '" + s + "' is already registered");
    sample_names_.insert(sample_names.begin(), sample_names.end());
    F& ref = *f;
    families_.emplace(f->name(), std::move(f));
    return ref;
  }

  std::size_t shards_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<detail::family_base>, std::less<>> families_;
  std::set<std::string, std::less<>> sample_names_;
};

}  // namespace rproxy::observe
