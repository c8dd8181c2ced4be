// rproxy/rooms/protocol.hpp: the rooms protocol's requests, error codes, input validation and the
// HTML-safe JSON writer (docs/ws-server.md is the reference for clients).
//
// A request is one JSON object per WebSocket text message:
//
//     {"op":"message","id":7,"room":"lobby","text":"hi <b>all</b>"}
//
// parse_request() reads it strictly (core/json.hpp: bounded size, depth 1, node count; valid
// UTF-8; no duplicate or unknown members; each member of its expected type) and validates its
// text fields; the client's `id` (a string of at most 64 bytes or an integer within +-2^53) is
// echoed in the reply, even in an error reply when the id itself was readable.
//
// HTML: text is stored as sent and every JSON string the server writes escapes < > & ' as
// \u003c \u003e \u0026 \u0027 (json_out), so a frame pasted into an HTML page or a <script>
// block cannot open a tag or an entity. A client still inserts decoded text as text
// (textContent), never as markup. Names (rooms, users) are stricter: they may not contain
// < > & " ' at all, nor whitespace at either end.
// Refused everywhere: invalid UTF-8, C0 controls (a message may hold \n and \t), DEL, C1
// controls, bidirectional overrides and isolates (U+202A..U+202E, U+2066..U+2069); in names
// also zero-width and format characters (U+200B..U+200F, U+2028..U+2029, U+2060..U+2064, U+FEFF).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <rproxy/core/json.hpp>
#include <rproxy/core/utf8.hpp>

#include <rproxy/rooms/roles.hpp>
#include <rproxy/rooms/rooms_block.hpp>

namespace rproxy::rooms {

/// Stable error codes (the `code` member of an error reply).
enum class errc : std::uint8_t {
  bad_request,     ///< not a JSON object, a member missing, of the wrong type or unknown
  too_large,       ///< request over max_request_bytes, nested or too many members
  unknown_op,      ///< `op` names no operation
  invalid_name,    ///< a room or user name with a refused character
  invalid_text,    ///< message text with a refused character
  too_long,        ///< a name, text or password over its limit
  weak_password,   ///< password shorter than password.min_bytes
  not_found,       ///< no such room (private rooms are not found by non-members)
  exists,          ///< a room with that name exists
  not_member,      ///< the session (or the target user) is not in the room
  already_member,  ///< the session is in the room already
  wrong_password,  ///< the room's password differs
  full,            ///< the room has max_members members
  banned,          ///< the user is banned from the room
  muted,           ///< the user is muted in the room
  forbidden,       ///< the role does not allow it (roles.hpp)
  limit,           ///< a registry limit: rooms, rooms per session, owned rooms, sanctions, roles
  not_online,      ///< private message to a user with no session
  internal,        ///< the server failed (e.g. no entropy for a salt); nothing changed
};

constexpr std::string_view errc_name(errc e) noexcept {
  switch (e) {
    case errc::bad_request: return "bad_request";
    case errc::too_large: return "too_large";
    case errc::unknown_op: return "unknown_op";
    case errc::invalid_name: return "invalid_name";
    case errc::invalid_text: return "invalid_text";
    case errc::too_long: return "too_long";
    case errc::weak_password: return "weak_password";
    case errc::not_found: return "not_found";
    case errc::exists: return "exists";
    case errc::not_member: return "not_member";
    case errc::already_member: return "already_member";
    case errc::wrong_password: return "wrong_password";
    case errc::full: return "full";
    case errc::banned: return "banned";
    case errc::muted: return "muted";
    case errc::forbidden: return "forbidden";
    case errc::limit: return "limit";
    case errc::not_online: return "not_online";
    case errc::internal: return "internal";
  }
  return "internal";
}

/// An error: its code and a human sentence (never holding a password).
struct failure {
  errc code = errc::bad_request;
  std::string text;
};

enum class op : std::uint8_t {
  invalid,  ///< not (yet) known: the request did not parse
  create,
  join,
  leave,
  list,
  members,
  message,
  private_message,
  history,
  kick,
  ban,
  unban,
  mute,
  unmute,
  set_role,
};

constexpr std::string_view op_name(op o) noexcept {
  switch (o) {
    case op::invalid: return "invalid";
    case op::create: return "create";
    case op::join: return "join";
    case op::leave: return "leave";
    case op::list: return "list";
    case op::members: return "members";
    case op::message: return "message";
    case op::private_message: return "private_message";
    case op::history: return "history";
    case op::kick: return "kick";
    case op::ban: return "ban";
    case op::unban: return "unban";
    case op::mute: return "mute";
    case op::unmute: return "unmute";
    case op::set_role: return "set_role";
  }
  return "invalid";
}

/// One parsed request. Members an operation does not take stay empty.
struct request {
  op kind = op::invalid;
  std::string id_json;  ///< the client's id as JSON text (validated), empty when absent
  std::string room;
  std::string user;
  std::string text;
  std::optional<std::string> password;  ///< never logged or echoed
  std::optional<role> new_role;
  bool is_private = false;
  std::optional<std::uint32_t> max_members;
  std::optional<std::uint64_t> since;
  std::optional<std::int64_t> seconds;
  std::string after;  ///< list: rooms after this name (paging)

