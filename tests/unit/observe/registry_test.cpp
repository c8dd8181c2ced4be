#include <rproxy/observe/registry.hpp>
#include <rproxy/observe/worker_index.hpp>

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace obs = rproxy::observe;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct promtool_result {
  bool present = false;
  int exit_code = -1;
  std::string output;
};

// Writes `text` to a temp file and runs `promtool check metrics < file`.
promtool_result promtool_check(const std::string& text) {
  promtool_result r;
  if (std::system("command -v promtool >/dev/null 2>&1") != 0) return r;
  r.present = true;
  char in_path[] = "/tmp/rproxy_observe_metrics_XXXXXX";
  const int fd = ::mkstemp(in_path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  const std::string out_path = std::string(in_path) + ".out";
  const std::string cmd = "promtool check metrics < " + std::string(in_path) + " > " + out_path + " 2>&1";
  const int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.output = read_file(out_path);
  std::remove(in_path);
  std::remove(out_path.c_str());
  return r;
}

}  // namespace

TEST_CASE("registry: exposition text is exact for a small registry", "[observe]") {
  obs::registry reg{2};
  auto& requests = reg.add_counter_family("rproxy_requests", "Requests handled.", {"route", "code"});
  requests.with({"b", "200"}).inc(2);
  requests.with({"a", "500"}).inc();
  reg.add_gauge("rproxy_open_connections", "Open client connections.").add(3);
  auto& latency = reg.add_histogram_family("rproxy_request_duration_seconds", "Request latency.", {"route"},
                                           {0.1, 0.5, 1});
  auto& lat_a = latency.with({"a"});
  for (double v : {0.0625, 0.5, 2.0}) lat_a.observe(v);
  reg.add_callback_gauge("rproxy_pool_idle", "Idle pooled connections.", [] { return 2.5; });
  reg.add_counter_family("rproxy_unused", "No series yet: not exposed.", {"x"});

  CHECK(reg.serialize_prometheus() ==
        "# HELP rproxy_open_connections Open client connections.\n"
        "# TYPE rproxy_open_connections gauge\n"
        "rproxy_open_connections 3\n"
        "# HELP rproxy_pool_idle Idle pooled connections.\n"
        "# TYPE rproxy_pool_idle gauge\n"
        "rproxy_pool_idle 2.5\n"
        "# HELP rproxy_request_duration_seconds Request latency.\n"
        "# TYPE rproxy_request_duration_seconds histogram\n"
        "rproxy_request_duration_seconds_bucket{route=\"a\",le=\"0.1\"} 1\n"
        "rproxy_request_duration_seconds_bucket{route=\"a\",le=\"0.5\"} 2\n"
        "rproxy_request_duration_seconds_bucket{route=\"a\",le=\"1\"} 2\n"
        "rproxy_request_duration_seconds_bucket{route=\"a\",le=\"+Inf\"} 3\n"
        "rproxy_request_duration_seconds_sum{route=\"a\"} 2.5625\n"
        "rproxy_request_duration_seconds_count{route=\"a\"} 3\n"
        "# HELP rproxy_requests_total Requests handled.\n"
        "# TYPE rproxy_requests_total counter\n"
        "rproxy_requests_total{route=\"a\",code=\"500\"} 1\n"
        "rproxy_requests_total{route=\"b\",code=\"200\"} 2\n");
}

TEST_CASE("registry: labels bind once to a stable handle", "[observe]") {
  obs::registry reg{4};
  auto& fam = reg.add_counter_family("rproxy_bytes", "Bytes relayed.", {"route", "direction"});
  auto& a = fam.with({"route_a", "in"});
  auto& b = fam.with({"route_a", "out"});
  CHECK(&a == &fam.with({"route_a", "in"}));
  CHECK(&a != &b);
  CHECK(&a == &fam.with(obs::label_values{"route_a", "in"}));
  CHECK(fam.size() == 2);

  std::vector<std::thread> ts;
  for (std::size_t i = 0; i < 4; ++i)
    ts.emplace_back([&, i] {
      obs::set_worker_index(i);
      for (int k = 0; k < 1000; ++k) {
        a.inc();
        b.inc(2);
      }
    });
  for (auto& t : ts) t.join();
  CHECK(a.value() == 4000);
  CHECK(b.value() == 8000);
  const auto text = reg.serialize_prometheus();
  CHECK(text.find("rproxy_bytes_total{route=\"route_a\",direction=\"in\"} 4000\n") != std::string::npos);
  CHECK(text.find("rproxy_bytes_total{route=\"route_a\",direction=\"out\"} 8000\n") != std::string::npos);

  CHECK_THROWS_AS(fam.with({"only_one"}), std::invalid_argument);
  CHECK_THROWS_AS(fam.with({"a", "b", "c"}), std::invalid_argument);
}

