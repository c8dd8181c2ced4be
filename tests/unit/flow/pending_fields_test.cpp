#include <rproxy/flow/pending_fields.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

namespace {
using lines = std::vector<std::pair<std::string, std::string>>;
lines of(const rproxy::codec::http1::fields& f) {
  lines out;
  for (const auto& x : f) out.emplace_back(x.name, x.value);
  return out;
}
}  // namespace

TEST_CASE("pending_fields: set replaces its own earlier set in place, add keeps, remove drops, a token goes in once", "[flow]") {
  rproxy::flow::pending_fields p;
  p.set("X-Request-Id", "first");
  p.add("Via", "1.1 rproxy");
  p.set("x-request-id", std::string(200, 'a'));  // (longer than the first: the entries after it move)
  p.remove("Cookie");
  p.add_token("Vary", "Origin");
  p.add_token("Vary", "Accept-Encoding");
  p.set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");

  rproxy::codec::http1::fields out{{"Host", "h"}, {"Cookie", "a=1"}, {"Vary", "Origin"}, {"Via", "1.0 edge"}};
  p.apply(out);
  CHECK(of(out) == lines{{"Host", "h"}, {"Vary", "Origin"}, {"Via", "1.0 edge"}, {"X-Request-Id", std::string(200, 'a')},
                         {"Via", "1.1 rproxy"}, {"Vary", "Accept-Encoding"},
                         {"Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}});
  CHECK(p.contains("COOKIE"));
  CHECK(p.contains("x-request-id"));
  CHECK_FALSE(p.contains("Via"));  // (added, not set: the client's own stays)
  CHECK(p.last_set("cookie") == std::string_view());
  CHECK(p.last_set("X-REQUEST-ID") == std::string_view(std::string(200, 'a')));
  CHECK_FALSE(p.last_set("Vary").has_value());
}

TEST_CASE("pending_fields: invalid names and values, and empty values, are left out; clear forgets all", "[flow]") {
  rproxy::flow::pending_fields p;
  p.set("bad name", "v");
  p.set("X-Ok", "line\r\nbreak");
  p.set("X-Empty", "");
  p.set("X-Kept", "yes");
  rproxy::codec::http1::fields out;
  p.apply(out);
  CHECK(of(out) == lines{{"X-Kept", "yes"}});
  p.set("X-Empty", "now");  // (replaces the empty one)
  rproxy::codec::http1::fields out2;
  p.apply(out2);
  CHECK(of(out2) == lines{{"X-Empty", "now"}, {"X-Kept", "yes"}});
  p.clear();
  CHECK_FALSE(p.contains("X-Kept"));
  rproxy::codec::http1::fields out3;
  p.apply(out3);
  CHECK(out3.empty());
}

TEST_CASE("pending_fields: a value that views an entry of its own can be left again", "[flow]") {
  // (last_set views the buffer; the entry it makes grows that buffer, which moves it: the
  // view must be read before. Short values, so that most growths happen before the value.)
  rproxy::flow::pending_fields p;
  p.set("Cookie", "v=1");
  for (int i = 0; i < 200; ++i) p.add("X-Copy", *p.last_set("Cookie"));
  p.set("Cookie", *p.last_set("Cookie"));
  rproxy::codec::http1::fields out;
  p.apply(out);
  lines want{{"Cookie", "v=1"}};
  for (int i = 0; i < 200; ++i) want.emplace_back("X-Copy", "v=1");
  CHECK(of(out) == want);
}
