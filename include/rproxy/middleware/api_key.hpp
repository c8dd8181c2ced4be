// rproxy/middleware/api_key.hpp: API keys, stored only as SHA-256 hashes, with per-key metadata
// (name, tier); a reloadable store; and the api_key_auth stage.
//
// Key file, one key per line, '#' comments, fields separated by spaces or tabs:
//
//     # sha256(key)                                                   name      tier
//     9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 ci-bot    internal
//     sha256:60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752 partner-a
//
// A presented key is hashed and compared with CRYPTO_memcmp. The table is indexed by the first
// 8 bytes of the hash: a lookup's timing can at most reveal whether some stored hash shares a
// 64-bit prefix with SHA-256(presented key), which gives no way to construct a key. API keys are
// expected to be long random strings (>= 128 bits), so a fast hash is adequate; a slow password
// hash would only make every request expensive. Keys are never logged; stages report the key's
// *name* once it matched, and nothing about a key that did not.
//
//     rproxy::middleware::api_key_store keys("/etc/rproxy/api_keys");
//     if (auto r = keys.reload(); !r) fail(r.error());          // keeps the old table on error
//     rproxy::middleware::api_key_config cfg;                     // default: header X-API-Key
//     auto p = rproxy::make_pipeline<http>(rproxy::middleware::api_key_auth{&cfg, &keys, &audit}, ...);
//     // later stages: find_principal(ctx)->tier, ->api_key (the name)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rproxy/codec/http1/request_view.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/middleware/audit_log.hpp>
#include <rproxy/middleware/detail/openssl.hpp>
#include <rproxy/middleware/drop_credentials.hpp>
#include <rproxy/middleware/error.hpp>
#include <rproxy/middleware/principal.hpp>
#include <rproxy/middleware/request_view.hpp>
#include <rproxy/pipeline/verdict.hpp>

namespace rproxy::middleware {

struct api_key_info {
  std::string name;
  std::string tier;
};

/// The stored hashes and their metadata (immutable once built).
class api_key_table {
public:
  using digest = std::array<unsigned char, 32>;

  /// Adds a stored hash (64 hex digits, optionally prefixed "sha256:").
  rproxy::result<void> add_hash(std::string_view hex, std::string name, std::string tier = {}) {
    if (hex.substr(0, 7) == "sha256:") hex.remove_prefix(7);
    digest d{};
    if (name.empty() || !detail::from_hex(hex, d.data(), d.size()))
      return rproxy::failure(make_error_code(error::bad_key_file));
    add(d, {std::move(name), std::move(tier)});
    return {};
  }

  /// Adds a key by its clear text (for tools and tests; files hold hashes).
  rproxy::result<void> add_key(std::string_view key, std::string name, std::string tier = {}) {
    auto d = detail::sha256(key);
    if (!d || name.empty()) return rproxy::failure(make_error_code(error::crypto_failure));
    add(*d, {std::move(name), std::move(tier)});
    return {};
  }

  /// The metadata of the key, or nullptr. Constant-time comparison of full hashes.
  const api_key_info* find(std::string_view presented) const {
    if (presented.empty() || presented.size() > 4096) return nullptr;
    auto d = detail::sha256(presented);
    if (!d) return nullptr;
    auto [b, e] = index_.equal_range(prefix(*d));
    const api_key_info* found = nullptr;
    for (auto it = b; it != e; ++it) {
      const entry& en = entries_[it->second];
      if (CRYPTO_memcmp(en.hash.data(), d->data(), d->size()) == 0) found = &en.info;
    }
    return found;
  }

  std::size_t size() const noexcept { return entries_.size(); }

  /// Parses a key file. On error `error_line` gets the 1-based line number.
  static rproxy::result<api_key_table> parse(std::string_view text, std::size_t* error_line = nullptr) {
    api_key_table t;
    std::size_t lineno = 0;
    while (!text.empty()) {
      ++lineno;
      auto nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
      std::string_view f[4];
      std::size_t n = 0;
      while (!line.empty()) {
        auto ws = line.find_first_not_of(" \t\r");
        if (ws == std::string_view::npos) break;
        line.remove_prefix(ws);
        if (line.front() == '#') break;
        auto end = line.find_first_of(" \t\r");
        if (n == 4) {
          n = 5;
          break;
        }
        f[n++] = line.substr(0, end);
        line = end == std::string_view::npos ? std::string_view{} : line.substr(end);
      }
      if (n == 0) continue;
      if (n < 2 || n > 3 || !t.add_hash(f[0], std::string(f[1]), n == 3 ? std::string(f[2]) : std::string())) {
        if (error_line) *error_line = lineno;
        return rproxy::failure(make_error_code(error::bad_key_file));
      }
    }
    return t;
  }

