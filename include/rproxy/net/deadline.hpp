// rproxy/net/deadline.hpp: runs one asynchronous operation with a deadline, without a callback
// that can touch the caller's frame or cancel the caller's next operation.
//
//     using asio::experimental::deferred;
//     auto [ec, n] = co_await rproxy::net::with_deadline(sock.async_read_some(buf, deferred), 30s);
//     if (ec == rproxy::net::error::idle_timeout) ...;   // the deadline won: the read was cancelled
//     auto [wec] = co_await rproxy::net::with_deadline(timer.async_wait(deferred), at,
//                                                       make_error_code(rproxy::net::error::connect_timeout));
//
// `Op` is a deferred operation (any `x.async_y(..., asio::experimental::deferred)`) whose
// completion signature starts with std::error_code: async_read_some, async_write, async_connect,
// async_wait, ... The operation gets a cancellation slot; when the deadline passes first, the
// slot is emitted (cancellation_type::terminal), so only that operation is cancelled, never the
// object's next one. The call completes as soon as the operation does; the cancelled timer's
// handler may run later, but it touches only the call's own state (which it keeps alive and
// then frees), never the caller's locals, the socket or the signal of a later operation.
//
// Results: the operation's own, except that an operation the deadline cancelled completes with
// `on_timeout` (default net::error::idle_timeout) instead of operation_aborted. When the operation
// completes in the same loop pass as the deadline, its result stands (the bytes read are never
// lost), and the next operation on the object is not affected.
//
// Cancelling the call itself (a cancellation slot on the caller's handler, e.g. a co_spawn with
// bind_cancellation_slot) cancels the operation with the same cancellation type, and the timer.
//
// `async_with_deadline(ex, op, deadline, on_timeout, token)` is the same for any completion
// token, with the timer on `ex`.
//
// Cost: with a timeout (`with_deadline(op, 30s)`) on an io_context's executor, the deadline is
// an entry on the io_context's idle sweep (net/idle_sweep.hpp: one timer for all the flows of a
// worker, a lane per timeout) rather than a timer of its own: no timer queue insertion and
// removal, no cancelled timer handler to run after each operation, no timerfd_settime(2). It
// then fires late by at most timeout/64 (at most one second), never early. A time point, an
// executor that is not an io_context's (a strand), or a sweep with many lanes already (a
// timeout cut at a request's deadline varies per call) keeps a timer per call, as before.
#pragma once

#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/recycling_allocator.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include <rproxy/net/error.hpp>
#include <rproxy/net/idle_sweep.hpp>

namespace rproxy::net {

namespace detail {

/// A completion token that only names the signature of the operation it is given (unevaluated).
struct deadline_signature_probe {};
template <class Signature>
struct deadline_signature_tag {
  using type = Signature;
};

}  // namespace detail
}  // namespace rproxy::net

template <class Signature>
struct asio::async_result<rproxy::net::detail::deadline_signature_probe, Signature> {
  template <class Initiation, class... Args>
  static rproxy::net::detail::deadline_signature_tag<Signature> initiate(Initiation&&, rproxy::net::detail::deadline_signature_probe,
                                                                         Args&&...) {
    return {};  // named in decltype only: never initiates
  }
};

namespace rproxy::net {

namespace detail {

template <class Op>
using deadline_signature_t =
    typename decltype(std::declval<Op>()(std::declval<deadline_signature_probe>()))::type;

template <class Signature>
inline constexpr bool deadline_always_false = false;
template <class Signature>
struct deadline_results {
  static_assert(deadline_always_false<Signature>,
                "with_deadline(op, ...): op must be a deferred operation completing with (std::error_code, ...)");
};
template <class R, class... Results>
struct deadline_results<R(std::error_code, Results...)> {
  using tuple = std::tuple<std::error_code, Results...>;
};

/// What the idle sweep's expiry touches of a call (one expiry function for every operation
/// type: a lane per timeout, not per timeout and operation).
class deadline_entry : public idle_sweep::entry {
protected:
  /// The sweep's expiry (the entry is unlinked already; the operation is still pending).
  static void expired(idle_sweep::entry& e) {
    auto& self = static_cast<deadline_entry&>(e);
    if (self.op_done_) return;
    self.fired_ = true;
    self.signal_.emit(asio::cancellation_type::terminal);
  }
  asio::cancellation_signal signal_;
  bool op_done_ = false;
  bool fired_ = false;
};

/// The state of one call: the caller's handler, the timer, the signal bound to the operation and
/// the operation's results. The operation's handler and the timer's handler each hold a
/// reference; the last one released frees it. The caller completes when the operation does,
/// without waiting for the cancelled timer's handler (that would cost a loop pass): that handler
/// then touches only this state, which it keeps alive.
template <class Handler, class Signature>
class deadline_op;

template <class Handler, class R, class... Results>
class deadline_op<Handler, R(std::error_code, Results...)> final : private deadline_entry {
public:
  using results_type = std::tuple<std::error_code, Results...>;
  using handler_executor = asio::associated_executor_t<Handler, asio::any_io_executor>;
  using allocator_type = typename std::allocator_traits<
      asio::associated_allocator_t<Handler, asio::recycling_allocator<void>>>::template rebind_alloc<deadline_op>;