  /// The operation a rate limiter counts (middleware/request_view.hpp's operation()): the op's
  /// name ("message", "join", "private_message", ...) or "invalid".
  std::string_view operation() const noexcept { return op_name(kind); }
};

// --- validation ---------------------------------------------------------------------------------

namespace detail {
constexpr bool is_bidi_control(char32_t cp) noexcept {
  return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}
constexpr bool is_invisible_format(char32_t cp) noexcept {
  return (cp >= 0x200B && cp <= 0x200F) || cp == 0x2028 || cp == 0x2029 || (cp >= 0x2060 && cp <= 0x2064) ||
         cp == 0xFEFF;
}
}  // namespace detail

/// A room or user name: 1..max_bytes bytes of UTF-8 with no control, format or HTML-special
/// character and no whitespace at either end.
inline std::optional<failure> check_name(std::string_view s, std::size_t max_bytes, std::string_view what) {
  if (s.empty()) return failure{errc::invalid_name, std::string(what) + " is empty"};
  if (s.size() > max_bytes)
    return failure{errc::too_long, std::string(what) + " is longer than " + std::to_string(max_bytes) + " bytes"};
  if (s.front() == ' ' || s.back() == ' ')
    return failure{errc::invalid_name, std::string(what) + " starts or ends with a space"};
  for (std::size_t i = 0; i < s.size();) {
    auto cp = rproxy::utf8::decode(s, i);
    if (!cp) return failure{errc::invalid_name, std::string(what) + " is not valid UTF-8"};
    const char32_t c = *cp;
    if (c < 0x20 || (c >= 0x7F && c <= 0x9F) || detail::is_bidi_control(c) || detail::is_invisible_format(c))
      return failure{errc::invalid_name, std::string(what) + " holds a control or invisible character"};
    if (c == '<' || c == '>' || c == '&' || c == '"' || c == '\'')
      return failure{errc::invalid_name, std::string(what) + " holds one of < > & \" '"};
  }
  return std::nullopt;
}

/// Message text: 1..max_bytes bytes of UTF-8; \n and \t allowed, other controls and
/// bidirectional overrides refused. HTML-special characters are kept (escaped on output).
inline std::optional<failure> check_text(std::string_view s, std::size_t max_bytes) {
  if (s.empty()) return failure{errc::invalid_text, "text is empty"};
  if (s.size() > max_bytes) return failure{errc::too_long, "text is longer than " + std::to_string(max_bytes) + " bytes"};
  for (std::size_t i = 0; i < s.size();) {
    auto cp = rproxy::utf8::decode(s, i);
    if (!cp) return failure{errc::invalid_text, "text is not valid UTF-8"};
    const char32_t c = *cp;
    if ((c < 0x20 && c != '\n' && c != '\t') || (c >= 0x7F && c <= 0x9F))
      return failure{errc::invalid_text, "text holds a control character"};
    if (detail::is_bidi_control(c)) return failure{errc::invalid_text, "text holds a bidirectional override"};
  }
  return std::nullopt;
}

// --- writing ------------------------------------------------------------------------------------

/// Appends `s` as a JSON string that is also safe inside HTML: what json::append_string writes
/// (`"`, backslash and controls escaped, DEL as \u007f, each invalid UTF-8 byte as U+FFFD, the rest
/// verbatim), with < > & ' written as \u003c \u003e \u0026 \u0027. One pass: runs of bytes
/// that need nothing are appended whole.
inline void append_html_safe_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the bytes not yet appended
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      std::size_t j = i;
      if (rproxy::utf8::decode(s, j)) {  // a valid sequence stays in the run
        i = j;
        continue;
      }
      out.append(s.data() + run, i - run);
      out.append("\xEF\xBF\xBD");  // U+FFFD for the one invalid byte
      run = i = j;
      continue;
    }
    if (c >= 0x20 && c != 0x7F && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' && c != '\'') {
      ++i;
      continue;
    }
    out.append(s.data() + run, i - run);
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default: {
        const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
        out.append(esc, sizeof esc);
      }
    }
    run = ++i;
  }
  out.append(s.data() + run, i - run);
  out.push_back('"');
}

