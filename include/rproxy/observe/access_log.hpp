// rproxy/observe/access_log.hpp: one access-log record per flow, from the flow's own fields.
//
// Call it from an on_close hook (it runs for every flow, whatever happened). It logs "access"
// at info with: flow_id, client, local, route, backend, identity, bytes_in, bytes_out,
// duration_ms, outcome ("ok", "rejected" or "error"), and when set: reject_code, reject_reason,
// retry_after_s, error. Protocol-specific fields (method, path, status, ...) go in `extra`;
// they pass through the logger's redaction like every field.
//
//     template <class Ctx> void on_close(Ctx& ctx, std::error_code ec) {
//       rproxy::observe::access_log(log_, ctx, ec, {{"method", "GET"}, {"status", 200}});
//     }
//     // {"ts":"…","level":"info","logger":"access","msg":"access","flow_id":7,
//     //  "client":"127.0.0.1:50312","route":"lobby",…,"outcome":"ok","method":"GET","status":200}
#pragma once

#include <asio/ip/tcp.hpp>

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <system_error>

#include <rproxy/observe/log.hpp>
#include <rproxy/pipeline/context.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::observe {

/// "1.2.3.4:80" or "[::1]:80" (empty for an unset endpoint).
inline std::string endpoint_text(const asio::ip::tcp::endpoint& ep) {
  if (ep.port() == 0 && ep.address().is_unspecified()) return {};
  std::string s;
  if (ep.address().is_v6()) {
    s = "[";
    s += ep.address().to_string();
    s += "]";
  } else {
    s = ep.address().to_string();
  }
  s += ':';
  s += std::to_string(ep.port());
  return s;
}

/// Logs the access record of `flow` (see the top of this file). `now` is the end of the flow.
template <class Flow>
  requires std::derived_from<Flow, flow_base>
void access_log(const logger& log, const Flow& flow, std::error_code ec, std::span<const field> extra,
                std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) {
  if (!log.should_log(log_level::info)) return;
  const flow_base& f = flow;
  const std::string client = endpoint_text(f.client);
  const std::string local = endpoint_text(f.local);
  std::string_view route;  // (a flow with no backend: empty, as before a route is chosen)
  std::string backend;
  if constexpr (std::derived_from<Flow, flow_info>) {
    route = flow.route;
    if (flow.backend) backend = endpoint_text(*flow.backend);
  }
  const std::string error_text = ec ? ec.message() : std::string();
  const double duration_ms =
      f.started == std::chrono::steady_clock::time_point{}
          ? 0.0
          : std::chrono::duration<double, std::milli>(now - f.started).count();

  std::array<field, 16> fields{
      field{"flow_id", f.id},
      field{"client", client},
      field{"local", local},
      field{"route", route},
      field{"backend", backend},
      field{"identity", f.identity},
      field{"bytes_in", f.bytes_from_client},
      field{"bytes_out", f.bytes_to_client},
      field{"duration_ms", duration_ms},
      field{"outcome", f.rejected ? "rejected" : ec ? "error" : "ok"},
      // optional fields, filled below
      field{"", false}, field{"", false}, field{"", false}, field{"", false}, field{"", false}, field{"", false},
  };
  std::size_t n = 10;
  if (f.rejected) {
    fields[n++] = field{"reject_code", to_string(f.rejected->code)};
    if (!f.rejected->message.empty()) fields[n++] = field{"reject_reason", f.rejected->message};
    if (f.rejected->retry_after_s) fields[n++] = field{"retry_after_s", f.rejected->retry_after_s};
  }
  if (ec) fields[n++] = field{"error", error_text};
  log.log(log_level::info, "access", std::span<const field>(fields.data(), n), extra);
}

template <class Flow>
  requires std::derived_from<Flow, flow_base>
void access_log(const logger& log, const Flow& flow, std::error_code ec = {},
                std::initializer_list<field> extra = {}) {
  access_log(log, flow, ec, std::span<const field>(extra.begin(), extra.size()));
}

}  // namespace rproxy::observe
