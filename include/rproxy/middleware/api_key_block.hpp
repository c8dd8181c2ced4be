// rproxy/middleware/api_key_block.hpp: the YAML block of the api_key_auth stage, declared once.
//
//     api_keys: { file: api_keys.txt, header: X-API-Key, forward_key: false }
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
  bool forward_key = false;

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(cfg::required<&api_key_block::file>("hashed key file (sha256 name [tier] per line); re-read on reload"),
                       cfg::doc<&api_key_block::header>("request header carrying the key"),
                       cfg::doc<&api_key_block::forward_key>("pass the key's header on to the backends (default: removed)"));
  }
  void validate(rproxy::config::validator& v) const {
    if (!codec::http1::is_valid_field_name(header)) v.at(&api_key_block::header).error("not a header name");
  }
  api_key_config config() const {
    api_key_config c;
    c.sources = {{credential_source::place::header, header, ""}};
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
