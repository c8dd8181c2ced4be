// rproxy/observe/log.hpp: structured logging over spdlog, as human text or JSON lines, with
// secrets redacted by field name.
//
//     auto log = rproxy::observe::make_logger(rproxy::observe::log_format::json,
//                                             rproxy::observe::log_level::info);
//     log.info("backend down", {{"backend", "10.0.0.7:25565"}, {"failures", 3}});
//     // {"ts":"2024-05-01T12:00:00.123Z","level":"info","logger":"rproxy","msg":"backend down",
//     //  "backend":"10.0.0.7:25565","failures":3}
//     log.warn("auth failed", {{"authorization", header}});   // "authorization":"[REDACTED]"
//
// Text format: `2024-05-01T12:00:00.123Z info  rproxy: backend down backend=10.0.0.7:25565 failures=3`.
// Both formats escape control characters and invalid UTF-8, so client-supplied text cannot
// forge extra log lines or break the JSON.
//
// How fields travel: logger::log() publishes the fields in a thread_local for the duration of
// the synchronous spdlog call, and the rproxy formatters (set on every sink by make_logger)
// render them. So loggers made here must stay synchronous (no spdlog async logger, no
// backtrace); a sink whose formatter you replace will not show fields. Plain spdlog calls on
// the same spdlog::logger (e.g. after spdlog::set_default_logger(log.shared())) work and log
// the message alone. A field holds views: build fields in the log call's argument list.
#pragma once

#include <spdlog/common.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/formatter.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/sink.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <rproxy/core/result.hpp>
#include <rproxy/observe/error.hpp>
#include <rproxy/observe/escape.hpp>
#include <rproxy/observe/redact.hpp>

namespace rproxy::observe {

using log_level = spdlog::level::level_enum;

/// `--log-format`: human text (default) or one JSON object per line.
enum class log_format { text, json };

/// "text" or "json".
inline result<log_format> parse_log_format(std::string_view s) {
  if (s == "text") return log_format::text;
  if (s == "json") return log_format::json;
  return failure(make_error_code(error::unknown_log_format));
}

/// trace, debug, info, warn (or warning), error (or err), critical, off.
inline result<log_level> parse_log_level(std::string_view s) {
  using L = log_level;
  if (s == "trace") return L::trace;
  if (s == "debug") return L::debug;
  if (s == "info") return L::info;
  if (s == "warn" || s == "warning") return L::warn;
  if (s == "error" || s == "err") return L::err;
  if (s == "critical") return L::critical;
  if (s == "off") return L::off;
  return failure(make_error_code(error::unknown_log_level));
}

constexpr std::string_view to_string(log_level l) noexcept {
  switch (l) {
    case log_level::trace: return "trace";
    case log_level::debug: return "debug";
    case log_level::info: return "info";
    case log_level::warn: return "warn";
    case log_level::err: return "error";
    case log_level::critical: return "critical";
    default: return "off";
  }
}

/// One structured field: a name and a string, integer, floating-point or boolean value.
/// Holds views only: make fields in the argument list of the log call.
class field {
public:
  using value_type = std::variant<std::string_view, std::int64_t, std::uint64_t, double, bool>;

  constexpr field(std::string_view name, std::string_view v) noexcept : name_(name), value_(v) {}
  constexpr field(std::string_view name, const char* v) noexcept : name_(name), value_(std::string_view(v)) {}
  field(std::string_view name, const std::string& v) noexcept : name_(name), value_(std::string_view(v)) {}
  template <class I>
    requires std::integral<I> && (!std::same_as<I, bool>)
  constexpr field(std::string_view name, I v) noexcept : name_(name) {
    if constexpr (std::is_signed_v<I>) value_ = static_cast<std::int64_t>(v);
    else value_ = static_cast<std::uint64_t>(v);
  }
  constexpr field(std::string_view name, double v) noexcept : name_(name), value_(v) {}
  constexpr field(std::string_view name, bool v) noexcept : name_(name), value_(v) {}

