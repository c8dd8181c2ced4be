// rproxy/net/quic/server_endpoint.hpp: a QUIC server on one UDP socket of one worker.
//
//     server_endpoint<Factory> ep(socket, {.worker = i, .workers = n, .secrets = &s, .settings = ...}, factory);
//     ep.set_peers(all_endpoints);   // several workers: where packets of their connections go
//     ep.start();                    // receives until close()
//
// What it does with each datagram (RFC 9000 §5.2, §6, §8.1, §10.3, §17):
//   1. the version and DCID are read (ngtcp2_pkt_decode_version_cid); an unknown version gets a
//      Version Negotiation packet;
//   2. a DCID in this worker's table goes to its connection;
//   3. a DCID issued by another worker (cid.hpp: its first byte) is handed to that worker's
//      endpoint (asio::post: the copy of one datagram). This is how SO_REUSEPORT and several
//      workers work together: the kernel spreads packets by 4-tuple, a connection lives on the
//      worker that accepted it, and a packet that reached the wrong socket (client migration,
//      a NAT rebinding, a changed socket set) is forwarded once;
//   4. an Initial with an unknown DCID starts a connection: with `retry` on, a client that
//      brings no valid token gets a Retry (token.hpp) and only a client that comes back with
//      one gets a connection (its address is then validated); a bad token ends it with
//      INVALID_TOKEN; more than max_connections: CONNECTION_REFUSED;
//   5. any other short-header packet for a CID of ours that we do not know (a restart, a
//      connection gone) gets a Stateless Reset, smaller than the packet that caused it.
// The stateless-reset secret and the token key are per process (endpoint_secrets), shared by
// the workers' endpoints, so any worker can reset or validate for any other.
//
// `Factory` makes each connection's application: `factory.start()` returns
// std::optional<typename Factory::app_type::start_type> (nullopt: refuse, e.g. while draining),
// which has `credentials()` (the TLS certificates to use) and is moved into the App's
// constructor. Connections are destroyed on this endpoint's executor once they are finished.
#pragma once

#include <asio/ip/udp.hpp>
#include <asio/post.hpp>
#include <asio/socket_base.hpp>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include <rproxy/net/quic/cid.hpp>
#include <rproxy/net/quic/clock.hpp>
#include <rproxy/net/quic/connection.hpp>
#include <rproxy/net/quic/tls.hpp>
#include <rproxy/net/quic/token.hpp>
#include <rproxy/net/quic/udp.hpp>

namespace rproxy::net::quic {

/// The per-process secrets every worker's endpoint shares.
struct endpoint_secrets {
  token_key tokens = token_key::generate();
  std::array<std::uint8_t, 32> reset_secret{};
  static endpoint_secrets generate() {
    endpoint_secrets s;
    random_bytes(s.reset_secret);
    return s;
  }
};

struct endpoint_settings {
  transport_settings transport{};
  bool retry = false;                                   ///< address validation (Retry) for every new connection
  std::uint32_t retry_above = 0;                        ///< else: Retry once more than this many connections start in a second (0: never)
  std::chrono::milliseconds token_lifetime = std::chrono::seconds(10);
  std::size_t max_connections = 10000;                  ///< per worker
};

/// Counters of one endpoint: written by its worker only, read from any thread (metrics).
struct endpoint_stats {
  using counter = std::atomic<std::uint64_t>;
  counter datagrams_in{0}, connections{0}, open{0}, handshakes{0}, retries_sent{0}, bad_tokens{0}, version_negotiations{0},
      stateless_resets{0}, refused{0}, handed_off{0}, dropped{0}, send_dropped{0};
  /// Packets with stream data declared lost (connection_hooks::packets_lost says what is seen).
  counter packets_lost{0};
  /// Smoothed RTT of the connections closed so far: how many had a sample, and their sum (us).
  counter rtt_samples{0}, rtt_sum_us{0};
  /// One more (single writer: no locked instruction).
  static void bump(counter& c, std::uint64_t n = 1) noexcept { c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  static std::uint64_t get(const counter& c) noexcept { return c.load(std::memory_order_relaxed); }
};

template <class Factory>
class server_endpoint {
public:
  using app_type = typename Factory::app_type;
  using conn_type = connection<app_type>;

  struct options {
    std::size_t worker = 0, workers = 1;
    const endpoint_secrets* secrets = nullptr;
    endpoint_settings settings{};
  };

  server_endpoint(asio::ip::udp::socket s, options o, Factory f)
      : socket_(std::move(s)), o_(o), factory_(std::move(f)), local_(socket_.local_endpoint()), tx_(socket_.native_handle()),
        buf_(65536) {}
  server_endpoint(const server_endpoint&) = delete;
  server_endpoint& operator=(const server_endpoint&) = delete;
  /// Destroy only once size() is 0 (close(), then let the executor run), or with the executor
  /// gone: a connection's pending handlers refer to it.
  ~server_endpoint() = default;

