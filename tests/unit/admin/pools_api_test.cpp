#include <rproxy/admin/pools_api.hpp>

#include <rproxy/balance/pool.hpp>
#include <rproxy/balance/round_robin.hpp>
#include <rproxy/core/json.hpp>

#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using pool_t = rproxy::balance::pool;
using api_t = rproxy::admin::pools_api<pool_t>;

asio::ip::tcp::endpoint ep(unsigned short port) { return {asio::ip::make_address("127.0.0.1"), port}; }

struct fixture {
  std::shared_ptr<pool_t> main = std::make_shared<pool_t>();
  int reloads = 0;
  bool reload_ok = true;
  api_t api{{.pools = [this] { return std::vector<rproxy::admin::named_pool<pool_t>>{{"main", main}}; },
             .routes = [] { return std::vector<rproxy::admin::route_summary>{{"users", {"main", "canary"}}}; },
             .reload = [this] { ++reloads; return reload_ok; }}};
  fixture() { REQUIRE(main->update({{"a", ep(9001), 2}, {"[::1]:80", ep(9002), 1}})); }

  rproxy::admin::response call(std::string method, std::string path, std::string body = {}) {
    rproxy::admin::request r;
    method_ = std::move(method);
    path_ = std::move(path);
    r.method = method_;
    r.path = path_;
    r.body = std::move(body);
    return api(r);
  }
  std::string method_, path_;
};

// The backend object of `id` in a GET /api/backends answer, as parsed JSON text.
std::map<std::string, std::string> backend_fields(const std::string& body, std::string_view id) {
  auto doc = rproxy::json::parse(body);
  REQUIRE(doc);
  std::map<std::string, std::string> out;
  for (auto g : doc->root().find("groups")->children())
    for (auto b : g.find("backends")->children())
      if (b.find("id")->as_string() == id)
        for (auto m : b.children()) out[std::string(m.key())] = rproxy::json::dump(m);
  return out;
}

}  // namespace

TEST_CASE("pools_api lists routes and backends as JSON", "[admin]") {
  fixture f;
  auto r = f.call("GET", "/api/routes");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK(r.body == "{\"routes\":[{\"name\":\"users\",\"groups\":[\"main\",\"canary\"]}]}\n");
  r = f.call("GET", "/api/backends");
  REQUIRE(r.status == 200);
  auto a = backend_fields(r.body, "a");
  CHECK(a["weight"] == "2");
  CHECK(a["state"] == "\"healthy\"");
  CHECK(a["available"] == "true");
  CHECK(a["drained"] == "false");
  CHECK(a["in_flight"] == "0");
  CHECK(a["breaker"] == "\"closed\"");
  CHECK(a.contains("selections"));
  CHECK(a.contains("latency_ewma_seconds"));
}

TEST_CASE("pools_api sets a weight, drains and undrains; picks follow at once", "[admin]") {
  fixture f;
  auto r = f.call("PUT", "/api/backends/main/a/weight", R"({"weight": 0})");
  REQUIRE(r.status == 200);
  CHECK(backend_fields("{\"groups\":[{\"backends\":[" + r.body + "]}]}", "a")["weight"] == "0");
  CHECK(f.main->find("a")->weight() == 0);
  rproxy::balance::round_robin rr;
  for (int i = 0; i < 8; ++i) {  // weight 0: standby, never picked
    auto h = rr.pick(*f.main);
    REQUIRE(h);
    CHECK(h->backend().id() == "[::1]:80");
  }
  // The id "[::1]:80" percent-encoded in the path.
  r = f.call("POST", "/api/backends/main/%5B%3A%3A1%5D%3A80/drain");
  REQUIRE(r.status == 200);
  CHECK(f.main->find("[::1]:80")->drained());
  CHECK(backend_fields(f.call("GET", "/api/backends").body, "[::1]:80")["state"] == "\"draining\"");
  CHECK_FALSE(rr.pick(*f.main));  // a at 0, the other drained: nothing to pick
  REQUIRE(f.call("POST", "/api/backends/main/%5b%3a%3a1%5d%3a80/undrain").status == 200);
  REQUIRE(f.call("POST", "/api/backends/main/a/weight", R"({"weight":3})").status == 200);
  CHECK(f.main->find("a")->weight() == 3);
  CHECK(rr.pick(*f.main));
}

TEST_CASE("pools_api refuses bad requests with a JSON error and changes nothing", "[admin]") {
  fixture f;
  auto error_of = [](const rproxy::admin::response& r) {
    auto doc = rproxy::json::parse(r.body);
    REQUIRE(doc);
    return std::string(doc->root().find("error")->as_string());
  };
  for (const char* body : {"", "{}", "[1]", R"({"weight":-1})", R"({"weight":1.5})", R"({"weight":"2"})",
                           R"({"weight":1000001})", R"({"weight":1,"weight":2})", "{\"weight\":1} x"}) {
    INFO(body);
    auto r = f.call("PUT", "/api/backends/main/a/weight", body);
    CHECK(r.status == 400);
    CHECK(error_of(r) == "bad_request");
  }
  CHECK(f.main->find("a")->weight() == 2);
  CHECK(f.call("PUT", "/api/backends/nope/a/weight", R"({"weight":1})").status == 404);
  CHECK(f.call("PUT", "/api/backends/main/zz/weight", R"({"weight":1})").status == 404);
  CHECK(f.call("POST", "/api/backends/main/a/explode").status == 404);
  CHECK(f.call("POST", "/api/backends/main/a").status == 404);
  CHECK(f.call("POST", "/api/backends/main/a/drain/x").status == 404);
  CHECK(f.call("POST", "/api/backends//a/drain").status == 400);
  CHECK(f.call("POST", "/api/backends/main/%2/drain").status == 400);
  CHECK(f.call("POST", "/api/backends/main/a%00/drain").status == 400);
  CHECK(f.call("PUT", "/api/backends/main/a/drain").status == 405);
  CHECK(f.call("POST", "/api/backends").status == 405);
  CHECK_FALSE(f.main->find("a")->drained());
}

TEST_CASE("pools_api reload reports the outcome", "[admin]") {
  fixture f;
  CHECK(f.call("POST", "/api/reload").body == "{\"reloaded\":true}\n");
  f.reload_ok = false;
  CHECK(f.call("POST", "/api/reload").status == 422);
  CHECK(f.reloads == 2);
  CHECK(f.call("GET", "/api/reload").status == 405);
}