/// A compact JSON object writer; every string goes through append_html_safe_string.
class json_out {
public:
  json_out() {
    out_.reserve(256);  // one allocation for most frames
    out_.push_back('{');
  }
  json_out& str(std::string_view key, std::string_view v) {
    name(key);
    append_html_safe_string(out_, v);
    return *this;
  }
  json_out& num(std::string_view key, std::int64_t v) {
    name(key);
    out_ += std::to_string(v);
    return *this;
  }
  json_out& unum(std::string_view key, std::uint64_t v) {
    name(key);
    out_ += std::to_string(v);
    return *this;
  }
  json_out& boolean(std::string_view key, bool v) {
    name(key);
    out_ += v ? "true" : "false";
    return *this;
  }
  /// `json` must be valid JSON text written by this writer (or a validated client id).
  json_out& raw(std::string_view key, std::string_view json) {
    name(key);
    out_ += json;
    return *this;
  }
  /// Starts an array member; items are appended with item_*; end with end_array().
  json_out& begin_array(std::string_view key) {
    name(key);
    out_.push_back('[');
    first_ = true;
    return *this;
  }
  json_out& item_raw(std::string_view json) {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_ += json;
    return *this;
  }
  json_out& end_array() {
    out_.push_back(']');
    first_ = false;
    return *this;
  }
  std::string done() && {
    out_.push_back('}');
    return std::move(out_);
  }

private:
  void name(std::string_view key) {
    if (!first_) out_.push_back(',');
    first_ = false;
    append_html_safe_string(out_, key);
    out_.push_back(':');
  }
  std::string out_;
  bool first_ = true;
};

/// {"type":"error","id":..,"op":..,"code":..,"error":..}
inline std::string error_reply(const request& r, const failure& f) {
  json_out o;
  o.str("type", "error");
  if (!r.id_json.empty()) o.raw("id", r.id_json);
  o.str("op", op_name(r.kind)).str("code", errc_name(f.code)).str("error", f.text);
  return std::move(o).done();
}

/// {"type":"ok","id":..,"op":.. : the start of a success reply; the caller adds members.
inline json_out ok_reply(const request& r) {
  json_out o;
  o.str("type", "ok");
  if (!r.id_json.empty()) o.raw("id", r.id_json);
  o.str("op", op_name(r.kind));
  return o;
}

// --- parsing ------------------------------------------------------------------------------------

namespace detail {

inline constexpr std::int64_t max_safe_integer = 9007199254740991;  // 2^53 - 1

constexpr op op_from_name(std::string_view s) noexcept {
  for (auto o : {op::create, op::join, op::leave, op::list, op::members, op::message, op::private_message, op::history,
                 op::kick, op::ban, op::unban, op::mute, op::unmute, op::set_role})
    if (op_name(o) == s) return o;
  return op::invalid;
}

enum field : std::uint16_t {
  f_room = 1, f_user = 2, f_text = 4, f_password = 8, f_private = 16, f_max_members = 32, f_since = 64,
  f_seconds = 128, f_role = 256, f_after = 512,
};

constexpr std::uint16_t fields_of(op o) noexcept {
  switch (o) {
    case op::create: return f_room | f_private | f_password | f_max_members;
    case op::join: return f_room | f_password;
    case op::leave:
    case op::members: return f_room;
    case op::list: return f_after;
    case op::message: return f_room | f_text;
    case op::private_message: return f_user | f_text;
    case op::history: return f_room | f_since;
    case op::kick:
    case op::unban:
    case op::unmute: return f_room | f_user;
    case op::ban:
    case op::mute: return f_room | f_user | f_seconds;
    case op::set_role: return f_room | f_user | f_role;
    case op::invalid: return 0;
  }
  return 0;
}

constexpr std::uint16_t required_of(op o) noexcept {
  switch (o) {
    case op::list: return 0;
    case op::private_message: return f_user | f_text;
    case op::message: return f_room | f_text;
    case op::kick:
    case op::unban:
    case op::unmute:
    case op::ban: return f_room | f_user;
    case op::mute: return f_room | f_user | f_seconds;
    case op::set_role: return f_room | f_user | f_role;
    default: return f_room;
  }
}

constexpr std::uint16_t field_bit(std::string_view k) noexcept {
  if (k == "room") return f_room;
  if (k == "user") return f_user;
  if (k == "text") return f_text;
  if (k == "password") return f_password;
  if (k == "private") return f_private;
  if (k == "max_members") return f_max_members;
  if (k == "since") return f_since;
  if (k == "seconds") return f_seconds;
  if (k == "role") return f_role;
  if (k == "after") return f_after;
  return 0;
}

inline failure bad(std::string text) { return failure{errc::bad_request, std::move(text)}; }

}  // namespace detail

