// tests/support/h2_echo.hpp: the application behind the loopback test servers of the h2 tests
// (a test driver, not library code). It reads a session's events and answers at once:
//   POST /echo         200, the request body back, and its trailers as response trailers
//   GET  /big?n=N      200, N bytes (flow control over a real socket)
//   anything else      200, body "path=<target>\n"
#pragma once

#include <rproxy/codec/h2/server_session.hpp>

#include <atomic>
#include <cstddef>
#include <map>
#include <span>
#include <string>

namespace h2_test {

class echo_app {
public:
  void handle(rproxy::codec::h2::server_session& s, std::span<const rproxy::codec::h2::event> events) {
    namespace h2 = rproxy::codec::h2;
    namespace http1 = rproxy::codec::http1;
    for (const auto& e : events) {
      switch (e.what) {
        case h2::event_kind::request: reqs_[e.stream_id]; break;
        case h2::event_kind::data:
          reqs_[e.stream_id].body += e.data;
          s.consume(e.stream_id, e.data.size());  // "forwarded": the window goes back
          break;
        case h2::event_kind::end_stream: {
          const auto& t = s.request(e.stream_id).trailers();
          if (!t.empty()) ++trailers_seen;
          reqs_[e.stream_id].trailers = http1::fields::from(t);
          answer(s, e.stream_id);
          break;
        }
        case h2::event_kind::closed:
        case h2::event_kind::reset:
          reqs_.erase(e.stream_id);
          s.release(e.stream_id);
          break;
        case h2::event_kind::rejected:
        case h2::event_kind::goaway_sent: ++errors; break;
        default: break;
      }
    }
  }

  std::atomic<std::size_t> requests{0}, trailers_seen{0}, errors{0};

private:
  struct pending {
    std::string body;
    rproxy::codec::http1::fields trailers;
  };
  void answer(rproxy::codec::h2::server_session& s, std::int32_t id) {
    namespace http1 = rproxy::codec::http1;
    const auto& r = s.request(id);
    auto& p = reqs_[id];
    ++requests;
    if (r.method() == "POST" && r.path() == "/echo") {
      s.submit_response(id, 200, http1::fields{{"content-type", "application/octet-stream"}});
      s.send_data(id, p.body);
      s.end_stream(id, p.trailers);
    } else if (r.path() == "/big") {
      const auto n = std::stoul(std::string(r.target().substr(r.target().find('=') + 1)));
      s.submit_response(id, 200);
      s.send_data(id, std::string(n, 'z'));
      s.end_stream(id);
    } else {
      s.submit_response(id, 200, http1::fields{{"content-type", "text/plain"}});
      s.send_data(id, "path=" + std::string(r.target()) + "\n");
      s.end_stream(id);
    }
  }
  std::map<std::int32_t, pending> reqs_;
};

}  // namespace h2_test
