// rproxy/cluster/shared_bans.hpp: bans that reach every instance. A ban made on one instance
// (its ban file loaded, an admin call, a penalty) is written to a Redis hash and published;
// every instance applies it to `list()` at once (pub/sub), and an instance that starts or
// reconnects later reads the whole hash. The ban_check stage checks `list()` beside its own
// file's list (middleware::basic_ban_check::shared).
//
//     rproxy::cluster::shared_bans bans(links.client(0), &log);   // one per process, on worker 0
//     bans.start();                                               // (posted to that executor)
//     bans.publish(file_list);                                    // after each ban file load
//     bans.ban("addr", "203.0.113.7/32", until, "scraping");      // from an admin API or a penalty
//     mw::ban_check{&file_list, audit, &cfg, &bans.list()};
//
// Redis: hash <prefix>bans{bans} (field "addr 203.0.113.0/24" or "identity <name>", value
// "<until unix s, 0: permanent> <reason>", the ban file's own encoding) and channel
// <prefix>bans{bans} ("ban\n" or "unban\n" then one line per ban). Expired bans are skipped and
// removed from the hash when read. Removing a line from a ban file does not lift it elsewhere:
// unban() does. Without a client (no `redis:` block), ban() and unban() act on this instance's
// list() alone (the admin API, admin/bans_api.hpp, works the same) and publish() does nothing
// (the ban file's own list is checked beside list()).
//
// on_change(f): f runs after each change that adds bans (a ban here, a message, the hash read,
// a ban file published), so open flows a new ban covers can be ended (middleware/ban_kick.hpp).
#pragma once

#include <asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <rproxy/cluster/keys.hpp>
#include <rproxy/cluster/redis_client.hpp>
#include <rproxy/middleware/ban.hpp>
#include <rproxy/observe/log.hpp>

namespace rproxy::cluster {

class shared_bans {
public:
  /// Bans held at most (a message or hash past this is cut; each ban is one short line).
  static constexpr std::size_t max_bans = 100'000;

  /// `opts`: how list() matches (e.g. fold_identity_case for Minecraft names).
  shared_bans(redis_client* client, const observe::logger* log = nullptr, middleware::ban_list_options opts = {})
      : client_(client), log_(log), alive_(std::make_shared<bool>(true)), fold_(opts.fold_identity_case), list_(opts) {
    if (client_ != nullptr) key_ = key_of(client_->key_prefix(), "bans", "bans");
  }
  shared_bans(const shared_bans&) = delete;
  shared_bans& operator=(const shared_bans&) = delete;
  ~shared_bans() { *alive_ = false; }

  /// The bans made anywhere (this instance's included), for ban_check's `shared`.
  const middleware::ban_list& list() const noexcept { return list_; }

  /// Subscribes and loads the hash now and after every reconnect (on the client's executor).
  void start() {
    if (client_ == nullptr) return;
    asio::post(client_->get_executor(), [this, alive = alive_] {
      if (!*alive) return;
      client_->subscribe(key_, [this](std::string_view, std::string_view msg) { receive(msg); });
      client_->on_state([this, alive](bool up) {
        if (up && *alive) load_all();
      });
      if (client_->ready()) load_all();
    });
  }

  /// Publishes every active ban of `mine` (a ban file just loaded). From any thread.
  void publish(const middleware::ban_list& mine) {
    if (client_ != nullptr) return post_lines(lines_of(mine.serialize()), true, true);  // list() takes them: on_change then
    if (!changed_) return;
    auto copy = std::make_shared<middleware::ban_list>(middleware::ban_list_options{.fold_identity_case = fold_});
    (void)copy->parse(mine.serialize());  // (its own text: always valid)
    changed_(std::move(copy));
  }

  /// What runs after bans were added: f(file), `file` being a copy of the list publish() was
  /// given when list() does not take it (no Redis client), else null. It runs on the thread that
  /// added them (the caller's, or the client's executor) and must not call back here. Set it
  /// once, before start() and before any ban.
  void on_change(std::function<void(std::shared_ptr<const middleware::ban_list>)> f) { changed_ = std::move(f); }

  /// One ban (kind "addr" with an address or CIDR, or "identity" with a name), from any
  /// thread; false when it is not a valid ban. until: {} permanent.
  bool ban(std::string_view kind, std::string_view subject, middleware::ban_clock::time_point until, std::string_view reason = {}) {
    auto line = line_of(kind, subject);
    if (line.empty()) return false;
    line += ' ';
    line += std::to_string(until == middleware::ban_clock::time_point{}
                               ? 0
                               : std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(until.time_since_epoch()).count()));
    line += ' ';
    line += middleware::detail::percent_encode(reason);
    if (!valid(line)) return false;
    std::vector<std::string> lines{std::move(line)};
    apply(lines, true);  // here at once (list() takes it before this returns)
    post_lines(std::move(lines), true, false);
    return true;
  }
  /// Lifts a ban here at once and everywhere, from any thread.
  bool unban(std::string_view kind, std::string_view subject) {
    auto line = line_of(kind, subject);
    if (line.empty()) return false;
    std::vector<std::string> lines{std::move(line)};
    apply(lines, false);
    post_lines(std::move(lines), false, false);
    return true;
  }

  /// True with a Redis client: bans made here reach the other instances.
  bool shared() const noexcept { return client_ != nullptr; }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    return bans_.size();
  }

