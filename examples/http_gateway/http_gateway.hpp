// examples/http_gateway/http_gateway.hpp: an HTTP/1.1 reverse proxy made of rproxy parts.
//
// A connection runs the connection pipeline (ip_filter, conn_limit) once; each request on it
// is a flow of the request pipeline (bans, JWT, API keys, require_auth, rate limit, route,
// round robin). The codec is codec/http1 (sans-I/O parser and serializer): heads are parsed in
// a bounded buffer, bodies are streamed in both directions without being held whole
// (Content-Length or chunked, re-framed where needed), and both sides are kept alive.
//
// Time bounds, one timer per connection: a request head must arrive within header_timeout
// (slowloris); a body or response that makes no progress for idle_timeout ends the connection.
// A backend that fails before its response head gives the client a 502 (504 on a connect
// timeout); one that dies mid-response closes the client connection, so the client sees a
// truncated message, never a wrong one. Not here: HTTP/2, TLS, upgrades (refused), caching.
#pragma once

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <rproxy/app/runtime.hpp>
#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/forwarded.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/reject.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/net/connector.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/net/listener.hpp>

#include "security.hpp"

namespace http_gateway {

using runtime = rproxy::app::runtime<config>;
using asio::ip::tcp;
using clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

/// A fixed-size receive buffer: [begin, end) is unconsumed. The parser's views point into it,
/// so it is only compacted (moved) right before a read, when no view is in use.
class recv_buffer {
public:
  explicit recv_buffer(std::size_t capacity) : data_(capacity) {}
  std::string_view view() const noexcept { return {data_.data() + b_, e_ - b_}; }
  void consume(std::size_t n) noexcept {
    b_ += n;
    if (b_ == e_) b_ = e_ = 0;
  }
  template <class Stream>
  asio::awaitable<std::error_code> read_some(Stream& s) {
    if (b_ > 0) {
      std::memmove(data_.data(), data_.data() + b_, e_ - b_);
      e_ -= b_;
      b_ = 0;
    }
    if (e_ == data_.size()) co_return std::make_error_code(std::errc::no_buffer_space);
    auto [ec, n] = co_await s.async_read_some(asio::buffer(data_.data() + e_, data_.size() - e_), use_tuple);
    e_ += n;
    co_return ec;
  }

private:
  std::vector<char> data_;
  std::size_t b_ = 0, e_ = 0;
};

/// Response fields not passed on: hop-by-hop ones (RFC 9110 §7.6.1) and those the backend's
/// Connection names. (Request fields follow http1::forward_rules.)
inline bool hop_by_hop(std::string_view name, const http1::fields_view& all) {
  return http1::is_hop_by_hop_field(name) || all.has_token("connection", name);
}

/// Is an idle backend connection still open (no EOF or stray bytes waiting)?
inline bool still_open(tcp::socket& s) {
  char c;
  const auto n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/// What the gateway shares across workers and connections.
struct shared {
  runtime* rt;
  std::shared_ptr<const config> cfg;  // limits and listen address: fixed at startup
  std::shared_ptr<security> sec;
  std::vector<connection_pipeline> conn_pipelines;  // one per worker
  std::vector<request_pipeline> req_pipelines;
  http1::limits request_limits, response_limits;
  std::size_t client_buffer = 0, backend_buffer = 0;
  std::atomic<std::uint64_t> next_id{1};
};

class connection : public std::enable_shared_from_this<connection> {
public:
  connection(std::shared_ptr<shared> sh, tcp::socket s, std::size_t worker)
      : sh_(std::move(sh)), lim_(sh_->cfg->limits), client_(std::move(s)), backend_(client_.get_executor()),
        timer_(client_.get_executor()), in_(sh_->client_buffer), bin_(sh_->backend_buffer),
        cp_(&sh_->conn_pipelines[worker]), rp_(&sh_->req_pipelines[worker]), guard_(sh_->rt->drain().track()) {}

  static void start(std::shared_ptr<shared> sh, tcp::socket s, std::size_t worker) {
    auto c = std::make_shared<connection>(std::move(sh), std::move(s), worker);
    asio::co_spawn(c->client_.get_executor(), c->watchdog(), asio::detached);
    asio::co_spawn(c->client_.get_executor(), c->run(), asio::detached);
  }

private:
  // ---- time bounds: one deadline, one timer, checked by a watchdog coroutine --------------
  // While the connection waits for a request between others (idle_), the watchdog also looks
  // every 250 ms for a drain (SIGTERM): an idle keep-alive connection is closed at once.
  void arm(clock::duration d) {
    deadline_ = clock::now() + d;
    if (deadline_ < timer_.expiry()) timer_.expires_at(deadline_);  // wakes the watchdog early
  }
  asio::awaitable<void> watchdog() {
    auto self = shared_from_this();
    while (!done_) {
      const auto now = clock::now();
      if (now >= deadline_ || (idle_ && sh_->rt->drain().draining())) {
        timed_out_ = true;
        deadline_ = clock::time_point::max();
        std::error_code ignored;
        client_.cancel(ignored);
        backend_.cancel(ignored);
      }
      timer_.expires_at(idle_ ? std::min(deadline_, now + std::chrono::milliseconds(250)) : deadline_);
      co_await timer_.async_wait(use_tuple);
    }
  }

  template <class Buffers>
    requires asio::is_const_buffer_sequence<Buffers>::value
  asio::awaitable<std::error_code> write(tcp::socket& s, const Buffers& b) {
    arm(lim_.idle_timeout);
    auto [ec, n] = co_await asio::async_write(s, b, use_tuple);
    (&s == &client_ ? ctx_bytes_out_ : ctx_bytes_up_) += n;
    co_return ec;
  }
  asio::awaitable<std::error_code> write(tcp::socket& s, std::string_view text) {
    co_return co_await write(s, asio::buffer(text.data(), text.size()));
  }
  /// A piece of a body, as one chunk when the peer gets chunked framing, else as it is.
  template <class Data>
  asio::awaitable<std::error_code> write_body(tcp::socket& s, const Data& data, bool chunked) {
    if (!chunked) co_return co_await write(s, asio::buffer(data.data(), data.size()));
    const http1::chunk_header ch(data.size());
    const std::array<asio::const_buffer, 3> chunk{asio::buffer(ch.view().data(), ch.view().size()),
                                                  asio::buffer(data.data(), data.size()),
                                                  asio::buffer(http1::crlf.data(), 2)};
    co_return co_await write(s, chunk);
  }

  /// Answers and ends the connection, reading (and dropping) what the client still sends for
  /// a moment, so the answer is not lost to a reset.
  asio::awaitable<void> answer_and_close(std::string_view response) {
    if (!co_await write(client_, response)) {
      std::error_code ec;
      client_.shutdown(tcp::socket::shutdown_send, ec);
      arm(std::chrono::seconds(2));
      std::array<char, 4096> sink;
      for (std::size_t total = 0; total < (1u << 20);) {
        auto [rec, n] = co_await client_.async_read_some(asio::buffer(sink), use_tuple);
        if (rec) break;
        total += n;
      }
    }
  }

  // ---- one connection ----------------------------------------------------------------------
  asio::awaitable<void> run() {
    auto self = shared_from_this();
    auto ctx = cp_->make_context();
    fill(ctx);
    if (auto v = cp_->accept(ctx); !v.is_next()) {
      if (v.is_reject()) co_await answer_and_close(http1::make_reject_response(v.reason()));
    } else {
      try {  // a bug in one connection must not stop the worker (io_pool stops on a throw)
        http1::request_parser parser(sh_->request_limits);
        while (co_await serve_request(parser)) {
        }
      } catch (const std::exception& e) {
        sh_->rt->log().error("connection failed", {{"error", e.what()}});
      }
    }
    std::error_code ignored;
    client_.close(ignored);
    backend_.close(ignored);
    done_ = true;
    timer_.cancel();
    cp_->close(ctx, {});
  }

  template <class Ctx>
  void fill(Ctx& ctx) {
    std::error_code ec;
    ctx.id = sh_->next_id.fetch_add(1, std::memory_order_relaxed);
    ctx.client = client_.remote_endpoint(ec);
    ctx.local = client_.local_endpoint(ec);
    ctx.started = clock::now();
  }

  /// Reads a request head. nullopt: the connection is over (closed, timed out, bad request).
  asio::awaitable<bool> read_head(http1::request_parser& p) {
    arm(lim_.header_timeout);
    for (;;) {
      auto r = p.parse(in_.view());
      switch (r.what) {
        case http1::event::head: head_bytes_ = r.consumed; co_return true;
        case http1::event::need_more: {
          in_.consume(r.consumed);
          const bool started = !in_.view().empty();
          idle_ = !started;
          if (idle_) timer_.expires_after(std::chrono::milliseconds(250));  // watchdog: poll for a drain
          auto ec = co_await in_.read_some(client_);
          idle_ = false;
          if (ec) {
            if (timed_out_ && started) {
              timed_out_ = false;
              co_await answer_and_close(http1::make_error_response(408));
            } else if (ec == asio::error::eof) {
              if (p.finish().what == http1::event::error) co_await answer_and_close(http1::make_error_response(400));
            }
            co_return false;
          }
          break;
        }
        case http1::event::error:
          co_await answer_and_close(http1::make_error_response(http1::status_for(r.error)));
          co_return false;
        default: co_return false;  // end_of_stream
      }
    }
  }

  /// One request, from head to the end of its response. True: read the next one.
  asio::awaitable<bool> serve_request(http1::request_parser& p) {
    if (!co_await read_head(p)) co_return false;
    const auto& head = p.head();
    const auto info = p.info();
    const bool has_body = info.chunked || info.content_length > 0;
    if (head.method == "CONNECT" || info.upgrade) {
      co_await answer_and_close(http1::make_error_response(501, "upgrades and CONNECT are not supported"));
      co_return false;
    }

    auto ctx = rp_->make_context();
    fill(ctx);
    ctx_bytes_in_ = ctx_bytes_out_ = ctx_bytes_up_ = 0;
    http1::request_view req{head};
    rproxy::verdict v = rp_->accept(ctx);
    if (v.is_next()) v = rp_->hello(ctx, req);
    if (v.is_next()) v = rp_->route(ctx);
    const bool client_keep = p.keep_alive() && !sh_->rt->drain().draining();
    if (!v.is_next()) {
      http1::fields extra;
      http1::set_rendered_fields(extra, ctx.template state<mw::rate_limit>().headers);
      const bool keep = client_keep && !has_body;
      auto reply = http1::make_reject_response(v.is_reject() ? v.reason() : rproxy::reject_reason{rproxy::reject_code::internal},
                                               extra, {.keep_alive = keep, .head_request = head.method == "HEAD"});
      in_.consume(head_bytes_);
      if (keep) {
        keep_going_ = !co_await write(client_, reply) && p.parse(in_.view()).what == http1::event::message_complete;
      } else {
        co_await answer_and_close(reply);
        keep_going_ = false;
      }
      rp_->close(ctx, {});
      co_return keep_going_;
    }

    // Upstream request head: the client's fields as http1::forward_rules allow (no hop-by-hop,
    // claim, '_' or forwarding names: a client cannot forge X-User), plus the verified claims
    // and the forwarding fields (extended only for a trusted proxy).
    http1::request_head up{std::string(head.method), std::string(head.target)};
    const auto& fwd = ctx.template state<mw::jwt_auth>().forward_headers;
    http1::copy_forwarded_fields(head.fields, up.fields, sh_->sec->forward_rules);
    for (const auto& [name, value] : fwd)
      if (http1::is_valid_field_value(value)) up.fields.add(name, value);
    const std::string peer = ctx.client.address().to_string();
    http1::add_forwarding_fields(up.fields, head.fields,
                                 {.peer = peer, .host = head.fields.find("host").value_or(""), .proto = "http",
                                  .trusted = sh_->sec->trusted(ctx.client.address())});
    if (!head.fields.contains("host")) up.fields.add("Host", ctx.backend->address().to_string());
    request_connection_.clear();  // what the trailer rules need of the head, which goes next
    for (const auto& f : head.fields)
      if (http1::detail::iequals(f.name, "connection")) request_connection_.add(f.name, f.value);
    if (info.chunked) http1::set_chunked(up.fields);
    else if (has_body) http1::set_content_length(up.fields, info.content_length);
    const std::string method(head.method);
    std::string up_head = http1::serialize(up);
    in_.consume(head_bytes_);  // the head's views are not used past this point
    // (the parser reports no expectation from an HTTP/1.0 client: it would not know a 100)
    if (info.expect_continue && has_body) co_await write(client_, std::string_view("HTTP/1.1 100 Continue\r\n\r\n"));

    std::error_code ec = co_await exchange(ctx, p, up_head, method, has_body, info.chunked);
    const bool ok = !ec && !response_broken_;
    ctx.bytes_from_client = ctx_bytes_in_;
    ctx.bytes_to_client = ctx_bytes_out_;
    rp_->close(ctx, ec);
    co_return ok && client_keep && response_keep_;
  }

  /// Connects (or reuses the idle backend connection), forwards the request and streams the
  /// response back. Retries a connect that failed retry-safe, on the next backend.
  template <class Ctx>
  asio::awaitable<std::error_code> exchange(Ctx& ctx, http1::request_parser& p, const std::string& up_head,
                                            const std::string& method, bool has_body, bool chunked) {
    response_broken_ = false;
    response_keep_ = true;
    std::error_code ec;
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (attempt > 0 && !rp_->route(ctx).is_next()) break;
      const bool reuse = backend_.is_open() && idle_backend_ == *ctx.backend && still_open(backend_);
      if (!reuse) {
        std::error_code ignored;
        backend_.close(ignored);
        auto [cec, s] = co_await rproxy::net::async_connect(client_.get_executor(), *ctx.backend, lim_.connect_timeout,
                                                            use_tuple);
        if (cec) {
          ec = cec;
          if (cec == rproxy::condition::retry_safe) continue;
          break;
        }
        backend_ = std::move(s);
        idle_backend_ = *ctx.backend;
      }
      ec = co_await write(backend_, std::string_view(up_head));
      if (ec && reuse && !has_body) {  // the idle connection died under us: once more, fresh
        std::error_code ignored;
        backend_.close(ignored);
        --attempt;
        continue;
      }
      if (ec) break;
      co_return co_await forward(ctx, p, method, chunked);
    }
    std::error_code ignored;
    backend_.close(ignored);
    const unsigned status = ec == rproxy::net::error::connect_timeout ? 504 : 502;
    co_await answer_and_close(http1::make_error_response(status));
    response_keep_ = false;
    co_return ec ? ec : make_error_code(rproxy::net::error::no_endpoints);
  }

  /// Request body up, response down.
  template <class Ctx>
  asio::awaitable<std::error_code> forward(Ctx& ctx, http1::request_parser& p, const std::string& method,
                                           bool chunked) {
    using rproxy::net::error;
    // 1. the request body (decoded by the parser, re-framed for the backend)
    for (bool complete = false; !complete;) {
      arm(lim_.idle_timeout);
      auto r = p.parse(in_.view());
      switch (r.what) {
        case http1::event::body: {
          const auto wec = co_await write_body(backend_, r.data, chunked);
          ctx_bytes_in_ += r.data.size();
          in_.consume(r.consumed);
          if (wec) co_return co_await fail_before_response(make_error_code(error::backend_failed));
          break;
        }
        case http1::event::need_more:
          in_.consume(r.consumed);
          if (auto rec = co_await in_.read_some(client_)) {
            response_broken_ = true;  // the client left mid-body: nothing to answer
            co_return rproxy::net::classify(rec, rproxy::net::side::downstream);
          }
          break;
        case http1::event::message_complete: {
          if (chunked) {
            std::string last;  // request trailers: only those the rules allow (none by default)
            http1::append_last_chunk(last, http1::forwarded_trailers(request_connection_, p.trailers(), sh_->sec->forward_rules));
            if (co_await write(backend_, std::string_view(last)))
              co_return co_await fail_before_response(make_error_code(error::backend_failed));
          }
          in_.consume(r.consumed);
          complete = true;
          break;
        }
        case http1::event::error:  // body too large, bad chunk: the backend got half a request
          co_return co_await fail_before_response({}, http1::status_for(r.error));
        default:
          co_return co_await fail_before_response({}, 400);
      }
    }

    // 2. the response head (1xx interim responses are dropped)
    http1::response_parser bp(sh_->response_limits);
    bp.set_request_method(method);
    std::size_t head_size = 0;
    for (;;) {
      arm(lim_.idle_timeout);
      auto r = bp.parse(bin_.view());
      if (r.what == http1::event::head) {
        head_size = r.consumed;
        if (bp.head().status >= 200) break;
        bin_.consume(r.consumed);
        continue;
      }
      if (r.what == http1::event::message_complete) {  // end of a 1xx
        bin_.consume(r.consumed);
        continue;
      }
      if (r.what == http1::event::need_more) {
        bin_.consume(r.consumed);
        if (auto rec = co_await bin_.read_some(backend_))
          co_return co_await fail_before_response(rproxy::net::classify(rec, rproxy::net::side::upstream));
        continue;
      }
      co_return co_await fail_before_response(bp.error_code());  // malformed, 101, ...
    }
    const auto& rh = bp.head();
    const auto binfo = bp.info();
    const bool bodiless = bp.head().status == 204 || bp.head().status == 304 || method == "HEAD";
    const bool v11 = p.info().version == http1::http_version::http11;
    http1::response_head down{rh.status, std::string(rh.reason)};
    for (const auto& f : rh.fields) {
      const bool framing = http1::detail::iequals(f.name, "content-length") || http1::detail::iequals(f.name, "transfer-encoding");
      if (framing ? !bodiless : hop_by_hop(f.name, rh.fields)) continue;
      down.fields.add(f.name, f.value);
    }
    bool client_chunked = false;
    if (!bodiless) {
      if (binfo.has_content_length && !binfo.chunked) http1::set_content_length(down.fields, binfo.content_length);
      else if (v11) client_chunked = true, http1::set_chunked(down.fields);
      else response_keep_ = false;  // HTTP/1.0 client: the close ends the body
    }
    http1::set_rendered_fields(down.fields, ctx.template state<mw::rate_limit>().headers);
    if (sh_->rt->drain().draining() || !p.keep_alive()) response_keep_ = false;
    http1::set_keep_alive(down.fields, p.info().version, response_keep_);
    auto rv = rp_->response(ctx, rh);
    if (!rv.is_next()) co_return co_await fail_before_response({}, 502);
    const std::string down_head = http1::serialize(down);
    bin_.consume(head_size);  // the head's views are not used past this point
    if (co_await write(client_, std::string_view(down_head))) {
      response_broken_ = true;
      co_return make_error_code(error::client_failed);
    }

    // 3. the response body
    for (;;) {
      arm(lim_.idle_timeout);
      auto r = bp.parse(bin_.view());
      switch (r.what) {
        case http1::event::body: {
          const auto wec = co_await write_body(client_, r.data, client_chunked);
          bin_.consume(r.consumed);
          if (wec) {
            response_broken_ = true;
            co_return make_error_code(error::client_failed);
          }
          break;
        }
        case http1::event::need_more: {
          bin_.consume(r.consumed);
          auto rec = co_await bin_.read_some(backend_);
          if (rec == asio::error::eof) {
            auto f = bp.finish();
            if (f.what == http1::event::message_complete) {
              std::error_code ignored;
              backend_.close(ignored);
              if (client_chunked) co_await write(client_, std::string_view("0\r\n\r\n"));
              co_return std::error_code{};
            }
          }
          if (rec) {  // died mid-response: the client sees the connection close
            response_broken_ = true;
            std::error_code ignored;
            backend_.close(ignored);
            co_return make_error_code(error::backend_reset);
          }
          break;
        }
        case http1::event::message_complete: {
          bin_.consume(r.consumed);
          if (client_chunked) {
            std::string last;
            http1::append_last_chunk(last, bp.trailers());
            if (co_await write(client_, std::string_view(last))) {
              response_broken_ = true;
              co_return make_error_code(error::client_failed);
            }
          }
          if (!bp.keep_alive() || !bin_.view().empty()) {
            std::error_code ignored;
            backend_.close(ignored);
          }
          co_return std::error_code{};
        }
        default: {
          response_broken_ = true;
          std::error_code ignored;
          backend_.close(ignored);
          co_return bp.error_code() ? bp.error_code() : make_error_code(error::backend_failed);
        }
      }
    }
  }

  /// The backend failed before any response byte reached the client: 502 (or `status`).
  asio::awaitable<std::error_code> fail_before_response(std::error_code ec, unsigned status = 502) {
    std::error_code ignored;
    backend_.close(ignored);
    co_await answer_and_close(http1::make_error_response(status));
    response_broken_ = true;
    co_return ec;
  }

  std::shared_ptr<shared> sh_;
  const limits_config& lim_;
  tcp::socket client_;
  tcp::socket backend_;
  tcp::endpoint idle_backend_{};
  asio::steady_timer timer_;
  clock::time_point deadline_ = clock::time_point::max();
  bool timed_out_ = false;
  bool done_ = false;
  bool idle_ = false;  // waiting for the first byte of a request
  recv_buffer in_, bin_;
  connection_pipeline* cp_;
  request_pipeline* rp_;
  rproxy::app::drain_tracker::guard guard_;
  std::size_t head_bytes_ = 0;
  http1::fields request_connection_;  // the request's Connection lines (for its trailers)
  std::uint64_t ctx_bytes_in_ = 0, ctx_bytes_out_ = 0, ctx_bytes_up_ = 0;
  bool keep_going_ = false, response_broken_ = false, response_keep_ = true;
};

/// Starts the gateway on the runtime: security state, per-worker pipelines, the listener,
/// and reloads of the ban, key and API key files.
inline int serve(runtime& rt) {
  auto sh = std::make_shared<shared>();
  sh->rt = &rt;
  sh->cfg = rt.config().get();
  const config& c = *sh->cfg;
  sh->sec = std::make_shared<security>(c, rt.log());
  if (!sh->sec->sink.ok()) {
    rt.log().error("cannot open the audit file", {{"file", c.audit.file}});
    return 1;
  }
  if (!sh->sec->reload(c)) return 1;
  if (c.jwt && c.jwt->issuers.empty() && c.jwt->audiences.empty())
    rt.log().warn("jwt: neither issuers nor audiences are set: any token one of the keys signed is accepted, "
                  "whoever it was issued for");

  auto pool = std::make_shared<rproxy::balance::pool>();
  std::vector<rproxy::balance::pool::config_type> backends;
  for (const auto& b : c.backends)
    backends.push_back({b.address.to_string(), {asio::ip::make_address(b.address.host), b.address.port}, 1});
  if (auto r = pool->update(backends); !r) {
    rt.log().error("bad backends", {{"error", r.error().message()}});
    return 1;
  }
  auto families = rproxy::observe::flow_metrics::families::add_to(rt.metrics());
  static const std::string conn_label = c.name + ":connections";  // outlives every flow
  static const std::string route = c.name;
  for (std::size_t w = 0; w < rt.pool().size(); ++w) {
    sh->conn_pipelines.push_back(make_connection_pipeline(*sh->sec, families, conn_label));
    sh->req_pipelines.push_back(make_request_pipeline(*sh->sec, families, route, pool));
  }

  const auto& lim = c.limits;
  sh->request_limits.max_header_bytes = lim.max_header.bytes;
  sh->request_limits.max_header_count = lim.max_header_count;
  sh->request_limits.max_body_size = lim.max_body.bytes;
  sh->response_limits.max_header_bytes = 64 * 1024;
  sh->response_limits.max_body_size = std::numeric_limits<std::uint64_t>::max();
  sh->client_buffer = sh->request_limits.max_start_line + lim.max_header.bytes + 4 + lim.buffer_size.bytes;
  sh->backend_buffer = sh->response_limits.max_start_line + sh->response_limits.max_header_bytes + 4 + lim.buffer_size.bytes;

  auto listener = rproxy::net::listen(rt.pool(), {asio::ip::make_address(c.listen.host), c.listen.port},
                                      [sh](tcp::socket s) {
                                        connection::start(sh, std::move(s),
                                                          rproxy::observe::worker_index() % sh->req_pipelines.size());
                                      });
  if (!listener) {
    rt.log().error("cannot listen", {{"address", c.listen.to_string()}, {"error", listener.error().message()}});
    return 1;
  }
  rt.log().info("gateway listening", {{"address", c.listen.to_string()}, {"backends", c.backends.size()},
                                      {"tokens", c.jwt.has_value()}, {"keyed", c.api_keys.has_value()},
                                      {"rate_limit", c.rate_limit.has_value()}});
  auto l = std::make_shared<std::decay_t<decltype(*listener)>>(std::move(*listener));
  rt.on_stop_accepting([l] { l->close(); });
  rt.on_reload([&rt, sh](const std::shared_ptr<const config>&) {
    // Files are re-read; other settings (limits, rules, tiers) take effect on restart.
    if (sh->sec->reload(*sh->cfg)) rt.log().info("bans and keys reloaded");
  });
  return 0;
}

}  // namespace http_gateway
