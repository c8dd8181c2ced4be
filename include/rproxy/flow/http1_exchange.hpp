// rproxy/flow/http1_exchange.hpp: the upstream side of the HTTP/1.1 adapter (flow/http1.hpp,
// which includes this header at its end): the request head the backend gets, and one
// request's exchange with its backend.
//
//   - the backend's first bytes: the upstream request head, built by upstream_head() (the one
//     place where forwarding rules live: hop-by-hop fields, X-Forwarded-For, the stages'
//     ctx.request_fields, framing). The HTTP/2 flow builds its backend heads with it too.
//   - the exchange: the request body goes up with on_message per body chunk, re-framed
//     (Content-Length or chunked); the response head runs on_response (1xx interim responses
//     are dropped; HEAD, 204 and 304 have no body); the response body comes down, streamed
//     with backpressure, chunked for an HTTP/1.1 client when the backend's framing is unknown
//     or a stage transforms the body (ctx.response_body_filtered: each piece goes through the
//     pipeline's on_response_body hooks; a pipeline without such a hook keeps the plain relay).
//     Every wait is bounded by idle_timeout (no progress), through net::with_deadline. A backend that fails before the
//     response head gives a 502; one that dies mid-body closes the client connection (the
//     client sees a truncated message, never a wrong one). Both connections are kept alive when
//     both sides allow it; a stale kept backend connection is retried once, fresh, when nothing
//     of the request was lost.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <rproxy/codec/http1/detail/chars.hpp>
#include <rproxy/codec/http1/forward.hpp>
#include <rproxy/codec/http1/forwarded.hpp>
#include <rproxy/codec/http1/message.hpp>
#include <rproxy/codec/http1/parser.hpp>
#include <rproxy/codec/http1/serializer.hpp>
#include <rproxy/codec/http1/status.hpp>
#include <rproxy/core/error.hpp>
#include <rproxy/flow/http1.hpp>
#include <rproxy/flow/http1_io.hpp>
#include <rproxy/flow/options.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/health/retry_on.hpp>
#include <rproxy/net/error.hpp>
#include <rproxy/pipeline/basic_pipeline.hpp>

