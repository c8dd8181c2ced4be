// rproxy/codec/mc/hello.hpp: reads what a client sends a proxy before the proxy picks a backend:
// a legacy (0xFE) ping, or the handshake and then either the status exchange (status request,
// ping) or the Login Start. Everything it returns stays byte-exact in replay(), so the proxy can
// send replay() + unread() to the backend and the backend sees exactly what the client sent.
//
//     mc::hello_reader hello;                               // 2 KiB frame limit by default
//     hello.feed(received);
//     auto ev = hello.next();                               // decode_result<hello_event>
//     if (ev.need_more()) read_more();
//     else if (ev.failed()) close(ev.error());
//     else if (auto* hs = std::get_if<mc::handshake>(&*ev)) route(hs->address().host);
//     else if (auto* ls = std::get_if<mc::login_start>(&*ev)) check_ban(ls->username);
//     ...
//     if (hello.done()) relay(hello.replay(), hello.unread());
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <variant>

#include <rproxy/codec/mc/bytes.hpp>
#include <rproxy/codec/mc/decode_result.hpp>
#include <rproxy/codec/mc/error.hpp>
#include <rproxy/codec/mc/frame.hpp>
#include <rproxy/codec/mc/handshake.hpp>
#include <rproxy/codec/mc/legacy.hpp>
#include <rproxy/codec/mc/login.hpp>
#include <rproxy/codec/mc/packet.hpp>
#include <rproxy/codec/mc/packet_reader.hpp>
#include <rproxy/codec/mc/status.hpp>

namespace rproxy::codec::mc {

/// The Status Request packet (status state, no fields).
struct status_request {
  friend bool operator==(const status_request&, const status_request&) = default;
};
/// The Ping Request packet (status state): the payload to echo in the pong.
struct ping_request {
  std::int64_t payload = 0;
  friend bool operator==(const ping_request&, const ping_request&) = default;
};

using hello_event = std::variant<legacy_ping, handshake, status_request, ping_request, login_start>;

struct hello_options {
  std::size_t max_frame_length = handshake_max_length;  ///< for the handshake and status frames
  /// For the Login Start: 1.19-1.19.2 clients may send a signing key (512 B) and its signature
  /// (4 KiB) in it.
  std::size_t max_login_length = 8192;
  handshake_options handshake{};
  bool accept_legacy_ping = true;  ///< false: a 0xFE first byte is read as a modern frame
};

class hello_reader {
public:
  explicit hello_reader(hello_options opt = {}) : opt_(opt), in_(opt.max_frame_length) {}

  void feed(byte_view data) { in_.feed(data); }
  std::span<std::byte> prepare(std::size_t n) { return in_.prepare(n); }
  void commit(std::size_t n) noexcept { in_.commit(n); }

  /// The next event. `peer_idle`: the client has stopped sending for now (settles a lone 0xFE
  /// or 0xFE 0x01, see legacy.hpp). After done(), always need_more.
  decode_result<hello_event> next(bool peer_idle = false) {
    using R = decode_result<hello_event>;
    if (err_) return R::failure(err_);
    if (done_) return R::incomplete();
    if (state_ == state::handshaking && replay_.empty() && opt_.accept_legacy_ping) {
      auto l = detect_legacy_ping(in_.unread(), peer_idle);
      if (l.need_more()) return R::incomplete();
      if (l.failed()) return fail(l.error());
      if (l.value()) {
        const auto raw = in_.unread().first(l.size());
        replay_.assign(raw.begin(), raw.end());
        in_.skip(l.size());
        done_ = true;
        return R::ok(std::move(*l.value()), l.size());
      }
    }
    auto p = in_.next();
    if (p.need_more()) return R::incomplete();
    if (p.failed()) return fail(p.error());
    const auto raw = p->raw;
    auto ev = on_packet(*p);
    if (!ev) return fail(ev.error());
    append(replay_, raw);
    return R::ok(std::move(*ev), raw.size());
  }

  /// The protocol state the client is in now.
  state current_state() const noexcept { return state_; }
  /// True once nothing more is expected before choosing a backend: after a legacy ping, a
  /// ping request, or a Login Start.
  bool done() const noexcept { return done_; }
  /// The handshake, once read.
  const std::optional<handshake>& handshake_packet() const noexcept { return hs_; }
  /// The exact bytes of everything next() returned, in order.
  byte_view replay() const noexcept { return replay_; }
  /// Bytes received after those: forward them verbatim.
  byte_view unread() const noexcept { return in_.unread(); }

private:
  result<hello_event> on_packet(const packet& p) {
    const auto unexpected = [] { return failure(make_error_code(error::unexpected_packet_id)); };
    switch (state_) {
      case state::handshaking: {
        auto hs = parse_handshake(p.body, opt_.handshake);
        if (!hs) return failure(hs.error());
        hs_ = *hs;
        state_ = hs->next_state == intent::status ? state::status : state::login;
        if (state_ == state::login) in_.set_max_length(opt_.max_login_length);
        return hello_event{std::move(*hs)};
      }
      case state::status:
        if (p.id == packet_id::status_request && !status_requested_) {
          if (auto r = parse_status_request(p.body); !r) return failure(r.error());
          status_requested_ = true;
          return hello_event{status_request{}};
        }
        if (p.id == packet_id::ping_request) {
          auto v = parse_ping(p.body);
          if (!v) return failure(v.error());
          done_ = true;
          return hello_event{ping_request{*v}};
        }
        return unexpected();
      case state::login: {
        auto ls = parse_login_start(p.body, hs_->protocol_version);
        if (!ls) return failure(ls.error());
        done_ = true;
        return hello_event{std::move(*ls)};
      }
      default: return unexpected();
    }
  }

  decode_result<hello_event> fail(std::error_code ec) {
    err_ = ec;
    return decode_result<hello_event>::failure(ec);
  }

  hello_options opt_;
  packet_reader in_;
  state state_ = state::handshaking;
  std::optional<handshake> hs_;
  bytes replay_;
  std::error_code err_{};
  bool status_requested_ = false;
  bool done_ = false;
};

}  // namespace rproxy::codec::mc