  static rproxy::result<api_key_table> load(const std::string& path, std::size_t* error_line = nullptr) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return rproxy::failure(make_error_code(error::file_unreadable));
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse(ss.str(), error_line);
  }

private:
  struct entry {
    digest hash;
    api_key_info info;
  };
  static std::uint64_t prefix(const digest& d) noexcept {
    std::uint64_t p = 0;
    std::memcpy(&p, d.data(), sizeof p);
    return p;
  }
  void add(const digest& d, api_key_info info) {
    index_.emplace(prefix(d), entries_.size());
    entries_.push_back({d, std::move(info)});
  }

  std::vector<entry> entries_;
  std::unordered_multimap<std::uint64_t, std::size_t> index_;
};

/// The live table, swapped atomically on reload.
class api_key_store {
public:
  explicit api_key_store(std::string path = {}) : path_(std::move(path)) {}
  explicit api_key_store(api_key_table t) { replace(std::move(t)); }

  /// Reloads from the file; on error the current table stays in use.
  rproxy::result<void> reload(std::size_t* error_line = nullptr) {
    auto t = api_key_table::load(path_, error_line);
    if (!t) return rproxy::failure(t.error());
    replace(std::move(*t));
    return {};
  }
  void replace(api_key_table t) {
    auto next = std::make_shared<const api_key_table>(std::move(t));
    std::lock_guard lock(mu_);
    current_.swap(next);  // the old one is released outside the lock
  }
  std::shared_ptr<const api_key_table> current() const {
    {
      std::lock_guard lock(mu_);
      if (current_) return current_;
    }
    static const auto empty = std::make_shared<const api_key_table>();
    return empty;
  }

private:
  std::string path_;
  // A mutex, not std::atomic<std::shared_ptr>: libstdc++ 12 implements that with a lock too,
  // and ThreadSanitizer reports it (see config/snapshot.hpp). Readers take it once per request.
  mutable std::mutex mu_;
  std::shared_ptr<const api_key_table> current_;
};

struct api_key_config {
  std::vector<credential_source> sources{credential_source{credential_source::place::header, "X-API-Key", ""}};
  bool optional = false;  ///< no key: pass as anonymous (a wrong key still rejects)
  /// Pass the key's header on to the backend. Off by default: a gateway that authenticates a
  /// client by its key does not hand the secret to every backend behind it.
  bool forward_key = false;
  std::string reject_message = "invalid or missing API key";
};

template <class Tag = void>
struct basic_api_key_auth {
  struct state {
    principal auth;
  };

  const api_key_config* cfg = nullptr;
  const api_key_store* keys = nullptr;
  audit_log* audit = nullptr;

  /// The key's metadata (copied: the table may be swapped), or an error.
  template <class Req>
  rproxy::result<api_key_info> authenticate(const Req& req) const {
    auto key = find_credential(req, std::span<const credential_source>(cfg->sources));
    if (!key) return rproxy::failure(make_error_code(error::missing_credentials));
    auto table = keys->current();
    const api_key_info* info = table->find(*key);
    if (!info) return rproxy::failure(make_error_code(error::unknown_api_key));
    return *info;
  }

  /// Leaves the key out of the request sent upstream (middleware/drop_credentials.hpp): its
  /// header removed, its query parameter taken out of the target (after a router set it: place
  /// this stage after apply_http_route), its cookie taken out of Cookie, other cookies kept.
  template <class Ctx, class Req>
  void drop_key(Ctx& ctx, const Req& req) const {
    drop_credentials(ctx, req, std::span<const credential_source>(cfg->sources));
  }

  template <class Ctx, request_view Req>
  rproxy::verdict on_hello(Ctx& ctx, const Req& req) {
    // Before the check, so the key is dropped whatever the outcome (an optional stage lets a
    // request without a valid key through too): the flow leaves out the client's field of a
    // removed name on every HTTP version (flow/http1_exchange.hpp's upstream_head).
    if (!cfg->forward_key) drop_key(ctx, req);
    auto r = authenticate(req);
    if (!r) {
      if (r.error() == error::missing_credentials && cfg->optional) return rproxy::next;
      return reject_and_audit(ctx, audit, {reject_code::unauthorized, cfg->reject_message}, "api_key_auth",
                              r.error().message());
    }
    auto& p = ctx.template state<basic_api_key_auth>().auth;
    p.authenticated = true;
    p.subject = r->name;
    p.api_key = r->name;
    p.tier = r->tier;
    if (ctx.identity.empty()) ctx.identity = r->name;
    return rproxy::next;
  }
};

using api_key_auth = basic_api_key_auth<>;

}  // namespace rproxy::middleware
