// rproxy/cluster/redis_link.hpp: one connection to Redis, plain TCP or TLS, on an Asio
// executor. hiredis is used for what it is good at and nothing else: redisFormatCommandArgv
// writes a command in the Redis protocol, and a redisReader turns the bytes read into replies.
// The socket, the TLS stream and the waits are ours.
//
//     auto l = std::make_shared<detail::redis_link>(ex, tls_ctx_or_null, "redis.internal", hooks);
//     l->open(endpoint);
//     l->send({"PING"}, &on_pong, priv);   // written in the next loop pass, with any other
//                                          // command sent before it (one write: pipelining)
//
// Why not hiredis' own async API: hiredis 0.14 (Debian bookworm) reads and writes its socket
// itself and has no TLS (hiredis_ssl came in 1.0). TLS needs the bytes to pass through
// OpenSSL, so the transport is Asio's (asio::ssl::stream over the same socket type the rest of
// the project uses, verified as net/tls_client.hpp verifies backends), and plain TCP takes the
// same path with the TLS layer left out.
//
// Replies: each one goes to the callback of the oldest command still waiting (Redis answers
// in order), or, when none waits, to hooks.push (a subscriber's messages and SUBSCRIBE
// confirmations: those commands are sent with no callback). close() calls every waiting
// callback with a null reply, in order, then tells nobody anything more.
//
// Failure: a refused connect, a TLS handshake or verification failure, a read or write error,
// EOF or bytes that are not the Redis protocol call hooks.lost(owner, link, why) once, with a
// reason fit for a log (never a command's content). The owner then closes the link.
//
// Lifetime: completion handlers hold a shared_ptr to the link, so a wait that completes after
// close() touches nothing of the owner.
#pragma once

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <asio/any_io_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/write.hpp>

#include <array>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <rproxy/net/tls_client.hpp>

namespace rproxy::cluster::detail {

class redis_link : public std::enable_shared_from_this<redis_link> {
public:
  /// A reply to a command (null: the link was closed first). `priv` is what send() was given.
  using reply_fn = void (*)(redis_link& link, const redisReply* r, void* priv);

  struct hooks {
    void* owner = nullptr;
    void (*push)(void* owner, redis_link& link, const redisReply& r) = nullptr;  ///< a reply no command waits for
    void (*lost)(void* owner, redis_link& link, std::string why) = nullptr;      ///< once, on the first failure
  };

  /// `tls` null: plain TCP. Otherwise the handshake sends SNI `name` and checks the
  /// certificate against it (an empty name: against the address connected to).
  redis_link(const asio::any_io_executor& ex, const net::tls_client_context* tls, std::string name, hooks h)
      : sock_(ex), ctx_(tls), name_(std::move(name)), hooks_(h), reader_(redisReaderCreate()) {
    if (tls != nullptr) tls_.emplace(ex, tls->context());
  }
  ~redis_link() {
    if (reader_ != nullptr) redisReaderFree(reader_);
  }
  redis_link(const redis_link&) = delete;
  redis_link& operator=(const redis_link&) = delete;

  /// The owner (null once close() has returned: a late completion finds nobody).
  void* owner() const noexcept { return detached_ ? nullptr : hooks_.owner; }
  bool is_tls() const noexcept { return tls_.has_value(); }

  /// Connects (and, with TLS, handshakes); commands sent before that are written after it.
  void open(const asio::ip::tcp::endpoint& ep) {
    if (reader_ == nullptr) return post_fail("out of memory");
    socket().async_connect(ep, [self = shared_from_this(), ep](std::error_code ec) {
      if (self->closed_) return;
      if (ec) return self->fail(ec.message());
      std::error_code ignored;
      self->socket().set_option(asio::ip::tcp::no_delay(true), ignored);  // small commands, answered at once
      if (!self->tls_) return self->connected();
      self->handshake(ep);
    });
  }

  /// Queues one command. False: the link is closed (nothing sent).
  bool send(std::span<const std::string_view> args, reply_fn fn, void* priv) {
    if (closed_) return false;
    constexpr std::size_t small = 16;
    std::array<const char*, small> argv_s{};
    std::array<std::size_t, small> lens_s{};
    std::vector<const char*> argv_v;
    std::vector<std::size_t> lens_v;
    const char** argv = argv_s.data();
    std::size_t* lens = lens_s.data();
    if (args.size() > small) {
      argv_v.resize(args.size());
      lens_v.resize(args.size());
      argv = argv_v.data();
      lens = lens_v.data();
    }
    for (std::size_t i = 0; i < args.size(); ++i) {
      argv[i] = args[i].data();
      lens[i] = args[i].size();
    }
    char* cmd = nullptr;
    const int n = redisFormatCommandArgv(&cmd, static_cast<int>(args.size()), argv, lens);
    if (n < 0 || cmd == nullptr) return false;
    out_.append(cmd, static_cast<std::size_t>(n));
    redisFreeCommand(cmd);
    if (fn != nullptr) waiting_.push_back({fn, priv});
    schedule_flush();
    return true;
  }