/// Parses and validates one request. On failure `r` holds what was read so far (kind, id) so
/// the error reply can echo them.
inline std::optional<failure> parse_request(std::string_view text, const rooms_block& cfg, request& r) {
  using namespace detail;
  r = request{};
  if (text.size() > cfg.max_request_bytes)
    return failure{errc::too_large, "request is longer than " + std::to_string(cfg.max_request_bytes) + " bytes"};
  rproxy::json::limits lim;
  lim.max_bytes = cfg.max_request_bytes;
  lim.max_depth = 1;  // one flat object: every member is a scalar
  lim.max_nodes = 16;
  auto doc = rproxy::json::parse(text, lim);
  if (!doc) {
    const auto e = doc.error();
    if (e == rproxy::json::error::too_deep || e == rproxy::json::error::too_large)
      return failure{errc::too_large, e == rproxy::json::error::too_deep
                                          ? "request members must be strings, numbers or booleans"
                                          : "request has too many members"};
    return bad(e.message());
  }
  const auto root = doc->root();
  if (!root.is_object()) return bad("request is not a JSON object");

  if (auto id = root.find("id")) {
    if (id->is_string()) {
      const auto s = id->as_string();
      if (s.size() > 64) return bad("id is longer than 64 bytes");
      append_html_safe_string(r.id_json, s);
    } else if (auto n = id->as_int(-max_safe_integer, max_safe_integer)) {
      r.id_json = std::to_string(*n);
    } else {
      return bad("id must be a string or an integer");
    }
  }
  auto opv = root.find("op");
  if (!opv) return bad("op is missing");
  if (!opv->is_string()) return bad("op must be a string");
  r.kind = op_from_name(opv->as_string());
  if (r.kind == op::invalid) return failure{errc::unknown_op, "unknown op"};

  const std::uint16_t allowed = fields_of(r.kind);
  std::uint16_t seen = 0;
  for (auto m : root.children()) {
    const auto k = m.key();
    if (k == "op" || k == "id") continue;
    const std::uint16_t bit = field_bit(k);
    if ((bit & allowed) == 0) {
      return bad("member \"" + std::string(k.substr(0, 32)) + "\" is not taken by " + std::string(op_name(r.kind)));
    }
    seen |= bit;
    const auto want_string = [&](std::string& out) -> std::optional<failure> {
      if (!m.is_string()) return bad(std::string(k) + " must be a string");
      out.assign(m.as_string());
      return std::nullopt;
    };
    std::optional<failure> f;
    switch (bit) {
      case f_room: f = want_string(r.room); break;
      case f_user: f = want_string(r.user); break;
      case f_text: f = want_string(r.text); break;
      case f_after: f = want_string(r.after); break;
      case f_password:
        if (!m.is_string()) return bad("password must be a string");
        r.password.emplace(m.as_string());
        break;
      case f_role:
        if (!m.is_string()) return bad("role must be a string");
        r.new_role = role_from_name(m.as_string());
        if (!r.new_role) return bad("role must be owner, admin, moderator, member or guest");
        break;
      case f_private:
        if (!m.is_bool()) return bad("private must be true or false");
        r.is_private = m.as_bool();
        break;
      case f_max_members: {
        auto n = m.as_int(1, UINT32_MAX);
        if (!n) return bad("max_members must be a positive integer");
        r.max_members = static_cast<std::uint32_t>(*n);
        break;
      }
      case f_since: {
        auto n = m.as_int(0, max_safe_integer);
        if (!n) return bad("since must be a message id (an integer >= 0)");
        r.since = static_cast<std::uint64_t>(*n);
        break;
      }
      case f_seconds: {
        auto n = m.as_int(1, max_safe_integer);
        if (!n) return bad("seconds must be a positive integer");
        r.seconds = *n;
        break;
      }
      default: break;
    }
    if (f) return f;
  }
  if (const std::uint16_t missing = required_of(r.kind) & ~seen; missing != 0) {
    for (auto [bit, name] : {std::pair{f_room, "room"}, {f_user, "user"}, {f_text, "text"}, {f_seconds, "seconds"},
                             {f_role, "role"}})
      if (missing & bit) return bad(std::string(name) + " is missing");
  }
  if (seen & f_room)
    if (auto f = check_name(r.room, cfg.max_name_bytes, "room name")) return f;
  if (seen & f_user)
    if (auto f = check_name(r.user, cfg.max_name_bytes, "user name")) return f;
  if (seen & f_text)
    if (auto f = check_text(r.text, cfg.max_message_bytes)) return f;
  if (!r.after.empty() && r.after.size() > cfg.max_name_bytes) return failure{errc::too_long, "after is too long"};
  if (r.password && r.password->size() > cfg.password.max_bytes) return failure{errc::too_long, "password is too long"};
  return std::nullopt;
}

}  // namespace rproxy::rooms
