// rproxy/cluster/hiredis_asio.hpp: drives one hiredis async context (redisAsyncContext) on an
// Asio executor: the context's socket is waited on with a posix::stream_descriptor, on the
// executor's own thread. No thread, no extra event loop.
//
//     redisAsyncContext* ac = redisAsyncConnect("127.0.0.1", 6379);
//     rproxy::cluster::detail::hiredis_asio::attach(ac, ex, [](void* me) { ... });   // gone
//     redisAsyncCommand(ac, cb, priv, "PING");   // written in the next loop pass, with any
//                                                // other command issued before it (one write)
//
// How hiredis' hooks map to Asio (hiredis 0.14.1, the Debian bookworm build):
//   addRead    wait for readable, then redisAsyncHandleRead until the socket is drained (FIONREAD
//              0: Asio's epoll is edge-triggered, so a wait is only armed on an empty socket)
//   addWrite   before the connection is up: wait for writable (connect completion); after:
//              post one flush per loop pass, so commands issued in one pass go out in one
//              write(2) (pipelining), and wait for writable only after a short write
//   cleanup    hiredis frees the context (error, EOF, redisAsyncFree): release the descriptor
//              (hiredis closes the fd itself), drop pending waits, tell the owner
// Waits hold a shared_ptr to the adapter, so a wait that completes after the context is gone
// touches nothing of it.
#pragma once

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <sys/ioctl.h>

#include <asio/any_io_executor.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>

#include <memory>
#include <system_error>

namespace rproxy::cluster::detail {

class hiredis_asio : public std::enable_shared_from_this<hiredis_asio> {
public:
  using gone_fn = void (*)(void* owner, const redisAsyncContext* ac);

  /// Hooks `ac` to `ex`. `gone(owner, ac)` runs (inside hiredis) when hiredis frees the context.
  static void attach(redisAsyncContext* ac, const asio::any_io_executor& ex, gone_fn gone, void* owner) {
    auto a = std::make_shared<hiredis_asio>(ac, ex, gone, owner);
    a->self_ = a;
    ac->ev.data = a.get();
    ac->ev.addRead = &hiredis_asio::add_read;
    ac->ev.delRead = &hiredis_asio::del_read;
    ac->ev.addWrite = &hiredis_asio::add_write;
    ac->ev.delWrite = &hiredis_asio::del_write;
    ac->ev.cleanup = &hiredis_asio::cleanup;
  }

  hiredis_asio(redisAsyncContext* ac, const asio::any_io_executor& ex, gone_fn gone, void* owner)
      : ac_(ac), sd_(ex, ac->c.fd), gone_(gone), owner_(owner) {}

  ~hiredis_asio() {
    if (sd_.is_open()) (void)sd_.release();  // the fd is hiredis'
  }

private:
  static hiredis_asio* of(void* p) { return static_cast<hiredis_asio*>(p); }

  static void add_read(void* p) {
    auto* a = of(p);
    a->want_read_ = true;
    a->arm_read();
  }
  static void del_read(void* p) { of(p)->want_read_ = false; }
  static void add_write(void* p) {
    auto* a = of(p);
    a->want_write_ = true;
    if ((a->ac_->c.flags & REDIS_CONNECTED) == 0) a->arm_write();
    else a->post_flush();
  }
  static void del_write(void* p) { of(p)->want_write_ = false; }
  static void cleanup(void* p) {
    auto* a = of(p);
    std::shared_ptr<hiredis_asio> keep = std::move(a->self_);  // freed when this returns, unless a wait holds it
    const redisAsyncContext* ac = a->ac_;
    a->ac_ = nullptr;
    a->want_read_ = a->want_write_ = false;
    if (a->sd_.is_open()) (void)a->sd_.release();  // completes pending waits with operation_aborted
    if (a->gone_ != nullptr) a->gone_(a->owner_, ac);
  }

  void arm_read() {
    if (read_armed_ || ac_ == nullptr) return;
    read_armed_ = true;
    sd_.async_wait(asio::posix::stream_descriptor::wait_read, [self = shared_from_this()](std::error_code ec) {
      self->read_armed_ = false;
      if (!ec) self->on_readable();
    });
  }

  void on_readable() {
    for (int round = 0; round < 32; ++round) {
      if (ac_ == nullptr || !want_read_) return;
      redisAsyncHandleRead(ac_);  // may free the context (then cleanup ran: ac_ is null)
      if (ac_ == nullptr || !want_read_) return;
      int pending = 0;
      if (::ioctl(sd_.native_handle(), FIONREAD, &pending) != 0 || pending <= 0) {
        arm_read();
        return;
      }
    }
    // More to read after 32 reads: let other work run, then go on (no wait: no new edge would come).
    asio::post(sd_.get_executor(), [self = shared_from_this()] { self->on_readable(); });
  }

  void arm_write() {
    if (write_armed_ || ac_ == nullptr) return;
    write_armed_ = true;
    sd_.async_wait(asio::posix::stream_descriptor::wait_write, [self = shared_from_this()](std::error_code ec) {
      self->write_armed_ = false;
      if (ec || self->ac_ == nullptr || !self->want_write_) return;
      redisAsyncHandleWrite(self->ac_);
      if (self->ac_ != nullptr && self->want_write_) self->arm_write();  // a short write: wait for room
    });
  }

  void post_flush() {
    if (flush_posted_ || write_armed_) return;
    flush_posted_ = true;
    asio::post(sd_.get_executor(), [self = shared_from_this()] {
      self->flush_posted_ = false;
      if (self->ac_ == nullptr || !self->want_write_ || self->write_armed_) return;
      redisAsyncHandleWrite(self->ac_);
      if (self->ac_ != nullptr && self->want_write_) self->arm_write();
    });
  }

  redisAsyncContext* ac_;
  asio::posix::stream_descriptor sd_;
  gone_fn gone_;
  void* owner_;
  std::shared_ptr<hiredis_asio> self_;
  bool want_read_ = false, want_write_ = false;
  bool read_armed_ = false, write_armed_ = false, flush_posted_ = false;
};

}  // namespace rproxy::cluster::detail
