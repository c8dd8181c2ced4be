// Time per request through an HTTP/2 server session, on client bytes recorded once with
// nghttp2's client session (so the client's cost is not measured):
//   - rproxy: h2::server_session (limits and flood counters, validation, the HTTP/1.1 head,
//     events, manual flow control, the response queue, output gathered into one buffer);
//   - peer: a bare nghttp2 server session with default options whose callbacks keep the
//     header fields and DATA in a per-stream record and answer the same response with a
//     data provider, counting its output without copying it: what the library itself costs.
// Workloads: 100 GETs with 12 header fields answered with 200 and 1 KiB; 100 POSTs of 512
// bytes answered with 204 (all within the default windows, as the client learns no other). Each runs until 0.3 s have passed; the table gives ns per request and
// rproxy's time as a multiple of the peer's (above 1: rproxy is slower).
#include <rproxy/codec/h2/server_session.hpp>

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace h2 = rproxy::codec::h2;
namespace http1 = rproxy::codec::http1;
using clock_type = std::chrono::steady_clock;
using fields = std::vector<std::pair<std::string, std::string>>;
std::size_t last_done = 0;  // requests answered by the last run

nghttp2_nv nv(const std::string& n, const std::string& v) {
  return {const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(n.data())),
          const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(v.data())), n.size(), v.size(),
          NGHTTP2_NV_FLAG_NONE};
}

/// The client's bytes for `n` requests (preface, SETTINGS, HEADERS, DATA), recorded once.
std::string client_bytes(int n, bool post, std::size_t body_size) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session* c = nullptr;
  nghttp2_session_client_new(&c, cb, nullptr);
  nghttp2_session_callbacks_del(cb);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
  nghttp2_submit_settings(c, NGHTTP2_FLAG_NONE, iv, 1);
  nghttp2_session_set_local_window_size(c, NGHTTP2_FLAG_NONE, 0, 1 << 30);
  static std::string body;
  body.assign(body_size, 'b');
  const fields head{{":method", post ? "POST" : "GET"}, {":scheme", "https"}, {":authority", "api.example.com"},
                    {":path", "/v1/items/12345?fields=name,price&limit=20"}, {"user-agent", "bench/1.0"},
                    {"accept", "application/json"}, {"accept-encoding", "gzip, br"}, {"accept-language", "en-US,en;q=0.9"},
                    {"authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJl"},
                    {"cookie", "session=abcdef0123456789"}, {"cookie", "theme=dark"}, {"x-request-id", "0af7651916cd43dd8448eb211c80319c"}};
  std::vector<nghttp2_nv> nva;
  for (const auto& [k, v] : head) nva.push_back(nv(k, v));
  nghttp2_data_provider prd{};
  prd.read_callback = [](nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t len, std::uint32_t* flags,
                         nghttp2_data_source* src, void*) -> ssize_t {
    auto& left = *static_cast<std::size_t*>(src->ptr);
    const std::size_t k = std::min(len, left);
    std::memset(buf, 'b', k);
    left -= k;
    if (left == 0) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(k);
  };
  std::vector<std::size_t> left(static_cast<std::size_t>(n), body_size);
  for (int i = 0; i < n; ++i) {
    prd.source.ptr = &left[static_cast<std::size_t>(i)];
    nghttp2_submit_request(c, nullptr, nva.data(), nva.size(), post ? &prd : nullptr, nullptr);
  }
  std::string out;
  const std::uint8_t* p = nullptr;
  for (ssize_t k; (k = nghttp2_session_mem_send(c, &p)) > 0;) out.append(reinterpret_cast<const char*>(p), static_cast<std::size_t>(k));
  nghttp2_session_del(c);
  return out;
}

/// rproxy's session: answers each request at its end.
std::size_t run_rproxy(const std::string& in, bool post) {
  h2::limits lim;
  lim.max_concurrent_streams = 1000;
  lim.stream_window = 1 << 20;
  lim.connection_window = 1 << 30;
  h2::server_session s{lim};
  static const std::string kib(1024, 'r');
  std::size_t out = 0, done = 0;
  for (const auto& e : s.feed(in, {})) {
    if (e.what == h2::event_kind::data) s.consume(e.stream_id, e.data.size());
    if (e.what != h2::event_kind::end_stream) continue;
    ++done;
    if (post) {
      s.submit_response(e.stream_id, 204, http1::fields{}, true);
    } else {
      s.submit_response(e.stream_id, 200, http1::fields{{"content-type", "application/json"}});
      s.send_data(e.stream_id, kib);
      s.end_stream(e.stream_id);
    }
  }
  for (auto o = s.pending_output(); !o.empty(); o = s.pending_output()) {
    out += o.size();
    s.consume_output(o.size());
  }
  last_done = done;
  return done + out;
}