namespace rproxy::flow {

/// The request head the backend gets (and the request's Connection lines, kept for its trailers).
template <class Ctx>
std::string http1_adapter::first_bytes(const Ctx& ctx, reader& r) const {
  r.connection_.clear();
  for (const auto& f : r.parser().head().fields)
    if (codec::http1::detail::iequals(f.name, "connection")) r.connection_.add(f.name, f.value);
  build_upstream_head(r.up_, ctx, r.parser().head(), r.parser().info(), r.upgrade_);
  return codec::http1::serialize(r.up_);
}

/// The upstream request head: the client's fields as codec/http1/forward.hpp's rules allow
/// (no hop-by-hop, Connection-listed, forwarding or '_' names) minus those a stage owns
/// (ctx.request_fields), plus the stages' fields, the forwarding fields (the client's extended
/// only for a trusted proxy), Host if missing and the body's framing; for an upgrade
/// (`upgrade`: the protocols passed on), Connection: upgrade and Upgrade. The one place where
/// forwarding rules apply to a request head.
template <class Ctx>
std::string http1_adapter::upstream_head(const Ctx& ctx, const codec::http1::request_head_view& head,
                                         const codec::http1::message_info& info, std::string_view upgrade) const {
  codec::http1::request_head up;
  build_upstream_head(up, ctx, head, info, upgrade);
  return codec::http1::serialize(up);
}

/// The same, built in `up` (a head kept across requests: its storage is reused).
template <class Ctx>
void http1_adapter::build_upstream_head(codec::http1::request_head& up, const Ctx& ctx,
                                        const codec::http1::request_head_view& head,
                                        const codec::http1::message_info& info, std::string_view upgrade) const {
  namespace http1 = codec::http1;
  up.method.assign(head.method);
  up.target.assign(head.target);
  up.version = http1::http_version::http11;
  up.fields.clear();
  if constexpr (requires { ctx.upstream_target; })
    if (!ctx.upstream_target.empty()) up.target = ctx.upstream_target;
  const auto rules = forward_rules();
  for (const auto& f : head.fields) {
    if (http1::request_field_fate(f.name, head.fields, rules) != http1::field_fate::forward) continue;
    if constexpr (requires { ctx.request_fields; })
      if (ctx.request_fields.contains(f.name)) continue;
    up.fields.add(f.name, f.value);
  }
  if constexpr (requires { ctx.request_fields; }) ctx.request_fields.apply(up.fields);
  const std::string peer = ctx.client.address().to_string();
  http1::add_forwarding_fields(up.fields, head.fields,
                               {.peer = peer, .host = head.fields.find("host").value_or(""), .proto = ctx.tls ? "https" : "http",
                                .trusted = trusted_proxy(ctx.client.address())});
  if (!head.fields.contains("host") && ctx.backend) up.fields.add("Host", ctx.backend->address().to_string());
  if (info.chunked) http1::set_chunked(up.fields);
  else if (info.content_length > 0) http1::set_content_length(up.fields, info.content_length);
  if (!upgrade.empty()) {
    up.fields.add("Connection", "upgrade");
    up.fields.add("Upgrade", upgrade);
  }
}

/// One request's exchange: the head (`first`) and the body up, the response down.
template <class Pipeline, class Client>
asio::awaitable<exchange_result> http1_adapter::exchange(Pipeline& p, typename Pipeline::context_type& ctx,
                                                         Client& client, backend_stream& backend,
                                                         const std::string& first, const options&, reader& r,
                                                         bool reused) const {
  namespace http1 = codec::http1;
  using net::error;
  const bool replay = std::exchange(r.replay_, false);  // a retry on another pick: the head was taken
  if (!replay) {
    r.info_ = r.parser_.info();
    r.idempotent_ = http1_detail::idempotent(r.parser_.head().method);
  }
  const auto info = r.info_;
  const bool has_body = info.chunked || info.content_length > 0;
  const bool bodiless_method = head_request(ctx);
  const bool idempotent = r.idempotent_;
  r.take_head();
  auto wait = [&] { return step_timeout(ctx); };
  exchange_result out;
  bool body_read = false;  // something of the body was taken from the client

  // A failure the flow's retry policy lets go to another pick (ctx.retry_on): only for an
  // idempotent request without a body, so sending it again loses and repeats nothing.
  auto retry_other = [&](std::uint8_t bit) {
    if constexpr (requires { ctx.retry_on; }) return idempotent && !has_body && (ctx.retry_on & bit) != 0;
    else return false;
  };
  // The backend failed before any response byte reached the client: once more on a fresh
  // connection when the kept one was stale and nothing was lost; on another backend when the
  // retry policy allows it (a reset, not a timeout); else 502 (or `status`).
  auto fail_before_response = [&](std::error_code ec, unsigned status = 502,
                                  bool stale = false) -> asio::awaitable<exchange_result> {
    if (reused && stale && !body_read) {
      r.replay_ = true;  // (the next exchange sends the same head on a fresh connection)
      co_return exchange_result{ec, false, false, true};
    }
    if (status == 502 && ec == condition::upstream && retry_other(health::retry_on::reset)) {
      r.replay_ = true;
      co_return exchange_result{ec, false, false, false, true};
    }
    co_await http1_detail::answer_and_close(client, error_response(ctx, status, ec), idle_timeout);
    co_return exchange_result{ec ? ec : make_error_code(error::backend_failed)};
  };

  // 1. The head, then the body (decoded by the parser, re-framed for the backend).
  if (auto ec = co_await http1_detail::write_for(backend, std::string_view(first), wait()))
    co_return co_await fail_before_response(net::classify(ec, net::side::upstream), 502, ec != error::idle_timeout);
  if (info.expect_continue && has_body)
    if (co_await http1_detail::write_for(client, std::string_view("HTTP/1.1 100 Continue\r\n\r\n"), wait()))
      co_return exchange_result{make_error_code(error::client_failed)};
  for (bool complete = !has_body; !complete;) {
    auto pr = r.parser_.parse(r.in_.view());
    switch (pr.what) {
      case http1::event::body: {
        body_read = true;
        ctx.bytes_from_client += pr.data.size();
        if (auto v = co_await run_phase<phase::message>(p, ctx, std::string_view(pr.data)); !v.is_next()) {
          const auto why = v.is_reject() ? v.reason() : reject_reason{reject_code::internal};
          ctx.rejected = why;
          co_await http1_detail::answer_and_close(client, render(ctx, why), idle_timeout);
          co_return exchange_result{};
        }
        const auto wec = co_await http1_detail::write_body(backend, pr.data, info.chunked, wait());
        r.in_.consume(pr.consumed);
        if (wec) co_return co_await fail_before_response(make_error_code(error::backend_failed));
        break;
      }
      case http1::event::need_more: {
        r.in_.consume(pr.consumed);
        auto [rec, n] = co_await http1_detail::read_for(client, r.in_.prepare(buffer_size), wait());
        if (rec) co_return exchange_result{net::classify(rec, net::side::downstream)};  // the client left mid-body
        r.in_.commit(n);
        break;
      }
      case http1::event::message_complete: {
        r.in_.consume(pr.consumed);
        if (info.chunked) {
          std::string last;  // request trailers: only those the rules allow (none by default)
          http1::append_last_chunk(last, http1::forwarded_trailers(r.connection_, r.parser_.trailers(), forward_rules()));
          if (co_await http1_detail::write_for(backend, std::string_view(last), wait()))
            co_return co_await fail_before_response(make_error_code(error::backend_failed));
        }
        complete = true;
        break;
      }
      case http1::event::error:  // body too large, bad chunk: the backend got half a request
        body_read = true;
        co_return co_await fail_before_response(r.parser_.error_code(), http1::status_for(pr.error));
      default:
        body_read = true;
        co_return co_await fail_before_response({}, 400);
    }
  }
  if (!has_body && !replay) {  // a bodiless request: the parser's message_complete (or upgrade) is still to be taken
    auto pr = r.parser_.parse(r.in_.view());
    if (pr.what == http1::event::message_complete || pr.what == http1::event::upgrade) r.in_.consume(pr.consumed);
    r.parser_.resume();  // after an upgrade request: HTTP again unless the backend switches (a 101 ends parsing)
  }

  // 2. The response head (1xx interim responses are dropped).
  auto& bin = r.bin_;
  auto& bp = r.bparser_;
  bp.reset();
  bp.set_request_method(bodiless_method ? std::string_view("HEAD") : std::string_view("GET"));
  std::size_t head_size = 0;
  for (;;) {
    auto pr = bp.parse(bin.view());
    if (pr.what == http1::event::head) {
      head_size = pr.consumed;
      if (bp.head().status == 101 && !r.upgrade_.empty())  // the switch the client asked for
        co_return co_await switch_protocols(p, ctx, client, backend, r, bp, head_size);
      if (bp.head().status >= 200) break;
      bin.consume(pr.consumed);
      continue;
    }
    if (pr.what == http1::event::message_complete) {  // the end of a 1xx
      bin.consume(pr.consumed);
      continue;
    }
    if (pr.what == http1::event::need_more) {  // (all the room: the body that came with the head too)
      bin.consume(pr.consumed);
      auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(), wait());
      if (rec || n == 0) {  // a kept connection the backend closed: retried when that is safe
        const bool stale = bin.view().empty() && idempotent && rec && rec != error::idle_timeout;
        bin.consume(bin.view().size());
        co_return co_await fail_before_response(rec ? net::classify(rec, net::side::upstream) : make_error_code(error::backend_reset),
                                                rec == error::idle_timeout ? 504 : 502, stale);
      }
      bin.commit(n);
      continue;
    }
    bin.consume(bin.view().size());
    co_return co_await fail_before_response(bp.error_code() ? bp.error_code() : make_error_code(error::backend_failed));
  }
  const auto& rh = bp.head();
  if ((rh.status == 502 && retry_other(health::retry_on::status_502)) || (rh.status == 503 && retry_other(health::retry_on::status_503))) {
    bin.consume(bin.view().size());  // dropped: the request goes to another pick (the backend's failure)
    r.replay_ = true;
    co_return exchange_result{make_error_code(error::backend_failed), false, false, false, true};
  }
  const auto binfo = bp.info();
  const bool bodiless = rh.status == 204 || rh.status == 304 || bodiless_method;
  const bool v11 = info.version == http1::http_version::http11;
  // on_response before the head is built: its stages' response_fields apply to it, and a stage
  // that transforms the body (ctx.response_body_filtered) changes its framing.
  if (auto v = co_await run_phase<phase::response>(p, ctx, rh); !v.is_next()) {
    if (v.is_reject()) ctx.rejected = v.reason();
    bin.consume(bin.view().size());
    co_await http1_detail::answer_and_close(client, error_response(ctx, 502), idle_timeout);
    co_return exchange_result{};
  }
  const bool filtered = !bodiless && body_filtered<Pipeline>(ctx);
  bool keep = info.keep_alive && !(drain != nullptr && drain->draining());
  auto& down = r.down_;
  down.status = rh.status;
  down.reason.assign(rh.reason);
  down.version = http1::http_version::http11;
  down.fields.clear();
  for (const auto& f : rh.fields) {
    using http1::detail::iequals;
    const bool framing = iequals(f.name, "content-length") || iequals(f.name, "transfer-encoding");
    if (framing ? !bodiless : http1_detail::hop_by_hop(f.name, rh.fields)) continue;
    down.fields.add(f.name, f.value);
  }
  bool client_chunked = false;
  if (!bodiless) {
    if (binfo.has_content_length && !binfo.chunked && !filtered) http1::set_content_length(down.fields, binfo.content_length);
    else if (v11) client_chunked = true, http1::set_chunked(down.fields);
    else keep = false;  // an HTTP/1.0 client: the close ends the body
  }
  if constexpr (requires { ctx.response_fields; }) ctx.response_fields.apply(down.fields);
  http1::set_keep_alive(down.fields, info.version, keep);
  r.down_bytes_.clear();
  http1::serialize_to(r.down_bytes_, down);
  const std::string& down_head = r.down_bytes_;
  sent(ctx, rh.status);
  bin.consume(head_size);  // the head's views are not used past this point
  // The head goes out with the first piece of the body that is already here (one gathered
  // write), or alone before the gateway waits for the backend (so streams are not held back).
  std::string_view head_out = down_head;
  auto send_head = [&]() -> asio::awaitable<std::error_code> {
    const auto h = std::exchange(head_out, std::string_view());
    ctx.bytes_to_client += h.size();
    co_return h.empty() ? std::error_code{} : co_await http1_detail::write_for(client, h, wait());
  };

