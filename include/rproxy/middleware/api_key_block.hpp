// rproxy/middleware/api_key_block.hpp: the YAML block of the api_key_auth stage, declared once.
//
//     api_keys: { file: api_keys.txt, header: X-API-Key, query: api_key, cookie: api_key, forward_key: false }
//
// The key is looked for in the header, then the query parameter and the cookie when they are
// named; wherever it came from, it is left out of the request a backend gets unless forward_key
// (middleware/drop_credentials.hpp: the header removed, the parameter taken out of the target,
// the cookie out of Cookie with the other cookies kept).
//
//     std::optional<mw::api_key_block> api_keys;     // in the app's config struct
//     mw::api_key_store store(c.api_keys->file);     // c.api_keys->load(store, fail) on reload
//     mw::api_key_config kc = c.api_keys->config();
#pragma once

#include <cstddef>
#include <string>

#include <rproxy/codec/http1/message.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/middleware/api_key.hpp>

namespace rproxy::middleware {

struct api_key_block {
  std::string file;
  std::string header = "X-API-Key";
  std::string query;
  std::string cookie;
  bool forward_key = false;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&api_key_block::file>("hashed key file (sha256 name [tier] per line); re-read on reload"),
                       cfg::doc<&api_key_block::header>("request header carrying the key"),
                       cfg::doc<&api_key_block::query>("also take the key from this query parameter (empty: not looked for)"),
                       cfg::doc<&api_key_block::cookie>("also take the key from this cookie (empty: not looked for)"),
                       cfg::doc<&api_key_block::forward_key>(
                           "pass the key on to the backends (default: its header removed, its query parameter and cookie taken out)"));
  }
  void validate(rproxy::config::validator& v) const {
    if (!codec::http1::is_valid_field_name(header)) v.at(&api_key_block::header).error("not a header name");
    if (!query.empty() && query.find_first_of("&=#?; ") != std::string::npos)
      v.at(&api_key_block::query).error("not a query parameter name (no '&', '=', '#', '?', ';' or space)");
    if (!cookie.empty() && !codec::http1::is_valid_field_name(cookie)) v.at(&api_key_block::cookie).error("not a cookie name (a token)");
  }
  api_key_config config() const {
    api_key_config c;
    c.sources = {{credential_source::place::header, header, ""}};
    if (!query.empty()) c.sources.push_back({credential_source::place::query, query, ""});
    if (!cookie.empty()) c.sources.push_back({credential_source::place::cookie, cookie, ""});
    c.forward_key = forward_key;
    return c;
  }
  /// Re-reads the key file; a bad file keeps the old keys and calls fail(what, error, line).
  template <class Fail>
  bool load(api_key_store& store, Fail&& fail) const {
    std::size_t line = 0;
    if (auto r = store.reload(&line); !r) return fail(file, r.error(), line), false;
    return true;
  }
};

}  // namespace rproxy::middleware
