// rproxy/middleware/compress_block.hpp: the YAML block of the compress stage, declared once.
//
//     compress:
//       prefer: [ zstd, br, gzip ]      # offered codings, best first
//       gzip_level: 6
//       br_level: 4
//       zstd_level: 3
//       min_size: 1KiB
//       types: [ text/*, application/json, application/javascript, application/xml, image/svg+xml ]
//
//     std::optional<mw::compress_block> compress;     // in the app's config struct
//     mw::compress_config cc = c.compress->config();
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include <rproxy/config/byte_size.hpp>
#include <rproxy/config/field.hpp>
#include <rproxy/config/scalar.hpp>
#include <rproxy/config/validator.hpp>
#include <rproxy/middleware/compress.hpp>
#include <rproxy/middleware/compress_encoder.hpp>
#include <rproxy/middleware/compress_negotiation.hpp>

namespace rproxy::middleware {

/// The YAML names of the codings (found by argument-dependent lookup).
constexpr auto config_enum_names(content_coding) {
  return std::array{config::enum_name{"gzip", content_coding::gzip}, config::enum_name{"br", content_coding::br},
                    config::enum_name{"zstd", content_coding::zstd}};
}

struct compress_block {
  std::vector<content_coding> prefer{content_coding::zstd, content_coding::br, content_coding::gzip};
  int gzip_level = 6;
  int br_level = 4;
  int zstd_level = 3;
  config::byte_size min_size{1024};
  std::vector<std::string> types{"text/*", "application/json", "application/javascript", "application/xml", "image/svg+xml"};

  static constexpr auto describe() {
    namespace cfg = rproxy::config;
    return cfg::fields(
        cfg::doc<&compress_block::prefer>("codings offered (gzip, br, zstd), best first: on equal client weights the first wins"),
        cfg::doc<&compress_block::gzip_level>("gzip level, 1 (fast) to 9 (small)"),
        cfg::doc<&compress_block::br_level>("brotli quality, 0 (fast) to 11 (small; slow, keep it for static files)"),
        cfg::doc<&compress_block::zstd_level>("zstd level, 1 (fast) to 19 (small)"),
        cfg::doc<&compress_block::min_size>("bodies with a Content-Length below this are sent as they are"),
        cfg::doc<&compress_block::types>("media types compressed: exact (application/json) or a whole type (text/*)"));
  }
  void validate(rproxy::config::validator& v) const {
    if (prefer.empty()) v.at(&compress_block::prefer).error("list at least one coding (or leave the block out)");
    for (std::size_t i = 0; i < prefer.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (prefer[i] == prefer[j]) v.at(&compress_block::prefer).at(i).error("coding listed twice");
    auto range = [&](auto member, int value, int lo, int hi) {
      if (value < lo || value > hi) v.at(member).error("must be from " + std::to_string(lo) + " to " + std::to_string(hi));
    };
    range(&compress_block::gzip_level, gzip_level, compress_levels::gzip_min, compress_levels::gzip_max);
    range(&compress_block::br_level, br_level, compress_levels::br_min, compress_levels::br_max);
    range(&compress_block::zstd_level, zstd_level, compress_levels::zstd_min, compress_levels::zstd_max);
    for (std::size_t i = 0; i < types.size(); ++i) {
      const std::string& t = types[i];
      const auto slash = t.find('/');
      const bool ok = slash != std::string::npos && slash > 0 && slash + 1 < t.size() &&
                      t.compare(0, slash, "*") != 0 && compress_detail::is_token(std::string_view(t).substr(0, slash)) &&
                      (t.substr(slash + 1) == "*" || compress_detail::is_token(std::string_view(t).substr(slash + 1)));
      if (!ok) v.at(&compress_block::types).at(i).error("'" + t + "' is not a media type (type/subtype or type/*)");
    }
  }
  compress_config config() const {
    return {.prefer = prefer, .gzip_level = gzip_level, .br_level = br_level, .zstd_level = zstd_level,
            .min_size = min_size.bytes, .types = types};
  }
};

}  // namespace rproxy::middleware
