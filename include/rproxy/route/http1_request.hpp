// rproxy/route/http1_request.hpp: an HTTP/1.1 request head as the HTTP router reads it (a model
// of http_route_request, http_request.hpp).
//
//     http1::request_view req{parser.head()};
//     rproxy::route::http1_request r{req};
//     router.match(r, m, rng());
//
// The authority is the Host field, or the target's own for an absolute-form target
// ("GET http://a.example/x HTTP/1.1", RFC 9112 §3.2.2: the target's wins); the path is the
// target's path ("/" for an absolute-form target without one). An asterisk-form target ("*")
// has no path: the router calls it a bad path.
#pragma once

#include <optional>
#include <string_view>

#include <rproxy/codec/http1/request_view.hpp>

namespace rproxy::route {

class http1_request {
public:
  explicit http1_request(const codec::http1::request_view& req) noexcept : req_(&req) {
    std::string_view t = codec::http1::path_of_target(req.target());
    const auto scheme = t.find("://");
    if (!t.empty() && t.front() != '/' && scheme != std::string_view::npos) {
      t.remove_prefix(scheme + 3);
      const auto slash = t.find('/');
      authority_ = t.substr(0, slash);
      path_ = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
      absolute_ = true;
    } else {
      path_ = t;
    }
  }

  std::string_view method() const noexcept { return req_->method(); }
  std::string_view authority() const noexcept { return absolute_ ? authority_ : req_->header("host").value_or(""); }
  std::string_view path() const noexcept { return path_; }
  std::string_view query() const noexcept { return codec::http1::query_of_target(req_->target()); }
  std::optional<std::string_view> header(std::string_view name) const noexcept { return req_->header(name); }
  std::optional<std::string_view> cookie(std::string_view name) const noexcept { return req_->cookie(name); }

private:
  const codec::http1::request_view* req_;
  std::string_view authority_{};
  std::string_view path_{};
  bool absolute_ = false;
};

}  // namespace rproxy::route