  // 3. The response body, streamed: one read, one write.
  for (;;) {
    auto pr = bp.parse(bin.view());
    switch (pr.what) {
      case http1::event::body: {
        std::string_view piece = pr.data;
        if constexpr (Pipeline::filters_response_body)
          if (filtered) {
            auto t = p.response_body(ctx, piece, false);
            if (!t) co_return exchange_result{t.error()};  // the client sees the connection close
            piece = *t;
          }
        std::error_code wec;
        if (head_out.empty()) {
          wec = co_await http1_detail::write_body(client, piece, client_chunked, wait());
        } else if (!piece.empty()) {  // head + body (+ chunk framing) in one write
          const http1::chunk_header ch(piece.size());
          const std::string_view pre = client_chunked ? ch.view() : std::string_view();
          const std::string_view post = client_chunked ? std::string_view(http1::crlf.data(), 2) : std::string_view();
          const std::array<asio::const_buffer, 4> parts{asio::buffer(head_out.data(), head_out.size()), asio::buffer(pre.data(), pre.size()),
                                                        asio::buffer(piece.data(), piece.size()), asio::buffer(post.data(), post.size())};
          ctx.bytes_to_client += head_out.size();
          head_out = {};
          wec = co_await http1_detail::write_for(client, parts, wait());
        }  // (an empty piece with the head pending: the head waits for the next piece, or goes before a read)
        ctx.bytes_to_client += piece.size();
        bin.consume(pr.consumed);
        if (wec) co_return exchange_result{make_error_code(error::client_failed)};
        break;
      }
      case http1::event::need_more: {
        bin.consume(pr.consumed);
        if (co_await send_head()) co_return exchange_result{make_error_code(error::client_failed)};
        auto [rec, n] = co_await http1_detail::read_for(backend, bin.prepare(buffer_size), wait());
        if (rec == asio::error::eof && bp.finish().what == http1::event::message_complete) {  // until close
          if (filtered)  // (no coroutine call on the plain path)
            if (auto ec = co_await end_filtered_body(p, ctx, client, client_chunked, wait())) co_return exchange_result{ec};
          if (client_chunked && co_await http1_detail::write_for(client, std::string_view("0\r\n\r\n"), wait()))
            co_return exchange_result{make_error_code(error::client_failed)};
          co_return exchange_result{{}, keep && client_chunked, false};
        }
        if (rec) {  // died mid-response: the client sees the connection close
          bin.consume(bin.view().size());
          co_return exchange_result{rec == error::idle_timeout ? make_error_code(error::idle_timeout)
                                                                : make_error_code(error::backend_reset)};
        }
        bin.commit(n);
        break;
      }
      case http1::event::message_complete: {
        bin.consume(pr.consumed);
        if (filtered) {
          if (co_await send_head()) co_return exchange_result{make_error_code(error::client_failed)};
          if (auto ec = co_await end_filtered_body(p, ctx, client, client_chunked, wait())) co_return exchange_result{ec};
        }
        std::string last;
        if (client_chunked) http1::append_last_chunk(last, bp.trailers());
        if (!head_out.empty() || !last.empty()) {  // a bodiless response, or the end of a chunked one
          const std::array<asio::const_buffer, 2> parts{asio::buffer(head_out.data(), head_out.size()), asio::buffer(last)};
          ctx.bytes_to_client += head_out.size();
          head_out = {};
          if (co_await http1_detail::write_for(client, parts, wait())) co_return exchange_result{make_error_code(error::client_failed)};
        }
        out.keep_client = keep;
        out.keep_backend = bp.keep_alive() && bin.view().empty();
        bin.consume(bin.view().size());
        co_return out;
      }
      default:  // a malformed body: the client gets what came before it (the head), then the close
        bin.consume(bin.view().size());
        (void)co_await send_head();
        co_return exchange_result{bp.error_code() ? bp.error_code() : make_error_code(error::backend_failed)};
    }
  }
}

/// Whether a stage transforms this flow's response body.
template <class Pipeline, class Ctx>
bool http1_adapter::body_filtered(const Ctx& ctx) {
  if constexpr (Pipeline::filters_response_body && requires { ctx.response_body_filtered; }) return ctx.response_body_filtered;
  else return false;
}
/// A transformed body's end: the transforms' last bytes (a gzip trailer), as one more piece.
template <class Pipeline, class Client>
asio::awaitable<std::error_code> http1_adapter::end_filtered_body(Pipeline& p, typename Pipeline::context_type& ctx,
                                                                  Client& client, bool chunked,
                                                                  std::chrono::milliseconds wait) {
  if constexpr (Pipeline::filters_response_body) {
    auto t = p.response_body(ctx, {}, true);
    if (!t) co_return t.error();
    ctx.bytes_to_client += t->size();
    if (co_await http1_detail::write_body(client, *t, chunked, wait)) co_return make_error_code(net::error::client_failed);
  }
  co_return std::error_code{};
}

}  // namespace rproxy::flow
