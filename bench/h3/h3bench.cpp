// h3bench: HTTP/3 load client (the role h2load plays for HTTP/2; no packaged client does HTTP/3).
//
//   h3bench -c 4 -m 50 -n 20000 https://localhost:8443/           total requests
//   h3bench -c 1 -m 1 -D 5 --ca-file cert.pem https://127.0.0.1:8443/   sequential, 5 seconds
//   h3bench --method POST --body-size 65536 --insecure https://127.0.0.1:8443/upload
//   h3bench -n 1 --method POST --body-size 5000 --trailer 'x-checksum: abc' ...   trailers after the body
//
// One thread, one UDP socket per connection. Latency is submit -> end of the response (nghttp3's
// end of stream, not the QUIC stream close, which waits for the server's ACK of our FIN).
// Prints an h2load-like summary and, last, one machine-readable line:
//   RESULT reqs=... ok=... failed=... seconds=... req_per_s=... p50_ms=... p90_ms=... p99_ms=...
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>
#include <asio/steady_timer.hpp>

#include <rproxy/codec/h3/client_session.hpp>
#include <rproxy/net/quic/client_connection.hpp>

namespace {

namespace h3 = rproxy::codec::h3;
namespace quic = rproxy::net::quic;
using clock_type = std::chrono::steady_clock;

struct run_state {
  std::uint64_t total = 0;        // 0: by duration
  clock_type::time_point deadline{};
  std::uint64_t started = 0, ok = 0, non_2xx = 0, failed = 0;
  std::uint64_t body_bytes = 0;
  std::uint64_t status_class[6] = {};
  std::vector<double> latency_us;
  std::vector<double> handshake_us;
  std::uint64_t conns_failed = 0;
  std::size_t conns_open = 0;
  std::string first_error;
  h3::request_head head;
  std::string body;
  std::vector<h3::field> trailers;  // sent after the body (a trailing HEADERS frame)
  clock_type::time_point first_submit{}, last_done{};

  bool may_start() const {
    if (total) return started < total;
    return clock_type::now() < deadline;
  }
};

struct handler;
using session = h3::client_session<handler, quic::connection>;
using conn_type = quic::client_connection<session>;

struct handler {
  run_state* run;
  std::size_t streams;
  clock_type::time_point connect_at{};
  std::vector<clock_type::time_point> started_at;  // per slot (the tag)
  std::vector<std::int64_t> free_slots;
  conn_type* owner = nullptr;

  void fill(session& s) {
    while (!free_slots.empty() && run->may_start() && s.ready()) {
      const auto slot = free_slots.back();
      const bool has_body = !run->body.empty() || !run->trailers.empty();
      auto sid = s.submit(run->head, static_cast<std::uint64_t>(slot), has_body);
      if (!sid) {
        if (sid.error() != quic::client_error::no_stream && run->first_error.empty()) run->first_error = sid.error().message();
        return;  // no stream credit now: on_stream_slots calls again
      }
      free_slots.pop_back();
      ++run->started;
      if (run->first_submit == clock_type::time_point{}) run->first_submit = clock_type::now();
      started_at[static_cast<std::size_t>(slot)] = clock_type::now();
      if (has_body)
        if (auto ec = s.send_body(*sid, run->body, true, run->trailers)) {  // (a trailer HTTP/3 cannot carry)
          s.cancel(*sid);
          on_stream_error(s, static_cast<std::uint64_t>(slot), ec);
          return;
        }
    }
    if (free_slots.size() == streams && !run->may_start()) owner->close();
  }
  void done(session& s, std::uint64_t tag) {
    run->last_done = clock_type::now();
    free_slots.push_back(static_cast<std::int64_t>(tag));
    fill(s);
  }

