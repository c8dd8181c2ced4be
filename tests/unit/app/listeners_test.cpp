// Tests for rproxy/app/listeners.hpp: make_listener_shares makes a share per listener of the
// first config, by name, with the flow options its entry and the relay block give; an entry a
// reload drops leaves its listener without a share, and one it adds has none; both say so in
// the log. (listen_each opens real listeners: the tcp_proxy e2e tests run it.)
// The runtime is a stand-in with the member make_listener_shares uses.
#include <rproxy/app/listeners.hpp>

#include <rproxy/observe/log.hpp>

#include <spdlog/sinks/ostream_sink.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace obs = rproxy::observe;

struct entry {
  std::string name;
  rproxy::config::endpoint listen{"127.0.0.1", 0};
  rproxy::flow::proxy_protocol_config proxy_protocol{};
  std::chrono::milliseconds connect_timeout = 5s;
  std::chrono::milliseconds idle_timeout = 5min;
};

/// An entry without timeouts of its own: the relay block's stay.
struct plain_entry {
  std::string name;
  rproxy::config::endpoint listen{"127.0.0.1", 0};
  rproxy::flow::proxy_protocol_config proxy_protocol{};
};

struct fake_runtime {
  std::ostringstream log_text;
  obs::logger log_ = obs::make_logger(obs::log_format::text, obs::log_level::info,
                                      std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  const obs::logger& log() const { return log_; }
};

/// The share's pipelines: the name of the entry it was made from.
auto fill = [](const auto& e, rproxy::app::share<std::string>& s) { s.pipelines = {e.name}; };

}  // namespace

TEST_CASE("make_listener_shares: a share per first listener, by name, its options from the entry", "[app][listeners]") {
  fake_runtime rt;
  rproxy::flow::relay_config relay{};
  relay.buffer_size = rproxy::config::byte_size::kib(16);
  std::vector<entry> first{{.name = "a", .listen = {"127.0.0.1", 1}, .proxy_protocol = {}, .connect_timeout = 1s, .idle_timeout = 1min},
                           {.name = "b", .listen = {"127.0.0.1", 2}, .proxy_protocol = {}, .connect_timeout = 2s, .idle_timeout = 2min}};
  first[1].proxy_protocol.accept = rproxy::proxy_accept::required;

  auto w = rproxy::app::make_listener_shares<std::string>(rt, first, first, relay, fill);
  REQUIRE(w->listeners.size() == 2);
  REQUIRE(w->listeners[0]);
  REQUIRE(w->listeners[1]);
  CHECK(w->listeners[0]->pipelines == std::vector<std::string>{"a"});
  CHECK(w->listeners[1]->pipelines == std::vector<std::string>{"b"});
  CHECK(w->listeners[0]->options.connect_timeout == 1s);
  CHECK(w->listeners[1]->options.relay.idle_timeout == 2min);
  CHECK(w->listeners[0]->options.relay.buffer_size == 16 * 1024);
  CHECK(w->listeners[0]->options.accept == rproxy::proxy_accept::none);
  CHECK(w->listeners[1]->options.accept == rproxy::proxy_accept::required);
  CHECK(rt.log_text.str().empty());

  // A reload that reorders the entries: each listener keeps its own by name.
  std::vector<entry> swapped{first[1], first[0]};
  swapped[0].connect_timeout = 3s;
  w = rproxy::app::make_listener_shares<std::string>(rt, first, swapped, relay, fill);
  REQUIRE(w->listeners.size() == 2);
  CHECK(w->listeners[0]->pipelines == std::vector<std::string>{"a"});
  CHECK(w->listeners[1]->options.connect_timeout == 3s);
}

TEST_CASE("make_listener_shares: a dropped entry leaves its listener without a share, an added one gets none; both logged",
          "[app][listeners]") {
  fake_runtime rt;
  std::vector<entry> first{{.name = "a", .listen = {"127.0.0.1", 1}, .proxy_protocol = {}, .connect_timeout = 1s, .idle_timeout = 1min},
                           {.name = "b", .listen = {"127.0.0.1", 2}, .proxy_protocol = {}, .connect_timeout = 1s, .idle_timeout = 1min}};
  std::vector<entry> next{first[1], {.name = "c", .listen = {"127.0.0.1", 3}, .proxy_protocol = {}, .connect_timeout = 1s, .idle_timeout = 1min}};
  auto w = rproxy::app::make_listener_shares<std::string>(rt, first, next, rproxy::flow::relay_config{}, fill);
  REQUIRE(w->listeners.size() == 2);
  CHECK_FALSE(w->listeners[0]);
  REQUIRE(w->listeners[1]);
  CHECK(w->listeners[1]->pipelines == std::vector<std::string>{"b"});
  const auto log = rt.log_text.str();
  CHECK(log.find("listener removed from config: it refuses new connections until a restart") != std::string::npos);
  CHECK(log.find("listener=a") != std::string::npos);
  CHECK(log.find("listener added to config: it listens after a restart") != std::string::npos);
  CHECK(log.find("listener=c") != std::string::npos);
}

TEST_CASE("make_listener_shares: an entry without timeouts keeps the relay block's", "[app][listeners]") {
  fake_runtime rt;
  rproxy::flow::relay_config relay{};
  relay.idle_timeout = 42s;
  std::vector<plain_entry> first{{.name = "a", .listen = {"127.0.0.1", 1}, .proxy_protocol = {}}};
  auto w = rproxy::app::make_listener_shares<std::string>(rt, first, first, relay, fill);
  REQUIRE(w->listeners.size() == 1);
  REQUIRE(w->listeners[0]);
  CHECK(w->listeners[0]->options.relay.idle_timeout == 42s);
  CHECK(w->listeners[0]->options.connect_timeout == rproxy::flow::options{}.connect_timeout);
}
