// rproxy/cluster/redis_options.hpp: what a redis_client needs at run time (the `redis:` block,
// redis_block.hpp, builds it, with the password already read from its file or variable).
//
// The password is held here and sent in AUTH; nothing in cluster/ logs it or prints it.
// `tls` set: both connections are TLS, the server's certificate checked as the context says
// (redis_block.hpp loads it; net/tls_client.hpp). It is only declared here, so that a file
// that passes options along needs no OpenSSL header.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rproxy::net {
class tls_client_context;
}

namespace rproxy::cluster {

struct redis_options {
  std::string host = "127.0.0.1";  ///< an IP address or a name resolved once, at start
  std::uint16_t port = 6379;
  std::string user;                ///< ACL user (AUTH user password); empty: AUTH password
  std::string password;            ///< empty: no AUTH
  std::string key_prefix = "rproxy:";
  std::chrono::milliseconds connect_timeout{1000};  ///< TCP connect + AUTH + first PING
  std::chrono::milliseconds command_timeout{250};   ///< past this the command fails and the connection is reset
  std::chrono::milliseconds reconnect_min{100};     ///< first back-off after a failure
  std::chrono::milliseconds reconnect_max{5000};    ///< back-off doubles up to this
  std::size_t max_pending = 10'000;                 ///< commands awaiting an answer, per connection
  std::size_t max_reply_elements = 100'000;         ///< array elements accepted in one reply (all levels)
  std::shared_ptr<const net::tls_client_context> tls{};  ///< null: plain TCP
  std::string tls_name{};  ///< SNI and the name the certificate must carry (empty: the address connected to)
};

}  // namespace rproxy::cluster