private:
  // "addr 203.0.113.7/32" (an address alone gets its full prefix) or "identity <encoded name>"
  static std::string line_of(std::string_view kind, std::string_view subject) {
    if (kind == "addr") {
      auto c = middleware::cidr::parse(subject);
      if (!c) return {};
      return "addr " + c->to_string();
    }
    if (kind == "identity" && !subject.empty()) return "identity " + middleware::detail::percent_encode(subject);
    return {};
  }
  // One spelling per ban, as list() keeps it: "addr 198.51.100.7" and "addr 198.51.100.7/32" are
  // one ban, so are "identity a%62" and "identity ab" (and "identity AB" when names are folded).
  // Empty when the field names no ban.
  std::string canonical(std::string_view field) const {
    const auto sp = field.find(' ');
    if (sp == std::string_view::npos) return {};
    const auto kind = field.substr(0, sp), subject = field.substr(sp + 1);
    if (kind == "identity") {
      std::string name;
      if (!middleware::detail::percent_decode(subject, name)) return {};
      if (fold_)
        for (auto& c : name)
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      return line_of(kind, name);
    }
    return line_of(kind, subject);
  }
  static bool valid(std::string_view line) {
    middleware::ban_list probe;
    return bool(probe.parse(line));
  }

  static std::vector<std::string> lines_of(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty() && out.size() < max_bans) {
      auto nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!line.empty() && line.front() != '#') out.emplace_back(line);
    }
    return out;
  }
  // "addr 1.2.3.0/24 0 reason" -> field "addr 1.2.3.0/24", value "0 reason"
  static bool split(std::string_view line, std::string_view& field, std::string_view& value) {
    auto a = line.find(' ');
    if (a == std::string_view::npos) return false;
    auto b = line.find(' ', a + 1);
    field = line.substr(0, b);
    value = b == std::string_view::npos ? std::string_view{} : line.substr(b + 1);
    return true;
  }

  // To Redis (HSET/HDEL and PUBLISH) on the client's executor; `here`: list() takes them there too
  // (ban() and unban() have applied theirs already).
  void post_lines(std::vector<std::string> lines, bool add, bool here) {
    if (client_ == nullptr || lines.empty()) return;
    asio::post(client_->get_executor(), [this, alive = alive_, lines = std::move(lines), add, here] {
      if (!*alive) return;
      if (here) apply(lines, add);  // here at once, even while Redis is away
      std::vector<std::string_view> args{add ? "HSET" : "HDEL", key_};
      std::string msg = add ? "ban\n" : "unban\n";
      for (const auto& l : lines) {
        std::string_view f, v;
        if (add) {
          if (!split(l, f, v)) continue;
          args.push_back(f);
          args.push_back(v);
        } else {
          args.push_back(l);
        }
        msg += l;
        msg += '\n';
      }
      if (args.size() <= 2) return;
      client_->async_command(args, [](std::error_code, reply) {});
      const std::string_view pub[] = {"PUBLISH", key_, msg};
      client_->async_command(pub, [](std::error_code, reply) {});
    });
  }

public:
  /// What a message on the bans channel does ("ban\n" or "unban\n", then ban lines): public for
  /// tests and the fuzz target. Anything else is ignored; invalid lines are dropped one by one.
  void receive(std::string_view msg) {
    auto nl = msg.find('\n');
    if (nl == std::string_view::npos) return;
    const std::string_view verb = msg.substr(0, nl);
    if (verb != "ban" && verb != "unban") return;
    apply(lines_of(msg.substr(nl + 1)), verb == "ban");
  }

private:
  void load_all() {
    const std::string_view args[] = {"HGETALL", key_};
    client_->async_command(args, [this, alive = alive_](std::error_code ec, reply r) {
      if (!*alive || ec || r.type != reply::kind::array) return;
      std::vector<std::string> lines, expired;
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(middleware::ban_clock::now().time_since_epoch()).count();
      for (std::size_t i = 0; i + 1 < r.elements.size() && lines.size() < max_bans; i += 2) {
        const std::string& v = r.elements[i + 1].str;
        const long long until = std::atoll(v.c_str());
        if (until != 0 && until <= now) expired.push_back(r.elements[i].str);
        else lines.push_back(r.elements[i].str + " " + v);
      }
      apply(lines, true);
      if (!expired.empty()) {  // gone for everyone: drop them from the hash
        std::vector<std::string_view> del{"HDEL", key_};
        for (const auto& f : expired) del.push_back(f);
        client_->async_command(del, [](std::error_code, reply) {});
      }
    });
  }

  // Adds or removes bans and rebuilds list() (through the ban file parser: one format).
  void apply(const std::vector<std::string>& lines, bool add) {
    {
      std::lock_guard lock(mu_);
      rebuild(lines, add);
    }
    if (add && changed_) changed_(nullptr);  // (outside the lock: it reads list())
  }
  void rebuild(const std::vector<std::string>& lines, bool add) {
    for (const auto& l : lines) {
      if (!add) {
        bans_.erase(canonical(l));
        continue;
      }
      std::string_view f, v;
      std::string key = split(l, f, v) && valid(l) ? canonical(f) : std::string{};
      if (!key.empty() && (bans_.size() < max_bans || bans_.count(key) != 0)) {
        bans_[std::move(key)] = std::string(v);
      } else if (log_ != nullptr) {
        log_->warn("shared bans: an invalid ban was ignored", {{"ban", std::string_view(l).substr(0, 200)}});
      }
    }
    std::string text = "# rproxy bans v1\n";
    for (const auto& [f, v] : bans_) text += f + " " + v + "\n";
    (void)list_.parse(text);  // every line was checked above
  }

  redis_client* client_;
  const observe::logger* log_;
  std::shared_ptr<bool> alive_;
  std::string key_;
  bool fold_ = false;  ///< names matched ignoring ASCII case (list_'s option)
  mutable std::mutex mu_;
  std::map<std::string, std::string> bans_;  ///< field -> value, as in the hash
  middleware::ban_list list_;
  std::function<void(std::shared_ptr<const middleware::ban_list>)> changed_;
};

}  // namespace rproxy::cluster
