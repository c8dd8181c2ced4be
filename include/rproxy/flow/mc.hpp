// rproxy/flow/mc.hpp: the Minecraft adapter of the flow driver (flow/serve.hpp).
//
//     using proto = rproxy::codec::mc::pipeline_protocol<my_flow>;
//     auto p = rproxy::make_pipeline<proto>(...stages...);
//     co_await rproxy::flow::serve(p, rproxy::flow::mc_adapter{}, std::move(socket), options);
//
// What Minecraft adds to the driver:
//   - the hello (codec/mc/hello.hpp): a legacy ping, or the handshake and then the Status
//     Request or the Login Start, with ctx.host / protocol / next / at / username filled in as
//     they are read. A lone 0xFE (or 0xFE 0x01) is settled as a legacy ping once the client
//     pauses (300 ms). A ping before any status request is answered with its pong.
//   - refusals as the client expects them: a Login Disconnect with the message, a status
//     response whose MOTD is the message, or a legacy kick (nothing before the client's state
//     is known).
//   - `replied`: ctx.reply (a status response or a legacy kick from a stage) goes to the client,
//     and a status reply is followed by the pong to the client's ping.
//   - the backend's first bytes: the hello exactly as received (the handshake re-encoded only
//     when ctx.rewrite_host is set, or to strip forwarding data a client put in it, BungeeCord
//     style, unless ctx.keep_forwarding_data), then whatever the client sent after it.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/hello.hpp>
#include <rproxy/codec/mc/legacy.hpp>
#include <rproxy/codec/mc/login.hpp>
#include <rproxy/codec/mc/protocol.hpp>
#include <rproxy/codec/mc/status.hpp>
#include <rproxy/flow/serve.hpp>
#include <rproxy/route/host.hpp>

namespace rproxy::flow {

struct mc_adapter {
  static constexpr bool reads_hello = true;
  codec::mc::hello_options limits{};

  /// One flow's hello: what it read, kept for on_hello's view and the replay.
  class reader {
  public:
    explicit reader(const codec::mc::hello_options& o) : in_(o) {}
    reader(const reader&) = delete;  // hello() points into it
    reader& operator=(const reader&) = delete;

    std::span<std::byte> prepare(std::size_t n) { return in_.prepare(n); }
    void commit(std::size_t n) { in_.commit(n); }
    void feed(std::string_view early) { in_.feed(codec::mc::as_bytes(early)); }

    /// Wait at most this for more bytes while a legacy ping may be complete.
    std::optional<std::chrono::milliseconds> settle_time() const {
      const auto u = in_.unread();
      const bool maybe_legacy = !u.empty() && u.size() <= 2 && u[0] == std::byte{0xFE} && !in_.handshake_packet();
      if (maybe_legacy) return std::chrono::milliseconds(300);
      return std::nullopt;
    }

    template <class Ctx>
    hello_step next(Ctx& ctx, bool paused) {
      namespace mc = codec::mc;
      for (;;) {
        auto ev = in_.next(paused);
        if (ev.need_more()) return hello_step::need_more();
        if (!ev) return hello_step::fail(ev.error());
        if (auto* l = std::get_if<mc::legacy_ping>(&*ev)) {
          ctx.legacy = l->kind;
          ctx.host = route::normalize_host(l->host);
          legacy_ = std::move(*l);
          return hello_step::ready();
        }
        if (auto* hs = std::get_if<mc::handshake>(&*ev)) {
          handshake_size_ = ev.size();
          auto a = hs->address();
          ctx.host = std::move(a.host);
          ctx.protocol = hs->protocol_version;
          ctx.next = hs->next_state;
          ctx.at = in_.current_state();
          continue;
        }
        if (std::holds_alternative<mc::status_request>(*ev)) return hello_step::ready();
        if (auto* ls = std::get_if<mc::login_start>(&*ev)) {
          ctx.identity = ls->username;
          login_ = std::move(*ls);
          return hello_step::ready();
        }
        if (auto* ping = std::get_if<mc::ping_request>(&*ev)) {  // before any status request
          mc::bytes out;
          mc::append_pong(out, ping->payload);
          return hello_step::answer(std::string(mc::as_chars(out)));
        }
      }
    }

    /// The message of on_hello (valid once next() said ready).
    const codec::mc::hello& hello() {
      view_ = {in_.handshake_packet() ? &*in_.handshake_packet() : nullptr, login_ ? &*login_ : nullptr,
               legacy_ ? &*legacy_ : nullptr};
      return view_;
    }

    codec::mc::hello_reader& codec() noexcept { return in_; }
    const codec::mc::hello_reader& codec() const noexcept { return in_; }
    std::size_t handshake_size() const noexcept { return handshake_size_; }

  private:
    codec::mc::hello_reader in_;
    std::optional<codec::mc::legacy_ping> legacy_;
    std::optional<codec::mc::login_start> login_;
    std::size_t handshake_size_ = 0;
    codec::mc::hello view_{};
  };

  reader make_reader() const { return reader(limits); }

  /// The bytes that tell a client it was refused, in the state it reached ("" if none applies).
  template <class Ctx>
  std::string render(const Ctx& ctx, const reject_reason& why) const {
    namespace mc = codec::mc;
    mc::bytes b;
    if (ctx.legacy) {
      mc::legacy_status st;
      st.motd = why.message.empty() ? std::string(mc::default_reject_message(why.code)) : std::string(why.message);
      st.version_name = "rproxy";
      b = mc::make_legacy_kick(*ctx.legacy, st);
    } else if (ctx.at == mc::state::status || ctx.at == mc::state::login) {
      b = mc::make_disconnect(ctx.at, why);
    }
    return std::string(mc::as_chars(b));
  }

  /// After `replied`: the stage's answer, then (status) the pong to the client's ping.
  template <class Ctx>
  asio::awaitable<std::error_code> answer(asio::ip::tcp::socket& client, Ctx& ctx, reader& r, const options& o) const {
    namespace mc = codec::mc;
    if (auto ec = co_await detail::send(client, mc::as_chars(ctx.reply))) co_return ec;
    if (ctx.legacy || ctx.at != mc::state::status) co_return std::error_code{};
    auto step = co_await detail::read_hello(client, r, ctx, std::chrono::steady_clock::now() + o.hello_timeout);
    if (step.what == hello_step::kind::answer) co_return co_await detail::send(client, step.bytes);
    co_return std::error_code{};  // no ping (or not in time): the answer was given
  }

  /// The hello as the backend gets it, then what the client sent after it.
  template <class Ctx>
  std::string first_bytes(const Ctx& ctx, const reader& r) const {
    namespace mc = codec::mc;
    const auto& in = r.codec();
    const auto replay = in.replay();
    const auto& sent = in.handshake_packet();
    const bool strip = sent && !ctx.keep_forwarding_data && mc::has_forwarding_data(*sent);
    std::string out;
    if (sent && (!ctx.rewrite_host.empty() || strip)) {
      mc::handshake hs_out = strip ? mc::without_forwarding_data(*sent) : *sent;
      if (!ctx.rewrite_host.empty()) hs_out = mc::with_host(hs_out, ctx.rewrite_host);
      mc::bytes hs;
      mc::append_handshake(hs, hs_out);
      out.append(mc::as_chars(hs));
      out.append(mc::as_chars(replay.subspan(r.handshake_size())));
    } else {
      out.append(mc::as_chars(replay));
    }
    out.append(mc::as_chars(in.unread()));
    return out;
  }
};

}  // namespace rproxy::flow