  /// The endpoints of all workers on this address, by worker index (this one included).
  void set_peers(std::vector<server_endpoint*> peers) { peers_ = std::move(peers); }
  void start() {
    if (o_.settings.transport.early_data) (void)anti_replay::context();  // this worker's, before its first ticket
    wait();
  }
  /// Stops receiving and drops every connection silently (after the app's graceful end).
  void close() {
    closed_ = true;
    std::error_code ignored;
    socket_.cancel(ignored);
    std::vector<conn_type*> all;
    for (auto& [k, e] : conns_) all.push_back(e.conn.get());
    for (auto* c : all) c->abandon();
  }
  /// Stops receiving new connections (draining); packets of live ones still flow.
  void stop_accepting() noexcept { accepting_ = false; }

  template <class F>
  void for_each_connection(F&& f) {
    for (auto& [k, e] : conns_) f(*e.conn);
  }
  std::size_t size() const noexcept { return conns_.size(); }
  const endpoint_stats& stats() const noexcept { return stats_; }
  const asio::ip::udp::endpoint& local_endpoint() const noexcept { return local_; }
  asio::any_io_executor get_executor() { return socket_.get_executor(); }

  /// A datagram another worker received for one of ours (on its executor: posted here).
  void deliver(asio::ip::udp::endpoint remote, std::vector<std::uint8_t> pkt) {
    if (closed_) return;
    handle(remote, std::span<const std::uint8_t>(pkt), true);
  }

private:
  struct entry {
    std::unique_ptr<conn_type> conn;
    std::vector<connection_id> cids;
  };

  void wait() {
    if (closed_) return;
    socket_.async_wait(asio::socket_base::wait_read, [this](const std::error_code& ec) {
      if (ec || closed_) return;
      receive();
      wait();
    });
  }

  /// Reads what the socket has (at most a batch, so timers and other sockets get their turn).
  void receive() {
    for (int i = 0; i < 64 && !closed_; ++i) {
      sockaddr_storage from{};
      socklen_t fromlen = sizeof from;
      const auto n = ::recvfrom(socket_.native_handle(), buf_.data(), buf_.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fromlen);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;  // EAGAIN, or an ICMP error reported on the socket: nothing more now
      }
      asio::ip::udp::endpoint remote;
      if (fromlen > remote.capacity()) continue;
      std::memcpy(remote.data(), &from, fromlen);
      remote.resize(fromlen);
      endpoint_stats::bump(stats_.datagrams_in);
      handle(remote, std::span<const std::uint8_t>(buf_.data(), static_cast<std::size_t>(n)), false);
    }
  }