  constexpr std::string_view name() const noexcept { return name_; }
  constexpr const value_type& value() const noexcept { return value_; }

private:
  std::string_view name_;
  value_type value_;
};

namespace detail {

/// The fields of the log call in progress on this thread (two lists, so helpers can add their
/// own fields to the caller's without copying).
struct field_context {
  std::span<const field> first;
  std::span<const field> second;
};
inline constinit thread_local const field_context* current_fields_ = nullptr;

template <class F>
void for_each_current_field(F&& f) {
  if (const auto* ctx = current_fields_) {
    for (const auto& x : ctx->first) f(x);
    for (const auto& x : ctx->second) f(x);
  }
}

/// "2024-05-01T12:00:00.123Z"; the date-time part is cached per second.
class timestamp_cache {
public:
  template <class Buf>
  void append(Buf& out, std::chrono::system_clock::time_point tp) {
    using namespace std::chrono;
    const auto ms_total = duration_cast<milliseconds>(tp.time_since_epoch()).count();
    auto sec = static_cast<std::time_t>(ms_total / 1000);
    auto ms = static_cast<int>(ms_total % 1000);
    if (ms < 0) ms += 1000, --sec;
    if (sec != cached_sec_) {
      std::tm tm{};
      gmtime_r(&sec, &tm);
      const auto n = std::strftime(cached_, sizeof cached_, "%Y-%m-%dT%H:%M:%S", &tm);
      cached_len_ = n;
      cached_sec_ = sec;
    }
    out.append(cached_, cached_ + cached_len_);
    const char frac[] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                         static_cast<char>('0' + ms % 10), 'Z'};
    out.append(frac, frac + sizeof frac);
  }

private:
  std::time_t cached_sec_ = -1;
  char cached_[32]{};
  std::size_t cached_len_ = 0;
};

/// Appends text for a human log line: control characters escaped (\n, \r, \t, \xHH), invalid
/// UTF-8 replaced, so one record stays one line.
template <class Buf>
void append_text_escaped(Buf& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  append_escaped(out, s, [](Buf& o, unsigned char c) {
    if (c == '\n') append(o, "\\n");
    else if (c == '\r') append(o, "\\r");
    else if (c == '\t') append(o, "\\t");
    else if (c < 0x20 || c == 0x7F) {
      const char esc[] = {'\\', 'x', hex[c >> 4], hex[c & 0xF]};
      o.append(esc, esc + sizeof esc);
    } else {
      o.push_back(static_cast<char>(c));
    }
  });
}

/// A field name as a bare token: anything but [A-Za-z0-9_.-] becomes '_'.
template <class Buf>
void append_field_name(Buf& out, std::string_view name) {
  if (name.empty()) return append(out, "_");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '-';
    out.push_back(ok ? c : '_');
  }
}

template <class Buf>
void append_double_json(Buf& out, double v) {
  if (std::isfinite(v)) return append_prometheus_number(out, v);
  // JSON has no NaN/Inf: write them as strings.
  out.push_back('"');
  append_prometheus_number(out, v);
  out.push_back('"');
}

constexpr bool needs_quotes_in_text(std::string_view s) noexcept {
  if (s.empty()) return true;
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c == '"' || c == '=' || c == '\\' || c >= 0x7F) return true;
  }
  return false;
}

constexpr bool is_reserved_json_key(std::string_view n) noexcept {
  return n == "ts" || n == "level" || n == "logger" || n == "msg";
}

}  // namespace detail

/// spdlog formatter writing one JSON object per line: ts, level, logger, msg, then the fields
/// of the call (redacted). A field named like a reserved key gets a leading '_'.
class json_formatter final : public spdlog::formatter {
public:
  explicit json_formatter(redaction_policy policy = {}) : policy_(std::move(policy)) {}