/// The peer: nghttp2 alone.
struct peer_stream {
  fields head;
  std::string body;
  std::size_t sent = 0;
};
struct peer {
  std::map<std::int32_t, peer_stream> streams;
  std::size_t done = 0;
  bool post = false;
};
std::size_t run_peer(const std::string& in, bool post) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
    static_cast<peer*>(u)->streams[f->hd.stream_id];
    return 0;
  });
  nghttp2_session_callbacks_set_on_header_callback(
      cb, [](nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nl, const std::uint8_t* v, std::size_t vl,
             std::uint8_t, void* u) {
        static_cast<peer*>(u)->streams[f->hd.stream_id].head.emplace_back(std::string(reinterpret_cast<const char*>(n), nl),
                                                                          std::string(reinterpret_cast<const char*>(v), vl));
        return 0;
      });
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
      cb, [](nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* d, std::size_t n, void* u) {
        static_cast<peer*>(u)->streams[id].body.append(reinterpret_cast<const char*>(d), n);
        return 0;
      });
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, [](nghttp2_session* s, const nghttp2_frame* f, void* u) {
    auto& p = *static_cast<peer*>(u);
    if ((f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
    ++p.done;
    static const std::string status200 = ":status", v200 = "200", v204 = "204", ct = "content-type", json = "application/json";
    if (p.post) {
      nghttp2_nv h[] = {nv(status200, v204)};
      nghttp2_submit_response(s, f->hd.stream_id, h, 1, nullptr);
    } else {
      nghttp2_nv h[] = {nv(status200, v200), nv(ct, json)};
      nghttp2_data_provider prd{};
      prd.read_callback = [](nghttp2_session*, std::int32_t id, std::uint8_t* buf, std::size_t len, std::uint32_t* flags,
                             nghttp2_data_source*, void* u) -> ssize_t {
        auto& st = static_cast<peer*>(u)->streams[id];
        const std::size_t k = std::min(len, 1024 - st.sent);
        std::memset(buf, 'r', k);
        st.sent += k;
        if (st.sent == 1024) *flags |= NGHTTP2_DATA_FLAG_EOF;
        return static_cast<ssize_t>(k);
      };
      nghttp2_submit_response(s, f->hd.stream_id, h, 2, &prd);
    }
    return 0;
  });
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, [](nghttp2_session*, std::int32_t id, std::uint32_t, void* u) {
    static_cast<peer*>(u)->streams.erase(id);
    return 0;
  });
  peer p;
  p.post = post;
  nghttp2_session* s = nullptr;
  nghttp2_session_server_new(&s, cb, &p);
  nghttp2_session_callbacks_del(cb);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}, {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
  nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 2);
  nghttp2_session_set_local_window_size(s, NGHTTP2_FLAG_NONE, 0, 1 << 30);
  nghttp2_session_mem_recv(s, reinterpret_cast<const std::uint8_t*>(in.data()), in.size());
  std::size_t out = 0;
  const std::uint8_t* o = nullptr;
  for (ssize_t k; (k = nghttp2_session_mem_send(s, &o)) > 0;) out += static_cast<std::size_t>(k);
  nghttp2_session_del(s);
  last_done = p.done;
  return p.done + out;
}

template <class F>
double ns_per_op(F&& f) {
  std::size_t n = 0, sink = 0;
  const auto start = clock_type::now();
  auto now = start;
  while (now - start < std::chrono::milliseconds(300)) {
    sink += f();
    ++n;
    now = clock_type::now();
  }
  if (sink == 0) std::puts("");
  return std::chrono::duration<double, std::nano>(now - start).count() / static_cast<double>(n);
}

}  // namespace

int main() {
  constexpr int requests = 100;
  std::printf("%-34s %14s %14s %8s\n", "workload (100 requests/connection)", "rproxy ns/req", "nghttp2 ns/req", "ratio");
  for (const auto& [name, post, size] : {std::tuple{"GET, 12 fields, 1 KiB response", false, std::size_t{0}},
                                         std::tuple{"POST 512 B, 204 response", true, std::size_t{512}}}) {
    const std::string in = client_bytes(requests, post, size);
    run_rproxy(in, post);
    const auto ours_done = last_done;
    run_peer(in, post);
    if (ours_done != requests || last_done != requests) {
      std::printf("%s: answered %zu (rproxy) and %zu (nghttp2) of %d\n", name, ours_done, last_done, requests);
      return 1;
    }
    const double ours = ns_per_op([&] { return run_rproxy(in, post); }) / requests;
    const double theirs = ns_per_op([&] { return run_peer(in, post); }) / requests;
    std::printf("%-34s %14.0f %14.0f %8.2f\n", name, ours, theirs, ours / theirs);
  }
}