  void handle(const asio::ip::udp::endpoint& remote, std::span<const std::uint8_t> pkt, bool handed) {
    path_storage ps(local_, remote);
    ngtcp2_version_cid vc{};
    const int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt.data(), pkt.size(), cid_length);
    if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) return send_version_negotiation(ps, vc);
    if (rv != 0) return drop();
    const auto dcid = connection_id::from(vc.dcid, vc.dcidlen);
    if (auto it = table_.find(dcid); it != table_.end()) return it->second->on_packet(ps.path, pkt);
    const auto owner = cid_worker(dcid.span(), o_.workers);
    if (owner && *owner != o_.worker && !handed && *owner < peers_.size() && peers_[*owner] != nullptr) {
      endpoint_stats::bump(stats_.handed_off);
      auto* peer = peers_[*owner];
      asio::post(peer->get_executor(), [peer, remote, copy = std::vector<std::uint8_t>(pkt.begin(), pkt.end())]() mutable {
        peer->deliver(remote, std::move(copy));
      });
      return;
    }
    if ((pkt[0] & 0x80) == 0) {  // a short header for a connection we do not have
      if (owner) return send_stateless_reset(ps, dcid, pkt.size());
      return drop();
    }
    accept(ps, pkt);
  }

  void accept(const path_storage& ps, std::span<const std::uint8_t> pkt) {
    ngtcp2_pkt_hd hd{};
    if (ngtcp2_accept(&hd, pkt.data(), pkt.size()) != 0) return drop();  // not an Initial we can take
    if (!accepting_ || conns_.size() >= o_.settings.max_connections) {
      endpoint_stats::bump(stats_.refused);
      return send_close(ps, hd, NGTCP2_CONNECTION_REFUSED);
    }
    const auto addr = address_bytes::of(reinterpret_cast<const sockaddr*>(ps.path.remote.addr));
    auto odcid = connection_id::from(hd.dcid);
    std::optional<connection_id> retry_scid;
    if (hd.token.len > 0 && hd.token.base[0] == token_key::kind_retry) {
      auto r = o_.secrets->tokens.validate(std::span<const std::uint8_t>(hd.token.base, hd.token.len), addr, now(), o_.settings.token_lifetime);
      if (!r) {
        endpoint_stats::bump(stats_.bad_tokens);
        return send_close(ps, hd, NGTCP2_INVALID_TOKEN);
      }
      retry_scid = connection_id::from(hd.dcid);
      odcid = *r;
    } else if (retry_wanted()) {
      return send_retry(ps, hd, addr);
    }
    auto start = factory_.start();
    if (!start) {
      endpoint_stats::bump(stats_.refused);
      return send_close(ps, hd, NGTCP2_CONNECTION_REFUSED);
    }
    const auto scid = make_cid(o_.worker);
    std::array<std::uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> reset{};
    const auto s = scid.to_ngtcp2();
    if (ngtcp2_crypto_generate_stateless_reset_token(reset.data(), o_.secrets->reset_secret.data(), o_.secrets->reset_secret.size(), &s) != 0)
      return drop();
    const tls_credentials& creds = start->credentials();
    auto c = std::make_unique<conn_type>(socket_.get_executor(), hooks(), std::move(*start));
    if (c->init_server(hd, ps.path, scid, odcid, retry_scid ? &*retry_scid : nullptr, reset, o_.settings.transport, creds)) return drop();
    auto* raw = c.get();
    auto& e = conns_[raw];
    e.conn = std::move(c);
    e.cids = {scid, connection_id::from(hd.dcid)};  // the client's first DCID routes here until the end
    table_[scid] = raw;
    table_[connection_id::from(hd.dcid)] = raw;
    endpoint_stats::bump(stats_.connections);
    stats_.open.store(conns_.size(), std::memory_order_relaxed);
    ++started_this_second_;
    raw->on_packet(ps.path, pkt);
  }

  bool retry_wanted() {
    if (o_.settings.retry) return true;
    if (o_.settings.retry_above == 0) return false;
    const auto t = clock::now();
    if (t - second_start_ >= std::chrono::seconds(1)) {
      second_start_ = t;
      started_this_second_ = 0;
    }
    return started_this_second_ >= o_.settings.retry_above;
  }

  void send_retry(const path_storage& ps, const ngtcp2_pkt_hd& hd, const address_bytes& addr) {
    const auto token = o_.secrets->tokens.make(addr, connection_id::from(hd.dcid), now());
    const auto rscid = make_cid(o_.worker).to_ngtcp2();
    std::array<std::uint8_t, NGTCP2_MAX_UDP_PAYLOAD_SIZE> out;
    const auto n = ngtcp2_crypto_write_retry(out.data(), out.size(), hd.version, &hd.scid, &rscid, &hd.dcid, token.data(), token.size());
    if (n <= 0) return drop();
    endpoint_stats::bump(stats_.retries_sent);
    (void)tx_.send(ps.path.remote, std::span<const std::uint8_t>(out.data(), static_cast<std::size_t>(n)));
  }

  void send_close(const path_storage& ps, const ngtcp2_pkt_hd& hd, std::uint64_t code) {
    std::array<std::uint8_t, NGTCP2_MAX_UDP_PAYLOAD_SIZE> out;
    // Our SCID is random: this connection will not exist.
    const auto scid = make_cid(o_.worker).to_ngtcp2();
    const auto n = ngtcp2_crypto_write_connection_close(out.data(), out.size(), hd.version, &hd.scid, &scid, code, nullptr, 0);
    if (n > 0) (void)tx_.send(ps.path.remote, std::span<const std::uint8_t>(out.data(), static_cast<std::size_t>(n)));
  }

  void send_version_negotiation(const path_storage& ps, const ngtcp2_version_cid& vc) {
    std::array<std::uint8_t, NGTCP2_MAX_UDP_PAYLOAD_SIZE> out;
    std::uint8_t unused = 0;
    random_bytes(std::span(&unused, 1));
    const std::uint32_t versions[] = {NGTCP2_PROTO_VER_V1};
    const auto n = ngtcp2_pkt_write_version_negotiation(out.data(), out.size(), unused, vc.scid, vc.scidlen, vc.dcid, vc.dcidlen, versions, 1);
    if (n <= 0) return drop();
    endpoint_stats::bump(stats_.version_negotiations);
    (void)tx_.send(ps.path.remote, std::span<const std::uint8_t>(out.data(), static_cast<std::size_t>(n)));
  }

  /// RFC 9000 §10.3: shorter than the packet that caused it (so two endpoints cannot loop),
  /// at least 5 random bytes + the 16-byte token + the first byte.
  void send_stateless_reset(const path_storage& ps, const connection_id& dcid, std::size_t received) {
    constexpr std::size_t min_size = 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN;
    if (received <= min_size) return drop();
    const std::size_t size = std::min<std::size_t>(received - 1, 64);
    std::array<std::uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> token{};
    const auto c = dcid.to_ngtcp2();
    if (ngtcp2_crypto_generate_stateless_reset_token(token.data(), o_.secrets->reset_secret.data(), o_.secrets->reset_secret.size(), &c) != 0)
      return drop();
    std::array<std::uint8_t, 64> rand{}, out{};
    const std::size_t randlen = size - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
    random_bytes(std::span(rand).first(randlen));
    const auto n = ngtcp2_pkt_write_stateless_reset(out.data(), size, token.data(), rand.data(), randlen);
    if (n <= 0) return drop();
    endpoint_stats::bump(stats_.stateless_resets);
    (void)tx_.send(ps.path.remote, std::span<const std::uint8_t>(out.data(), static_cast<std::size_t>(n)));
  }

  void drop() noexcept { endpoint_stats::bump(stats_.dropped); }

  // --- the connections' hooks ----------------------------------------------------------------
  connection_hooks hooks() {
    connection_hooks h;
    h.owner = this;
    h.send = [](void* o, const ngtcp2_path& p, std::span<const std::uint8_t> d, std::size_t seg) {
      auto& self = *static_cast<server_endpoint*>(o);
      const auto before = self.tx_.dropped();
      (void)self.tx_.send(p.remote, d, seg);
      if (self.tx_.dropped() != before) self.stats_.send_dropped.store(self.tx_.dropped(), std::memory_order_relaxed);
    };
    h.new_cid = [](void* o, void* c, ngtcp2_cid* cid, std::uint8_t* token, std::size_t len) {
      auto& self = *static_cast<server_endpoint*>(o);
      if (len != cid_length) return -1;
      const auto id = make_cid(self.o_.worker);
      *cid = id.to_ngtcp2();
      if (ngtcp2_crypto_generate_stateless_reset_token(token, self.o_.secrets->reset_secret.data(), self.o_.secrets->reset_secret.size(), cid) != 0)
        return -1;
      auto* conn = static_cast<conn_type*>(c);
      self.table_[id] = conn;
      self.conns_[conn].cids.push_back(id);
      return 0;
    };
    h.cid_retired = [](void* o, void* c, const ngtcp2_cid& cid) {
      auto& self = *static_cast<server_endpoint*>(o);
      const auto id = connection_id::from(cid);
      if (auto it = self.table_.find(id); it != self.table_.end() && it->second == c) self.table_.erase(it);
    };
    h.handshake_done = [](void* o, void*) { endpoint_stats::bump(static_cast<server_endpoint*>(o)->stats_.handshakes); };
    h.packets_lost = [](void* o, void*, std::uint64_t n) { endpoint_stats::bump(static_cast<server_endpoint*>(o)->stats_.packets_lost, n); };
    h.finished = [](void* o, void* c) {
      auto& self = *static_cast<server_endpoint*>(o);
      // Destroyed from a fresh handler: the connection's own code is on the stack now.
      asio::post(self.socket_.get_executor(), [&self, c] { self.forget(static_cast<conn_type*>(c)); });
    };
    return h;
  }

  void forget(conn_type* c) {
    auto it = conns_.find(c);
    if (it == conns_.end()) return;
    for (const auto& id : it->second.cids)
      if (auto t = table_.find(id); t != table_.end() && t->second == c) table_.erase(t);
    if (const auto rtt = c->smoothed_rtt()) {
      endpoint_stats::bump(stats_.rtt_samples);
      endpoint_stats::bump(stats_.rtt_sum_us, static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(*rtt).count()));
    }
    conns_.erase(it);  // destroys the connection
    stats_.open.store(conns_.size(), std::memory_order_relaxed);
  }

  asio::ip::udp::socket socket_;
  options o_;
  Factory factory_;
  asio::ip::udp::endpoint local_;
  udp_sender tx_;
  std::vector<std::uint8_t> buf_;
  std::unordered_map<connection_id, conn_type*, cid_hash> table_;
  std::unordered_map<conn_type*, entry> conns_;
  std::vector<server_endpoint*> peers_;
  endpoint_stats stats_;
  clock::time_point second_start_{};
  std::uint32_t started_this_second_ = 0;
  bool closed_ = false, accepting_ = true;
};

}  // namespace rproxy::net::quic