  void format(const spdlog::details::log_msg& m, spdlog::memory_buf_t& out) override {
    detail::append(out, "{\"ts\":\"");
    ts_.append(out, m.time);
    detail::append(out, "\",\"level\":\"");
    detail::append(out, to_string(m.level));
    detail::append(out, "\",\"logger\":");
    append_json_string(out, std::string_view(m.logger_name.data(), m.logger_name.size()));
    detail::append(out, ",\"msg\":");
    append_json_string(out, std::string_view(m.payload.data(), m.payload.size()));
    detail::for_each_current_field([&](const field& f) {
      out.push_back(',');
      if (detail::is_reserved_json_key(f.name())) {
        std::string key = "_";
        key += f.name();
        append_json_string(out, key);
      } else {
        append_json_string(out, f.name());
      }
      out.push_back(':');
      write_value(out, f);
    });
    detail::append(out, "}\n");
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<json_formatter>(policy_); }

private:
  void write_value(spdlog::memory_buf_t& out, const field& f) const {
    if (policy_.is_secret_name(f.name())) return append_json_string(out, redacted_text);
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::string_view>)
            append_json_string(out, redaction_policy::is_secret_value(v) ? redacted_text : v);
          else if constexpr (std::is_same_v<V, bool>) detail::append(out, v ? "true" : "false");
          else if constexpr (std::is_same_v<V, double>) detail::append_double_json(out, v);
          else append_integer(out, v);
        },
        f.value());
  }

  redaction_policy policy_;
  detail::timestamp_cache ts_;
};

/// spdlog formatter writing human lines: `ts level logger: msg name=value ...` (values quoted
/// and escaped when they contain spaces, quotes or control characters; secrets redacted).
class text_formatter final : public spdlog::formatter {
public:
  explicit text_formatter(redaction_policy policy = {}) : policy_(std::move(policy)) {}

  void format(const spdlog::details::log_msg& m, spdlog::memory_buf_t& out) override {
    ts_.append(out, m.time);
    out.push_back(' ');
    const auto lvl = to_string(m.level);
    detail::append(out, lvl);
    for (std::size_t i = lvl.size(); i < 5; ++i) out.push_back(' ');
    out.push_back(' ');
    detail::append_text_escaped(out, std::string_view(m.logger_name.data(), m.logger_name.size()));
    detail::append(out, ": ");
    detail::append_text_escaped(out, std::string_view(m.payload.data(), m.payload.size()));
    detail::for_each_current_field([&](const field& f) {
      out.push_back(' ');
      detail::append_field_name(out, f.name());
      out.push_back('=');
      write_value(out, f);
    });
    out.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<text_formatter>(policy_); }

private:
  void write_value(spdlog::memory_buf_t& out, const field& f) const {
    if (policy_.is_secret_name(f.name())) return detail::append(out, redacted_text);
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, std::string_view>) {
            const std::string_view s = redaction_policy::is_secret_value(v) ? redacted_text : v;
            if (detail::needs_quotes_in_text(s)) append_json_string(out, s);
            else detail::append(out, s);
          } else if constexpr (std::is_same_v<V, bool>) {
            detail::append(out, v ? "true" : "false");
          } else if constexpr (std::is_same_v<V, double>) {
            append_prometheus_number(out, v);
          } else {
            append_integer(out, v);
          }
        },
        f.value());
  }

  redaction_policy policy_;
  detail::timestamp_cache ts_;
};

/// The formatter for a format, with a redaction policy.
inline std::unique_ptr<spdlog::formatter> make_formatter(log_format format, redaction_policy policy = {}) {
  if (format == log_format::json) return std::make_unique<json_formatter>(std::move(policy));
  return std::make_unique<text_formatter>(std::move(policy));
}

/// A structured logger: a cheap handle (one shared_ptr) over a synchronous spdlog::logger whose
/// sinks use the rproxy formatters. A default-constructed logger discards everything.
class logger {
public:
  logger() = default;
  explicit logger(std::shared_ptr<spdlog::logger> impl) noexcept : impl_(std::move(impl)) {}

