#include <rproxy/codec/http1/forwarded.hpp>

#include <catch2/catch.hpp>

namespace http1 = rproxy::codec::http1;

namespace {

const http1::fields client{{"Host", "api.example"},
                           {"X-Forwarded-For", "203.0.113.9"},
                           {"x-forwarded-for", "10.0.0.2"},
                           {"Forwarded", "for=203.0.113.9"},
                           {"X-Real-IP", "203.0.113.9"},
                           {"X-Forwarded-Host", "front.example"},
                           {"X-Forwarded-Proto", "https"}};

}  // namespace

TEST_CASE("forwarded: an untrusted peer's forwarding fields are replaced", "[http1]") {
  http1::fields out;
  http1::add_forwarding_fields(out, client, {.peer = "192.0.2.7", .host = "api.example", .proto = "http"});
  CHECK(out == http1::fields{{"X-Forwarded-For", "192.0.2.7"},
                             {"Forwarded", "for=192.0.2.7;host=api.example;proto=http"},
                             {"X-Real-IP", "192.0.2.7"},
                             {"X-Forwarded-Host", "api.example"},
                             {"X-Forwarded-Proto", "http"}});
}

TEST_CASE("forwarded: a trusted proxy's fields are extended", "[http1]") {
  http1::fields out;
  http1::add_forwarding_fields(out, client,
                               {.peer = "10.0.0.1", .host = "api.example", .proto = "http", .trusted = true});
  CHECK(out == http1::fields{{"X-Forwarded-For", "203.0.113.9, 10.0.0.2, 10.0.0.1"},
                             {"Forwarded", "for=203.0.113.9, for=10.0.0.1;host=api.example;proto=http"},
                             {"X-Real-IP", "203.0.113.9"},
                             {"X-Forwarded-Host", "front.example"},
                             {"X-Forwarded-Proto", "https"}});

  http1::fields bare;  // a trusted proxy that sent none: this hop's values
  http1::add_forwarding_fields(bare, http1::fields{}, {.peer = "10.0.0.1", .host = "", .proto = "http", .trusted = true});
  CHECK(bare == http1::fields{{"X-Forwarded-For", "10.0.0.1"},
                              {"Forwarded", "for=10.0.0.1;proto=http"},
                              {"X-Real-IP", "10.0.0.1"},
                              {"X-Forwarded-Proto", "http"}});
}

TEST_CASE("forwarded: IPv6 nodes are quoted and bracketed, hosts with a port quoted", "[http1]") {
  http1::fields out;
  http1::add_forwarding_fields(out, http1::fields{}, {.peer = "2001:db8::1", .host = "h:8080", .proto = "http"});
  CHECK(out.find("forwarded") == "for=\"[2001:db8::1]\";host=\"h:8080\";proto=http");
  CHECK(out.find("x-forwarded-for") == "2001:db8::1");
}
