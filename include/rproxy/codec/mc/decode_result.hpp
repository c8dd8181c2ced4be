// rproxy/codec/mc/decode_result.hpp: the outcome of an incremental decoder over a byte stream.
//
// A stream decoder (VarInt prefix, frame, legacy ping, hello reader) sees whatever bytes have
// arrived so far, so besides success and error it has a third, ordinary outcome: need_more.
//
//     auto r = mc::decode_frame(buffered, limits);
//     if (r.need_more()) return read_more();
//     if (r.failed()) return close(r.error());
//     use(r.value()); buffered = buffered.subspan(r.size());
#pragma once

#include <cstddef>
#include <system_error>
#include <utility>

namespace rproxy::codec::mc {

enum class decode_status : unsigned char { ok, need_more, error };

template <class T>
class [[nodiscard]] decode_result {
public:
  /// Success: `v`, decoded from the first `size` bytes of the input.
  static decode_result ok(T v, std::size_t size) {
    decode_result r;
    r.status_ = decode_status::ok;
    r.value_ = std::move(v);
    r.size_ = size;
    return r;
  }
  /// The input is a strict prefix of something that may still become valid.
  static decode_result incomplete() {
    decode_result r;
    r.status_ = decode_status::need_more;
    return r;
  }
  /// The input can never become valid.
  static decode_result failure(std::error_code ec) {
    decode_result r;
    r.status_ = decode_status::error;
    r.error_ = ec;
    return r;
  }

  decode_status status() const noexcept { return status_; }
  bool is_ok() const noexcept { return status_ == decode_status::ok; }
  bool need_more() const noexcept { return status_ == decode_status::need_more; }
  bool failed() const noexcept { return status_ == decode_status::error; }
  explicit operator bool() const noexcept { return is_ok(); }

  /// The decoded value (meaningful only when is_ok()).
  T& value() & noexcept { return value_; }
  const T& value() const& noexcept { return value_; }
  T&& value() && noexcept { return std::move(value_); }
  T& operator*() & noexcept { return value_; }
  const T& operator*() const& noexcept { return value_; }
  T* operator->() noexcept { return &value_; }
  const T* operator->() const noexcept { return &value_; }

  /// Bytes consumed by a successful decode.
  std::size_t size() const noexcept { return size_; }
  /// The error of a failed decode (empty otherwise).
  const std::error_code& error() const noexcept { return error_; }

private:
  decode_result() = default;
  T value_{};
  std::size_t size_ = 0;
  std::error_code error_{};
  decode_status status_ = decode_status::need_more;
};

}  // namespace rproxy::codec::mc