  bool should_log(log_level lvl) const noexcept { return impl_ && impl_->should_log(lvl); }

  /// Logs `msg` with fields. Cost when the level is off: one branch.
  void log(log_level lvl, std::string_view msg, std::span<const field> fields = {}) const {
    log(lvl, msg, fields, {});
  }
  void log(log_level lvl, std::string_view msg, std::initializer_list<field> fields) const {
    log(lvl, msg, std::span<const field>(fields.begin(), fields.size()), {});
  }
  /// Logs with two field lists (a helper's own fields, then the caller's), without copying.
  void log(log_level lvl, std::string_view msg, std::span<const field> first, std::span<const field> second) const {
    if (!should_log(lvl)) return;
    const detail::field_context ctx{first, second};
    struct restore {
      const detail::field_context* prev;
      ~restore() { detail::current_fields_ = prev; }
    } guard{std::exchange(detail::current_fields_, &ctx)};
    impl_->log(spdlog::source_loc{}, lvl, spdlog::string_view_t(msg.data(), msg.size()));
  }

  void trace(std::string_view msg, std::initializer_list<field> f = {}) const { log(log_level::trace, msg, f); }
  void debug(std::string_view msg, std::initializer_list<field> f = {}) const { log(log_level::debug, msg, f); }
  void info(std::string_view msg, std::initializer_list<field> f = {}) const { log(log_level::info, msg, f); }
  void warn(std::string_view msg, std::initializer_list<field> f = {}) const { log(log_level::warn, msg, f); }
  void error(std::string_view msg, std::initializer_list<field> f = {}) const { log(log_level::err, msg, f); }
  void critical(std::string_view msg, std::initializer_list<field> f = {}) const { log(log_level::critical, msg, f); }

  void set_level(log_level lvl) const {
    if (impl_) impl_->set_level(lvl);
  }
  log_level level() const noexcept { return impl_ ? impl_->level() : log_level::off; }
  void flush() const {
    if (impl_) impl_->flush();
  }

  /// The underlying spdlog logger (null for a default-constructed logger).
  const std::shared_ptr<spdlog::logger>& shared() const noexcept { return impl_; }
  explicit operator bool() const noexcept { return impl_ != nullptr; }

private:
  std::shared_ptr<spdlog::logger> impl_;
};

struct logger_options {
  log_format format = log_format::text;
  log_level level = log_level::info;
  std::string name = "rproxy";
  std::vector<spdlog::sink_ptr> sinks{};  ///< empty: stderr
  redaction_policy redaction{};
  log_level flush_level = log_level::warn;  ///< flush sinks at this level and above
};

/// A logger writing `format` lines at `level` and above to the sinks (stderr by default).
/// Sets the rproxy formatter on every sink. The logger is not put in spdlog's global registry.
inline logger make_logger(const logger_options& o) {
  auto sinks = o.sinks;
  if (sinks.empty()) sinks.push_back(std::make_shared<spdlog::sinks::stderr_sink_mt>());
  for (auto& s : sinks) s->set_formatter(make_formatter(o.format, o.redaction));
  auto impl = std::make_shared<spdlog::logger>(o.name, sinks.begin(), sinks.end());
  impl->set_level(o.level);
  impl->flush_on(o.flush_level);
  return logger(std::move(impl));
}

/// `make_logger(log_format::json, log_level::info)`: the `--log-format` / `--log-level` pair.
inline logger make_logger(log_format format, log_level level, spdlog::sink_ptr sink = nullptr,
                          std::string name = "rproxy") {
  logger_options o;
  o.format = format;
  o.level = level;
  o.name = std::move(name);
  if (sink) o.sinks.push_back(std::move(sink));
  return make_logger(o);
}

}  // namespace rproxy::observe