TEST_CASE("registry: label values and help are escaped", "[observe]") {
  obs::registry reg;
  auto& fam = reg.add_gauge_family("rproxy_escape", "Help with \\ and\nnewline.", {"v"});
  fam.with({"quote\" back\\slash new\nline"}).set(1);
  fam.with({"bad \xff utf8"}).set(2);
  fam.with({"caf\xc3\xa9"}).set(3);
  const auto text = reg.serialize_prometheus();
  CHECK(text ==
        "# HELP rproxy_escape Help with \\\\ and\\nnewline.\n"
        "# TYPE rproxy_escape gauge\n"
        "rproxy_escape{v=\"bad \xef\xbf\xbd utf8\"} 2\n"
        "rproxy_escape{v=\"caf\xc3\xa9\"} 3\n"
        "rproxy_escape{v=\"quote\\\" back\\\\slash new\\nline\"} 1\n");
}

TEST_CASE("registry: counters are named *_total", "[observe]") {
  obs::registry reg;
  reg.add_counter("rproxy_a", "A.").inc();
  reg.add_counter("rproxy_b_total", "B.").inc(2);
  const auto text = reg.serialize_prometheus();
  CHECK(text.find("# TYPE rproxy_a_total counter\nrproxy_a_total 1\n") != std::string::npos);
  CHECK(text.find("# TYPE rproxy_b_total counter\nrproxy_b_total 2\n") != std::string::npos);
  CHECK(text.find("rproxy_b_total_total") == std::string::npos);
}