  void on_ready(session& s) {
    run->handshake_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - connect_at).count());
    fill(s);
  }
  void on_stream_slots(session& s) { fill(s); }
  void on_response_head(session&, std::uint64_t, h3::response_head& h) {
    ++run->status_class[h.status / 100];
    if (h.status >= 300) ++run->non_2xx;
  }
  void on_response_data(session&, std::uint64_t, const std::uint8_t*, std::size_t n) { run->body_bytes += n; }
  void on_response_end(session& s, std::uint64_t tag) {
    ++run->ok;
    run->latency_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - started_at[tag]).count());
    done(s, tag);
  }
  void on_stream_error(session& s, std::uint64_t tag, std::error_code ec) {
    ++run->failed;
    if (run->first_error.empty()) run->first_error = ec.message();
    done(s, tag);
  }
  void on_closed(session& s, std::error_code ec) {
    --run->conns_open;
    if (!s.ready() && s.open_streams() == 0 && ec != quic::client_error::closed) {
      ++run->conns_failed;
      if (run->first_error.empty()) run->first_error = "connection: " + ec.message();
    }
  }
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"h3bench: HTTP/3 load client"};
  std::string url;
  std::size_t conns = 1, streams = 1;
  std::uint64_t total = 0;
  double duration = 0;
  std::string method = "GET", ca_file, authority;
  std::size_t body_size = 0;
  bool insecure = false;
  std::vector<std::string> headers, trailers;
  app.add_option("url", url, "https://HOST:PORT/PATH")->required();
  app.add_option("-c,--clients", conns, "connections");
  app.add_option("-m,--max-concurrent-streams", streams, "concurrent requests per connection");
  app.add_option("-n,--requests", total, "total requests (default 10000 unless -D)");
  app.add_option("-D,--duration", duration, "seconds to run instead of a total");
  app.add_option("--method", method, "request method");
  app.add_option("--body-size", body_size, "request body bytes");
  app.add_option("-H,--header", headers, "extra request header 'name: value'");
  app.add_option("--trailer", trailers, "request trailer 'name: value', sent after the body");
  app.add_option("--ca-file", ca_file, "PEM trust anchors for the server certificate");
  app.add_option("--authority", authority, "the :authority and TLS name (default: the URL's host)");
  app.add_flag("-k,--insecure", insecure, "do not verify the server certificate");
  CLI11_PARSE(app, argc, argv);
  if (total == 0 && duration <= 0) total = 10000;
  if (conns == 0 || streams == 0) {
    std::fprintf(stderr, "h3bench: -c and -m must be at least 1\n");
    return 2;
  }

  // https://host[:port][/path]
  constexpr std::string_view scheme = "https://";
  if (url.rfind(scheme, 0) != 0) {
    std::fprintf(stderr, "h3bench: the URL must start with https://\n");
    return 2;
  }
  std::string rest = url.substr(scheme.size());
  const auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash), path = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string host = hostport, port = "443";
  if (!hostport.empty() && hostport.front() == '[') {
    const auto close = hostport.find(']');
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size() && hostport[close + 1] == ':') port = hostport.substr(close + 2);
  } else if (const auto colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (authority.empty()) authority = hostport;
  // The TLS name: the authority's host, without its port, and an IPv6 literal without brackets.
  const std::string tls_name = authority.front() == '['                   ? authority.substr(1, authority.find(']') - 1)
                               : authority.rfind(':') == std::string::npos ? authority
                                                                           : authority.substr(0, authority.rfind(':'));

  asio::io_context io;
  std::error_code ec;
  asio::ip::udp::resolver resolver(io);
  auto eps = resolver.resolve(host, port, ec);
  if (ec || eps.empty()) {
    std::fprintf(stderr, "h3bench: cannot resolve %s: %s\n", host.c_str(), ec.message().c_str());
    return 2;
  }
  const auto remote = eps.begin()->endpoint();

  auto tls = quic::tls_credentials::client({.verify = !insecure, .ca_file = ca_file});
  if (!tls) {
    std::fprintf(stderr, "h3bench: TLS setup: %s\n", tls.error().c_str());
    return 2;
  }

  run_state run;
  run.total = total;
  run.head = {.method = method, .scheme = "https", .authority = authority, .path = path, .headers = {}};
  auto add_fields = [](const std::vector<std::string>& lines, std::vector<h3::field>& out) {
    for (const auto& h : lines) {
      const auto colon = h.find(':');
      if (colon == std::string::npos || colon == 0) return false;
      auto v = h.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      out.push_back({h.substr(0, colon), v});
    }
    return true;
  };
  if (!add_fields(headers, run.head.headers) || !add_fields(trailers, run.trailers)) {
    std::fprintf(stderr, "h3bench: a header or trailer must be 'name: value'\n");
    return 2;
  }
  run.body.assign(body_size, 'x');
  if (body_size) run.head.headers.push_back({"content-length", std::to_string(body_size)});
  run.latency_us.reserve(total ? total : 1 << 20);

  std::vector<std::unique_ptr<conn_type>> owned;
  const auto t0 = clock_type::now();
  if (duration > 0) run.deadline = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(duration));
  for (std::size_t i = 0; i < conns; ++i) {
    handler h{&run, streams, clock_type::now(), std::vector<clock_type::time_point>(streams), {}};
    for (std::size_t s = streams; s-- > 0;) h.free_slots.push_back(static_cast<std::int64_t>(s));
    owned.push_back(std::make_unique<conn_type>(io.get_executor(), std::move(h)));
    owned.back()->app().handler().owner = owned.back().get();
    ++run.conns_open;
    if (auto e = owned.back()->connect(remote, *tls, tls_name)) {
      --run.conns_open;
      ++run.conns_failed;
      std::fprintf(stderr, "h3bench: connect: %s\n", e.message().c_str());
    }
  }
  // By duration: a timer wakes the loop at the deadline so idle connections close.
  asio::steady_timer stop(io);
  if (duration > 0) {
    stop.expires_at(run.deadline);
    stop.async_wait([&](std::error_code e) {
      if (e) return;
      for (auto& c : owned)
        if (!c->over() && c->app().open_streams() == 0) c->close();
    });
  }
  io.run_for(std::chrono::seconds(static_cast<long>(duration > 0 ? duration + 60 : 600)));
  const auto t1 = clock_type::now();

  const double secs = std::chrono::duration<double>((run.last_done != clock_type::time_point{} ? run.last_done : t1) - t0).count();
  const auto done = run.ok + run.failed;
  auto& lat = run.latency_us;
  double mean = 0;
  for (double v : lat) mean += v;
  mean = lat.empty() ? 0 : mean / static_cast<double>(lat.size());
  const double mn = lat.empty() ? 0 : *std::min_element(lat.begin(), lat.end());
  const double mx = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
  const double p50 = percentile(lat, 50), p90 = percentile(lat, 90), p99 = percentile(lat, 99);
  double hs = 0;
  for (double v : run.handshake_us) hs += v;
  hs = run.handshake_us.empty() ? 0 : hs / static_cast<double>(run.handshake_us.size());
  std::uint64_t pkts_sent = 0, pkts_recv = 0, dropped = 0, recv_calls = 0;
  for (auto& c : owned) {
    pkts_sent += c->sender().datagrams();
    dropped += c->sender().dropped();
    pkts_recv += c->stats().datagrams_received;
    recv_calls += c->stats().recv_calls;
  }

  std::printf("h3bench: %s, %zu connections x %zu streams\n", url.c_str(), conns, streams);
  std::printf("finished in %.3f s, %.0f req/s, %.2f MB/s\n", secs, secs > 0 ? static_cast<double>(done) / secs : 0,
              secs > 0 ? static_cast<double>(run.body_bytes) / secs / 1e6 : 0);
  std::printf("requests: %llu started, %llu done, %llu succeeded (complete responses), %llu failed\n",
              static_cast<unsigned long long>(run.started), static_cast<unsigned long long>(done),
              static_cast<unsigned long long>(run.ok), static_cast<unsigned long long>(run.failed));
  std::printf("status codes: %llu 2xx, %llu 3xx, %llu 4xx, %llu 5xx\n", static_cast<unsigned long long>(run.status_class[2]),
              static_cast<unsigned long long>(run.status_class[3]), static_cast<unsigned long long>(run.status_class[4]),
              static_cast<unsigned long long>(run.status_class[5]));
  std::printf("latency (ms): min %.3f  mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", mn / 1e3, mean / 1e3, p50 / 1e3,
              p90 / 1e3, p99 / 1e3, mx / 1e3);
  std::printf("connections: %zu ok, %llu failed; handshake mean %.3f ms\n", run.handshake_us.size(),
              static_cast<unsigned long long>(run.conns_failed), hs / 1e3);
  std::printf("udp: %llu datagrams sent, %llu received in %llu calls, %llu dropped (socket full)\n",
              static_cast<unsigned long long>(pkts_sent),
              static_cast<unsigned long long>(pkts_recv), static_cast<unsigned long long>(recv_calls),
              static_cast<unsigned long long>(dropped));
  if (!run.first_error.empty()) std::printf("first error: %s\n", run.first_error.c_str());
  std::printf("RESULT reqs=%llu ok=%llu failed=%llu non2xx=%llu seconds=%.3f req_per_s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f\n",
              static_cast<unsigned long long>(done), static_cast<unsigned long long>(run.ok), static_cast<unsigned long long>(run.failed),
              static_cast<unsigned long long>(run.non_2xx), secs, secs > 0 ? static_cast<double>(done) / secs : 0, p50 / 1e3, p90 / 1e3,
              p99 / 1e3);
  const bool all_ok = run.ok > 0 && run.failed == 0 && run.conns_failed == 0 && run.non_2xx == 0 && (total == 0 || run.ok == total);
  return all_ok ? 0 : 1;
}