  /// Starts `op` with a deadline, on `io_ex`'s idle sweep when `timeout` is set (the deadline is
  /// then now + timeout) and the sweep takes it, else on a timer of its own.
  template <class Op>
  static void start(Handler handler, const asio::any_io_executor& io_ex, Op&& op,
                    std::chrono::steady_clock::time_point deadline, std::chrono::steady_clock::duration timeout,
                    std::error_code on_timeout) {
    allocator_type alloc(asio::get_associated_allocator(handler, asio::recycling_allocator<void>()));
    auto* mem = std::allocator_traits<allocator_type>::allocate(alloc, 1);
    deadline_op* self;
    idle_sweep* sweep = nullptr;
    if (timeout > std::chrono::steady_clock::duration::zero())
      if (auto* ioc = io_context_of(io_ex)) {
        auto& s = asio::use_service<idle_sweep>(*ioc);
        if (s.takes(timeout, &expired)) sweep = &s;
      }
    try {
      self = ::new (static_cast<void*>(mem)) deadline_op(std::move(handler), alloc, io_ex, on_timeout, sweep);
    } catch (...) {
      std::allocator_traits<allocator_type>::deallocate(alloc, mem, 1);
      throw;
    }
    if (sweep != nullptr) self->begin_swept(std::forward<Op>(op), timeout);
    else self->begin(std::forward<Op>(op), deadline);
  }

private:
  /// One counted reference, moved along with an inner handler; released when that handler has
  /// run, or when it is destroyed without running (the io_context shutting down).
  class ref {
  public:
    explicit ref(deadline_op* s) noexcept : s_(s) {}
    ref(ref&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    ref& operator=(ref&&) = delete;
    ~ref() {
      if (s_ != nullptr) s_->release();
    }
    deadline_op* operator->() const noexcept { return s_; }
    deadline_op* get() const noexcept { return s_; }

  private:
    deadline_op* s_;
  };

  /// Completion handler of the operation: carries the signal's slot and the caller's executor.
  struct op_handler {
    ref self;
    using executor_type = handler_executor;
    executor_type get_executor() const noexcept { return self->ex_; }
    using cancellation_slot_type = asio::cancellation_slot;
    cancellation_slot_type get_cancellation_slot() const noexcept { return self->signal_.slot(); }
    template <class... Args>
    void operator()(Args&&... args) {
      ref r = std::move(self);
      r->on_op(std::forward<Args>(args)...);
    }
  };
  struct timer_handler {
    ref self;
    using executor_type = handler_executor;
    executor_type get_executor() const noexcept { return self->ex_; }
    void operator()(std::error_code ec) {
      ref r = std::move(self);
      r->on_timer(ec);
    }
  };

  deadline_op(Handler&& h, const allocator_type& alloc, const asio::any_io_executor& io_ex, std::error_code on_timeout,
              idle_sweep* sweep)
      : handler_(std::move(h)),
        alloc_(alloc),
        ex_(asio::get_associated_executor(*handler_, io_ex)),
        work_(ex_),
        sweep_(sweep),
        on_timeout_(on_timeout) {
    if (sweep_ == nullptr) timer_.emplace(io_ex);
  }

  ~deadline_op() {
    if (handler_) asio::get_associated_cancellation_slot(*handler_).clear();  // never completed
    if (sweep_ != nullptr) sweep_->remove(*this);  // (no-op unless destroyed uncompleted, the io_context going)
  }

  /// The caller's cancellation: the operation's too, and the deadline's.
  void watch_caller_slot() {
    auto slot = asio::get_associated_cancellation_slot(*handler_);
    if (slot.is_connected())
      slot.assign([this](asio::cancellation_type type) {
        if (op_done_) return;
        stop_deadline();
        signal_.emit(type);
      });
  }
  void stop_deadline() noexcept {
    if (sweep_ != nullptr) sweep_->remove(*this);
    else timer_->cancel();  // its handler runs soon after, with operation_aborted
  }

