// rproxy/observe/access_log_stage.hpp: the access_log stage: one access record per flow (per
// request on HTTP), written by observe/access_log.hpp through the app's logger (text or JSON,
// redacted like every log line), with what the protocol offers besides the flow's own fields:
//
//   method, target (cut at 1 KiB), host   when the hello has method()/target()/header("host")
//   status                                when the flow records the status sent (flow/http1.hpp)
//   request_id                            when the flow has one (middleware/request_id.hpp sets it)
//
//     auto p = rproxy::make_pipeline<http>(rproxy::observe::access_log_stage{&rt.log()}, ...);
//     // {"msg":"access","client":"203.0.113.7:50312","route":"api","bytes_out":1234,
//     //  "duration_ms":3.1,"outcome":"ok","method":"GET","target":"/v1/users?id=7",
//     //  "host":"api.example.com","status":200,"request_id":"4bf92f35..."}
//
// List it first so that its on_close sees every other stage's verdict (on_close runs for every
// flow, in pipeline order, whatever happened). A flow that ends before its hello is complete
// and got no answer (a kept HTTP connection closed between requests, a port probe) is not
// logged; a malformed or slow request head is, with its status (400, 408, 431).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include <rproxy/observe/access_log.hpp>
#include <rproxy/observe/log.hpp>
#include <rproxy/observe/redact.hpp>

namespace rproxy::observe {

struct access_log_stage {
  static constexpr std::size_t max_target = 1024;
  static constexpr std::size_t max_host = 256;

  struct state {
    std::string method, target, host;
  };

  const logger* log = nullptr;  ///< null: no access log

  template <class Ctx, class Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    if (log == nullptr || !log->should_log(log_level::info)) return rproxy::next;
    auto& s = ctx.template state<access_log_stage>();
    if constexpr (requires { req.method(); }) s.method.assign(cut(req.method(), 32));
    if constexpr (requires { req.target(); }) {  // a credential in the query (api_key=...) is not logged
      const std::string_view t = cut(req.target(), max_target);
      if (t.find('?') == std::string_view::npos) s.target.assign(t);
      else s.target = redact_query(t);
    }
    if constexpr (requires { req.header(std::string_view()); })
      if (auto h = req.header("host")) s.host.assign(cut(*h, max_host));
    return rproxy::next;
  }

  template <class Ctx>
  void on_close(Ctx& ctx, std::error_code ec) {
    if (log == nullptr || !log->should_log(log_level::info)) return;
    // A kept connection's wait for a next request that never came is not a request; a head
    // that was refused as malformed (400, 408, 431) is, with the status it got.
    bool answered = false;
    if constexpr (requires { ctx.status; }) answered = ctx.status != 0;
    if (ctx.hello_done == std::chrono::steady_clock::time_point{} && !ctx.rejected && !answered) return;
    const auto& s = ctx.template state<access_log_stage>();
    std::array<field, 5> extra{field{"", false}, field{"", false}, field{"", false}, field{"", false}, field{"", false}};
    std::size_t n = 0;
    if (!s.method.empty()) {
      extra[n++] = field{"method", s.method};
      extra[n++] = field{"target", s.target};
      if (!s.host.empty()) extra[n++] = field{"host", s.host};
    }
    if constexpr (requires { ctx.status; })
      if (ctx.status != 0) extra[n++] = field{"status", ctx.status};
    if constexpr (requires { ctx.request_id; })
      if (!ctx.request_id.empty()) extra[n++] = field{"request_id", ctx.request_id};
    access_log(*log, ctx, ec, std::span<const field>(extra.data(), n));
  }

private:
  static std::string_view cut(std::string_view v, std::size_t max) noexcept { return v.substr(0, max); }
};

}  // namespace rproxy::observe