TEST_CASE("registry: registration mistakes throw", "[observe]") {
  obs::registry reg;
  reg.add_counter("rproxy_x", "X.");
  CHECK_THROWS_AS(reg.add_counter("rproxy_x_total", "dup"), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_gauge("rproxy_x_total", "dup across kinds"), std::invalid_argument);
  reg.add_histogram("rproxy_h", "H.", {1});
  CHECK_THROWS_AS(reg.add_gauge("rproxy_h_count", "clashes with a histogram series"), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_gauge("rproxy_h", "clashes with the histogram"), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_gauge("1bad", "digit first"), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_gauge("bad-name", "dash"), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_gauge_family("rproxy_l1", "L.", {"__reserved"}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_gauge_family("rproxy_l2", "L.", {"a", "a"}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_gauge_family("rproxy_l3", "L.", {"a:b"}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_histogram_family("rproxy_h2", "H.", {"le"}, {1}), std::invalid_argument);
  CHECK_THROWS_AS(reg.add_histogram("rproxy_h3", "H.", {2, 1}), std::invalid_argument);
  CHECK_THROWS_AS(obs::registry{0}, std::invalid_argument);
  // A failed registration reserves nothing.
  CHECK_NOTHROW(reg.add_histogram("rproxy_h3", "H.", {1, 2}));
  CHECK(obs::is_valid_metric_name("rproxy:ratio_5m"));
  CHECK_FALSE(obs::is_valid_label_name("rproxy:x"));
}

TEST_CASE("registry: callback gauges and counters are computed at scrape", "[observe]") {
  obs::registry reg;
  std::atomic<int> open{0};
  reg.add_callback_gauge("rproxy_pool_open", "Open pooled connections.", [&] { return double(open.load()); });
  auto& health = reg.add_callback_gauge_family("rproxy_backend_up", "1 if the backend is healthy.", {"backend"});
  health.with({"10.0.0.1:80"}, [] { return 1.0; });
  health.with({"10.0.0.2:80"}, [] { return 0.0; });
  std::atomic<std::uint64_t> selections{0};
  reg.add_callback_counter("rproxy_backend_selections", "Backend picks.", [&] { return double(selections.load()); });
  reg.add_callback_gauge("rproxy_weird", "Non-finite values.", [] { return std::numeric_limits<double>::infinity(); });

  open = 5;
  selections = 12;
  auto text = reg.serialize_prometheus();
  CHECK(text.find("rproxy_pool_open 5\n") != std::string::npos);
  CHECK(text.find("rproxy_backend_up{backend=\"10.0.0.1:80\"} 1\nrproxy_backend_up{backend=\"10.0.0.2:80\"} 0\n") !=
        std::string::npos);
  CHECK(text.find("# TYPE rproxy_backend_selections_total counter\nrproxy_backend_selections_total 12\n") !=
        std::string::npos);
  CHECK(text.find("rproxy_weird +Inf\n") != std::string::npos);

  open = 2;
  CHECK(reg.serialize_prometheus().find("rproxy_pool_open 2\n") != std::string::npos);

  health.with({"10.0.0.1:80"}, [] { return 0.0; });  // replaced
  CHECK(health.erase({"10.0.0.2:80"}));
  CHECK_FALSE(health.erase({"10.0.0.2:80"}));
  text = reg.serialize_prometheus();
  CHECK(text.find("rproxy_backend_up{backend=\"10.0.0.1:80\"} 0\n") != std::string::npos);
  CHECK(text.find("10.0.0.2") == std::string::npos);
  CHECK_THROWS_AS(health.with({"x"}, nullptr), std::invalid_argument);
}

TEST_CASE("registry: scraping while workers increment is safe and monotonic", "[observe]") {
  obs::registry reg{2};
  auto& c = reg.add_counter("rproxy_ops", "Ops.");
  auto& h = reg.add_histogram("rproxy_op_seconds", "Op time.", {0.5});
  std::atomic<bool> stop{false};
  std::vector<std::thread> ts;
  for (std::size_t i = 0; i < 2; ++i)
    ts.emplace_back([&, i] {
      obs::set_worker_index(i);
      for (int k = 0; k < 200000 && !stop; ++k) {
        c.inc();
        h.observe(0.25);
      }
    });
  std::uint64_t last = 0;
  for (int scrape = 0; scrape < 50; ++scrape) {
    const auto v = c.value();
    CHECK(v >= last);
    last = v;
    (void)reg.serialize_prometheus();
  }
  stop = true;
  for (auto& t : ts) t.join();
  CHECK(h.collect().count == c.value());
}

TEST_CASE("registry: promtool accepts the exposition of every metric kind", "[observe][promtool]") {
  obs::registry reg{3};
  auto& req = reg.add_counter_family("rproxy_requests", "Requests handled, by route and status.", {"route", "code"});
  req.with({"api", "200"}).inc(10);
  req.with({"needs \"escapes\" \\ and\nnewlines", "503"}).inc();
  req.with({"caf\xc3\xa9 \xff", "404"}).inc();
  reg.add_counter("rproxy_reloads", "Config reloads.").inc();
  reg.add_gauge("rproxy_open_connections", "Open client connections.").set(-2);
  auto& inflight = reg.add_gauge_family("rproxy_inflight_requests", "Requests in flight.", {"route"});
  inflight.with({"api"}).add(4);
  auto& lat = reg.add_histogram_family("rproxy_request_duration_seconds", "Request latency.\nSecond line \\ of help.",
                                       {"route"}, obs::default_buckets());
  lat.with({"api"}).observe(0.003);
  lat.with({"api"}).observe(7.5);
  lat.with({"with \"quotes\""}).observe(0.2);
  reg.add_histogram("rproxy_response_size_bytes", "Response sizes.", obs::exponential_buckets(64, 4, 6)).observe(1000);
  reg.add_callback_gauge("rproxy_pool_size", "Pool size.", [] { return 7.25; });
  reg.add_callback_gauge("rproxy_ratio", "NaN is a valid sample.", [] { return std::numeric_limits<double>::quiet_NaN(); });
  auto& up = reg.add_callback_gauge_family("rproxy_backend_up", "Backend health.", {"backend", "pool"});
  up.with({"[::1]:8080", "main"}, [] { return 1.0; });
  reg.add_callback_counter("rproxy_backend_failures", "Backend failures.", [] { return 3.0; });

  const auto text = reg.serialize_prometheus();
  const auto r = promtool_check(text);
  if (!r.present) {
    WARN("promtool not found on PATH: skipping the exposition check (install Debian package 'prometheus')");
    return;
  }
  INFO("exposition:\n" << text << "\npromtool said:\n" << r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("error") == std::string::npos);
}

TEST_CASE("registry: promtool rejects a broken exposition (the check has teeth)", "[observe][promtool]") {
  const auto r = promtool_check("# TYPE x counter\nx{a=\"unterminated} 1\n");
  if (!r.present) {
    WARN("promtool not found on PATH: skipping");
    return;
  }
  CHECK(r.exit_code != 0);
}