  /// Closes the socket (pending waits end), then calls every waiting callback with a null
  /// reply. No hook runs after this.
  void close() {
    if (closed_) return;
    closed_ = true;
    std::error_code ignored;
    socket().close(ignored);
    auto self = shared_from_this();  // a callback may drop the owner's reference
    while (!waiting_.empty()) {
      auto w = waiting_.front();
      waiting_.pop_front();
      w.fn(*this, nullptr, w.priv);
    }
    detached_ = true;
  }

private:
  struct waiter {
    reply_fn fn;
    void* priv;
  };

  asio::ip::tcp::socket& socket() { return tls_ ? tls_->next_layer() : sock_; }

  void handshake(const asio::ip::tcp::endpoint& ep) {
    if (!net::prepare_client(*tls_, *ctx_, name_, ep.address()) || !ctx_->resume(tls_->native_handle(), ep, name_))
      return fail("TLS: cannot set up the handshake");
    tls_->async_handshake(asio::ssl::stream_base::client, [self = shared_from_this()](std::error_code ec) {
      if (self->closed_) return;
      if (!ec) return self->connected();
      const auto why = net::classify_client_handshake(*self->tls_, ec);
      const auto reason = net::verify_reason(*self->tls_);
      // (OpenSSL's reason names the check that failed, never anything the client sent)
      self->fail(why == net::error::tls_verify_failed
                     ? "TLS: server certificate refused: " + std::string(reason.empty() ? "name or chain not trusted" : reason)
                     : "TLS handshake failed: " + ec.message());
    });
  }

  void connected() {
    connected_ = true;
    read();
    schedule_flush();
  }

  void schedule_flush() {
    if (!connected_ || closed_ || writing_ || flush_posted_ || out_.empty()) return;
    flush_posted_ = true;
    asio::post(sock_.get_executor(), [self = shared_from_this()] {
      self->flush_posted_ = false;
      self->write();
    });
  }

  void write() {
    if (closed_ || writing_ || out_.empty()) return;
    writing_ = true;
    wbuf_.swap(out_);
    out_.clear();
    auto done = [self = shared_from_this()](std::error_code ec, std::size_t) {
      self->writing_ = false;
      if (self->closed_) return;
      if (ec) return self->fail(io_reason(ec));
      self->wbuf_.clear();
      self->write();  // what was sent while this write ran
    };
    if (tls_) asio::async_write(*tls_, asio::buffer(wbuf_), std::move(done));
    else asio::async_write(sock_, asio::buffer(wbuf_), std::move(done));
  }

  void read() {
    auto done = [self = shared_from_this()](std::error_code ec, std::size_t n) {
      if (self->closed_) return;
      if (ec) return self->fail(ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ? "connection closed" : io_reason(ec));
      if (redisReaderFeed(self->reader_, self->rbuf_.data(), n) != REDIS_OK) return self->fail("bad reply: not the Redis protocol");
      if (!self->dispatch()) return;
      self->read();
    };
    if (tls_) tls_->async_read_some(asio::buffer(rbuf_), std::move(done));
    else sock_.async_read_some(asio::buffer(rbuf_), std::move(done));
  }

  // Every whole reply read so far, in order. False: the link was closed meanwhile.
  bool dispatch() {
    for (;;) {
      void* r = nullptr;
      if (redisReaderGetReply(reader_, &r) != REDIS_OK) {
        fail("bad reply: not the Redis protocol");
        return false;
      }
      if (r == nullptr) return true;
      const auto* rep = static_cast<const redisReply*>(r);
      if (!waiting_.empty()) {
        auto w = waiting_.front();
        waiting_.pop_front();
        w.fn(*this, rep, w.priv);
      } else if (hooks_.push != nullptr) {
        hooks_.push(hooks_.owner, *this, *rep);
      } else {
        freeReplyObject(r);
        fail("a reply no command waited for");
        return false;
      }
      freeReplyObject(r);
      if (closed_) return false;
    }
  }

  // A read or write error for the log: TLS alerts after the handshake (e.g. Redis refusing a
  // client without a certificate: "TLS: tlsv13 alert certificate required") say they are TLS.
  static std::string io_reason(const std::error_code& ec) {
    return ec.category() == asio::error::get_ssl_category() ? "TLS: " + ec.message() : ec.message();
  }

  void fail(std::string why) {
    if (closed_ || failed_) return;
    failed_ = true;
    if (hooks_.lost != nullptr) hooks_.lost(hooks_.owner, *this, std::move(why));
  }
  void post_fail(std::string why) {
    asio::post(sock_.get_executor(), [self = shared_from_this(), why = std::move(why)]() mutable { self->fail(std::move(why)); });
  }

  asio::ip::tcp::socket sock_;        // plain TCP (unused with TLS: the stream holds its own)
  std::optional<net::tls_stream> tls_;
  const net::tls_client_context* ctx_;
  std::string name_;
  hooks hooks_;
  redisReader* reader_;
  std::string out_;   // commands not yet written
  std::string wbuf_;  // the write in flight
  std::array<char, 16 * 1024> rbuf_{};
  std::deque<waiter> waiting_;
  bool connected_ = false, writing_ = false, flush_posted_ = false, closed_ = false, failed_ = false, detached_ = false;
};

}  // namespace rproxy::cluster::detail
