#include <rproxy/middleware/api_key.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

namespace mw = rproxy::middleware;

namespace {
std::string sha256_hex(std::string_view s) {
  auto d = mw::detail::sha256(s);
  return mw::detail::to_hex(d->data(), d->size());
}

struct fake_request {
  std::map<std::string, std::string, std::less<>> headers, query_params;
  std::optional<std::string_view> header(std::string_view n) const {
    auto it = headers.find(n);
    return it == headers.end() ? std::nullopt : std::optional<std::string_view>(it->second);
  }
  std::optional<std::string_view> query(std::string_view n) const {
    auto it = query_params.find(n);
    return it == query_params.end() ? std::nullopt : std::optional<std::string_view>(it->second);
  }
};
struct http_protocol {
  using flow = rproxy::flow_info;
  using hello = fake_request;
  using message = int;
  using response = int;
};
struct lines {
  std::vector<std::string> out;
  void operator()(const mw::audit_record&, std::string_view line) { out.emplace_back(line); }
};

const std::string key_a = "rk_live_3b1f0c9e8d7a6f5e4d3c2b1a09f8e7d6";
const std::string key_b = "rk_live_b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";
}  // namespace

TEST_CASE("api_key_table: parse hashes, find keys", "[middleware][api_key]") {
  std::string file = "# keys\n" + sha256_hex(key_a) + "  ci-bot\tinternal\n\n   # indented comment\nsha256:" +
                     sha256_hex(key_b) + " partner-a   # trailing comment\n";
  auto t = mw::api_key_table::parse(file);
  REQUIRE(t);
  CHECK(t->size() == 2);
  auto a = t->find(key_a);
  REQUIRE(a);
  CHECK(a->name == "ci-bot");
  CHECK(a->tier == "internal");
  CHECK(t->find(key_b)->name == "partner-a");
  CHECK(t->find(key_b)->tier.empty());
  CHECK_FALSE(t->find(key_a + "x"));
  CHECK_FALSE(t->find(key_a.substr(1)));
  CHECK_FALSE(t->find(""));
  CHECK_FALSE(t->find(sha256_hex(key_a)));  // the hash itself is not a key

  std::size_t line = 0;
  CHECK(mw::api_key_table::parse("abc name\n", &line).error() == mw::error::bad_key_file);
  CHECK(line == 1);
  CHECK(mw::api_key_table::parse("# x\n" + sha256_hex("k") + "\n", &line).error() == mw::error::bad_key_file);
  CHECK(line == 2);
  CHECK(mw::api_key_table::parse(sha256_hex("k") + " n t extra\n", &line).error() == mw::error::bad_key_file);
  CHECK(mw::api_key_table::parse(sha256_hex("k").substr(2) + "zz n\n", &line).error() == mw::error::bad_key_file);
}

TEST_CASE("api_key_store reloads and keeps the old table on error", "[middleware][api_key]") {
  auto path = "/tmp/rproxy_mw_" + std::to_string(::getpid()) + "_keys";
  std::ofstream(path) << sha256_hex(key_a) << " a\n";
  mw::api_key_store store(path);
  CHECK_FALSE(store.current()->find(key_a));
  REQUIRE(store.reload());
  CHECK(store.current()->find(key_a));
  std::ofstream(path, std::ios::trunc) << "garbage\n";
  std::size_t line = 0;
  CHECK(store.reload(&line).error() == mw::error::bad_key_file);
  CHECK(line == 1);
  CHECK(store.current()->find(key_a));
  std::ofstream(path, std::ios::trunc) << sha256_hex(key_b) << " b gold\n";
  REQUIRE(store.reload());
  CHECK_FALSE(store.current()->find(key_a));
  CHECK(store.current()->find(key_b)->tier == "gold");
  std::remove(path.c_str());
  CHECK(store.reload().error() == mw::error::file_unreadable);
}

TEST_CASE("api_key_auth stage: header or query key, principal, never logs the key", "[middleware][api_key]") {
  mw::api_key_table t;
  REQUIRE(t.add_key(key_a, "ci-bot", "internal"));
  mw::api_key_store store(std::move(t));
  mw::api_key_config cfg;
  cfg.sources.push_back({mw::credential_source::place::query, "api_key", ""});
  lines sink;
  auto log = mw::audit_log::to(sink);
  auto p = rproxy::make_pipeline<http_protocol>(mw::api_key_auth{&cfg, &store, &log});

  fake_request good;
  good.headers["X-API-Key"] = key_a;
  auto ctx = p.make_context();
  REQUIRE(p.hello(ctx, good).is_next());
  const mw::principal* who = mw::find_principal(ctx);
  REQUIRE(who);
  CHECK(who->subject == "ci-bot");
  CHECK(who->api_key == "ci-bot");
  CHECK(who->tier == "internal");
  CHECK(ctx.identity == "ci-bot");

  fake_request by_query;
  by_query.query_params["api_key"] = key_a;
  auto c2 = p.make_context();
  CHECK(p.hello(c2, by_query).is_next());

  fake_request wrong;
  wrong.headers["X-API-Key"] = key_b;
  auto c3 = p.make_context();
  auto v = p.hello(c3, wrong);
  REQUIRE(v.is_reject());
  CHECK(v.reason().code == rproxy::reject_code::unauthorized);
  CHECK(mw::find_principal(c3) == nullptr);

  auto c4 = p.make_context();
  CHECK(p.hello(c4, fake_request{}).is_reject());
  REQUIRE(sink.out.size() == 2);
  for (const auto& l : sink.out) {
    CHECK(l.find(key_b) == std::string::npos);
    CHECK(l.find(key_b.substr(0, 12)) == std::string::npos);
  }
  CHECK(sink.out[0].find("unknown API key") != std::string::npos);
  CHECK(sink.out[1].find("no credentials") != std::string::npos);

  cfg.optional = true;  // anonymous allowed, a wrong key still not
  auto c5 = p.make_context();
  CHECK(p.hello(c5, fake_request{}).is_next());
  CHECK(mw::find_principal(c5) == nullptr);
  auto c6 = p.make_context();
  CHECK(p.hello(c6, wrong).is_reject());
}
