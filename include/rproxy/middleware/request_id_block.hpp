// rproxy/middleware/request_id_block.hpp: the YAML block of the request_id stage, declared once.
//
//     request_id: { header: X-Request-Id, trust_client: false, echo: true, trace: true, sample: false }
//
//     mw::request_id_block request_id{};           // in the app's config struct
//     mw::request_id_config rc = c.request_id.config();
#pragma once

#include <string>

#include <rproxy/config/field.hpp>
#include <rproxy/middleware/request_id.hpp>

namespace rproxy::middleware {

struct request_id_block {
  std::string header = "X-Request-Id";
  bool trust_client = false;
  bool echo = true;
  bool trace = true;
  bool sample = false;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&request_id_block::header>("the request id's header, sent to the backend"),
        cfg::doc<&request_id_block::trust_client>("keep a client's id (1..128 of A-Z a-z 0-9 . _ : -); off: always a new one"),
        cfg::doc<&request_id_block::echo>("set the id on the response to the client"),
        cfg::doc<&request_id_block::trace>("continue the client's W3C traceparent with this hop's span, or start a trace"),
        cfg::doc<&request_id_block::sample>("the sampled flag of the traces this hop starts"));
  }
  request_id_config config() const {
    request_id_config c;
    c.header = header;
    c.trust_client = trust_client;
    c.echo = echo;
    c.trace = trace;
    c.sample = sample;
    return c;
  }
};

}  // namespace rproxy::middleware