  template <class Op>
  void begin(Op&& op, std::chrono::steady_clock::time_point deadline) {
    watch_caller_slot();
    timer_->expires_at(deadline);
    refs_ = 2;
    timer_->async_wait(timer_handler{ref(this)});
    std::forward<Op>(op)(op_handler{ref(this)});
  }
  /// On the sweep: the operation's handler holds the only reference; the sweep's entry is
  /// removed when the operation completes (an expiry after that cannot happen).
  template <class Op>
  void begin_swept(Op&& op, std::chrono::steady_clock::duration timeout) {
    watch_caller_slot();
    refs_ = 1;
    sweep_->add(*this, timeout, std::chrono::steady_clock::now(), &expired);
    std::forward<Op>(op)(op_handler{ref(this)});
  }
  /// The operation completed: so does the call, at once.
  template <class... Args>
  void on_op(Args&&... args) {
    results_type r(std::forward<Args>(args)...);
    op_done_ = true;
    if (!fired_) stop_deadline();
    if (fired_ && std::get<0>(r) == asio::error::operation_aborted) std::get<0>(r) = on_timeout_;
    asio::get_associated_cancellation_slot(*handler_).clear();
    auto h = std::move(*handler_);
    handler_.reset();
    auto work = std::move(work_);
    asio::dispatch(ex_, [h = std::move(h), r = std::move(r)]() mutable { std::apply(std::move(h), std::move(r)); });
  }

  void on_timer(std::error_code ec) {
    if (ec || op_done_) return;  // cancelled, or the operation was first
    fired_ = true;
    signal_.emit(asio::cancellation_type::terminal);
  }

  void release() {
    if (--refs_ != 0) return;
    allocator_type alloc(alloc_);
    this->~deadline_op();
    std::allocator_traits<allocator_type>::deallocate(alloc, this, 1);
  }

  std::optional<Handler> handler_;  // empty once the caller's handler has been dispatched
  allocator_type alloc_;
  handler_executor ex_;  // where the caller's handler runs, and the two inner handlers
  asio::executor_work_guard<handler_executor> work_;  // keeps it running until the call completes
  idle_sweep* sweep_;                         // the deadline is an entry here, or
  std::optional<asio::steady_timer> timer_;  // on a timer of its own
  std::error_code on_timeout_;
  int refs_ = 0;
};

}  // namespace detail

/// The results of `with_deadline(op, ...)`: std::tuple<std::error_code, the operation's others...>.
template <class Op>
using deadline_results_t = typename detail::deadline_results<detail::deadline_signature_t<Op>>::tuple;

namespace detail {

template <class Signature>
struct initiate_with_deadline {
  /// `io_ex` empty: the handler's associated executor (a coroutine's, with use_awaitable).
  template <class Handler, class Op>
  void operator()(Handler handler, asio::any_io_executor io_ex, Op op, std::chrono::steady_clock::time_point deadline,
                  std::chrono::steady_clock::duration timeout, std::error_code on_timeout) const {
    if (!io_ex) io_ex = asio::get_associated_executor(handler, asio::any_io_executor());
    deadline_op<Handler, Signature>::start(std::move(handler), io_ex, std::move(op), deadline, timeout, on_timeout);
  }
};

}  // namespace detail

/// Runs the deferred operation `op` until it completes or `deadline` passes, whichever is first,
/// the deadline's timer on `ex`; completes with the operation's signature (see the file comment).
/// Any completion token; the handler runs on its associated executor, by default `ex`.
template <class Op, class CompletionToken>
auto async_with_deadline(const asio::any_io_executor& ex, Op op, std::chrono::steady_clock::time_point deadline,
                         std::error_code on_timeout, CompletionToken&& token) {
  using signature = detail::deadline_signature_t<Op>;
  return asio::async_initiate<CompletionToken, signature>(detail::initiate_with_deadline<signature>{}, token, ex,
                                                          std::move(op), deadline, std::chrono::steady_clock::duration::zero(),
                                                          on_timeout);
}

/// In a coroutine: `auto [ec, n...] = co_await with_deadline(op, deadline);` (the timer runs on
/// the coroutine's executor).
template <class Op>
asio::awaitable<deadline_results_t<Op>> with_deadline(Op op, std::chrono::steady_clock::time_point deadline,
                                                      std::error_code on_timeout = make_error_code(error::idle_timeout)) {
  using signature = detail::deadline_signature_t<Op>;
  return asio::async_initiate<const asio::experimental::as_tuple_t<asio::use_awaitable_t<>>&, signature>(
      detail::initiate_with_deadline<signature>{}, asio::experimental::as_tuple(asio::use_awaitable),
      asio::any_io_executor(), std::move(op), deadline, std::chrono::steady_clock::duration::zero(), on_timeout);
}

/// The same with a deadline `timeout` from now (on the io_context's idle sweep when it can be:
/// see the file comment).
template <class Op>
asio::awaitable<deadline_results_t<Op>> with_deadline(Op op, std::chrono::steady_clock::duration timeout,
                                                      std::error_code on_timeout = make_error_code(error::idle_timeout)) {
  using signature = detail::deadline_signature_t<Op>;
  const auto t = std::max(timeout, std::chrono::steady_clock::duration(1));  // (zero or less: due at once)
  return asio::async_initiate<const asio::experimental::as_tuple_t<asio::use_awaitable_t<>>&, signature>(
      detail::initiate_with_deadline<signature>{}, asio::experimental::as_tuple(asio::use_awaitable),
      asio::any_io_executor(), std::move(op), std::chrono::steady_clock::now() + t, t, on_timeout);
}

}  // namespace rproxy::net
