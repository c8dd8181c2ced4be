// rproxy/middleware/detail/openssl.hpp: OpenSSL 3 helpers for the middleware: owning handles,
// SHA-2 digests, HMAC (EVP_MAC) and constant-time comparison. Internal to rproxy::middleware.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace rproxy::middleware::detail {

struct pkey_free {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct pkey_ctx_free {
  void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
struct md_ctx_free {
  void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct mac_ctx_free {
  void operator()(EVP_MAC_CTX* p) const noexcept { EVP_MAC_CTX_free(p); }
};
struct bio_free {
  void operator()(BIO* p) const noexcept { BIO_free(p); }
};
struct bn_free {
  void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_free>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;
using mac_ctx_ptr = std::unique_ptr<EVP_MAC_CTX, mac_ctx_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;
using bn_ptr = std::unique_ptr<BIGNUM, bn_free>;

/// Shared, immutable public key (keys are shared by key set snapshots).
using shared_pkey = std::shared_ptr<EVP_PKEY>;
inline shared_pkey share(pkey_ptr p) { return shared_pkey(p.release(), pkey_free{}); }

inline const unsigned char* bytes(std::string_view s) noexcept {
  return reinterpret_cast<const unsigned char*>(s.data());
}

/// Equal length and equal content, in time independent of where they differ.
inline bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

/// SHA-256 of `in` (32 bytes), or nullopt on a library failure.
inline std::optional<std::array<unsigned char, 32>> sha256(std::string_view in) noexcept {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(in.data(), in.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 || len != 32)
    return std::nullopt;
  return out;
}

/// The EVP_MAC "HMAC" implementation, fetched once per process.
inline EVP_MAC* hmac_impl() noexcept {
  struct holder {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    ~holder() { EVP_MAC_free(mac); }
  };
  static holder h;
  return h.mac;
}

/// HMAC(digest_name, key, data) into `out` (resized to the MAC size). False on failure.
inline bool hmac(const char* digest_name, std::string_view key, std::string_view data, std::string& out) {
  EVP_MAC* mac = hmac_impl();
  if (mac == nullptr) return false;
  mac_ctx_ptr ctx(EVP_MAC_CTX_new(mac));
  if (!ctx) return false;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx.get(), bytes(key), key.size(), params) != 1) return false;
  if (EVP_MAC_update(ctx.get(), bytes(data), data.size()) != 1) return false;
  out.resize(EVP_MAX_MD_SIZE);
  std::size_t len = 0;
  if (EVP_MAC_final(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, out.size()) != 1)
    return false;
  out.resize(len);
  return true;
}

/// SHA-256/384/512 implementations fetched once per process (OpenSSL 3 fetches the provider
/// implementation on every use of EVP_sha256() & co., which dominates short operations).
inline const EVP_MD* fetched_md(std::size_t hash_bytes) noexcept {
  struct holder {
    EVP_MD* md[3] = {EVP_MD_fetch(nullptr, "SHA256", nullptr), EVP_MD_fetch(nullptr, "SHA384", nullptr),
                     EVP_MD_fetch(nullptr, "SHA512", nullptr)};
    ~holder() {
      for (auto* m : md) EVP_MD_free(m);
    }
  };
  static holder h;
  switch (hash_bytes) {
    case 32: return h.md[0] ? h.md[0] : EVP_sha256();
    case 48: return h.md[1] ? h.md[1] : EVP_sha384();
    case 64: return h.md[2] ? h.md[2] : EVP_sha512();
    default: return nullptr;
  }
}

struct mac_ctx_shared_free {
  void operator()(EVP_MAC_CTX* p) const noexcept { EVP_MAC_CTX_free(p); }
};
/// An HMAC context already keyed (shared, never modified: each use works on a duplicate).
using keyed_mac = std::shared_ptr<EVP_MAC_CTX>;

inline keyed_mac hmac_prepare(const char* digest_name, std::string_view key) {
  EVP_MAC* mac = hmac_impl();
  if (mac == nullptr) return nullptr;
  mac_ctx_ptr ctx(EVP_MAC_CTX_new(mac));
  if (!ctx) return nullptr;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name), 0),
      OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(ctx.get(), bytes(key), key.size(), params) != 1) return nullptr;
  return keyed_mac(ctx.release(), mac_ctx_shared_free{});
}

/// HMAC of `data` with a prepared context into `out`. False on failure.
inline bool hmac_with(const keyed_mac& keyed, std::string_view data, std::string& out) {
  if (!keyed) return false;
  mac_ctx_ptr ctx(EVP_MAC_CTX_dup(keyed.get()));
  if (!ctx || EVP_MAC_update(ctx.get(), bytes(data), data.size()) != 1) return false;
  out.resize(EVP_MAX_MD_SIZE);
  std::size_t len = 0;
  if (EVP_MAC_final(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, out.size()) != 1) return false;
  out.resize(len);
  return true;
}

inline std::string to_hex(const unsigned char* p, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    s.push_back(digits[p[i] >> 4]);
    s.push_back(digits[p[i] & 0x0F]);
  }
  return s;
}

/// Decodes hex (either case) into bytes. False if not an even-length hex string.
inline bool from_hex(std::string_view hex, unsigned char* out, std::size_t n) noexcept {
  if (hex.size() != n * 2) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < n; ++i) {
    int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

}  // namespace rproxy::middleware::detail
