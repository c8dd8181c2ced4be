// Test support for the middleware JWT tests: key generation and token signing with the
// OpenSSL 3 EVP API, plus PEM and JWK export, so every vector is made fresh in the test.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <rproxy/middleware/base64url.hpp>
#include <rproxy/middleware/detail/openssl.hpp>
#include <rproxy/middleware/jwt_key.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace test_jwt {

namespace mw = rproxy::middleware;
using mw::detail::pkey_ptr;

inline pkey_ptr gen(const char* type, const char* param = nullptr, std::size_t bits = 0) {
  EVP_PKEY* k = nullptr;
  if (bits != 0) k = EVP_PKEY_Q_keygen(nullptr, nullptr, type, bits);
  else if (param != nullptr) k = EVP_PKEY_Q_keygen(nullptr, nullptr, type, param);
  else k = EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  if (k == nullptr) throw std::runtime_error("keygen failed");
  return pkey_ptr(k);
}

/// Keys made once per test binary (RSA generation is slow).
struct keys {
  pkey_ptr rsa = gen("RSA", nullptr, 2048);
  pkey_ptr rsa2 = gen("RSA", nullptr, 2048);
  pkey_ptr rsa_small = gen("RSA", nullptr, 1024);
  pkey_ptr p256 = gen("EC", "P-256");
  pkey_ptr p384 = gen("EC", "P-384");
  pkey_ptr ed = gen("ED25519");
  std::string hs_secret = std::string(64, 'k') + "-secret-for-tests";
  static const keys& get() {
    static const keys k;
    return k;
  }
};

inline std::string public_pem(EVP_PKEY* k) {
  mw::detail::bio_ptr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), k);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

inline std::string bn_param(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &bn) != 1) throw std::runtime_error("bn param");
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

inline std::string bn_param_padded(EVP_PKEY* k, const char* name, int len) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &bn) != 1) throw std::runtime_error("bn param");
  std::string out(static_cast<std::size_t>(len), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), len);
  BN_free(bn);
  return out;
}

/// The public JWK of `k` (RSA, EC P-256/P-384, Ed25519), with optional kid and alg.
inline std::string jwk(EVP_PKEY* k, const std::string& kid = "", const std::string& alg = "") {
  std::string extra;
  if (!kid.empty()) extra += R"(,"kid":")" + kid + "\"";
  if (!alg.empty()) extra += R"(,"alg":")" + alg + "\"";
  auto b = [](const std::string& s) { return mw::base64url::encode(s); };
  if (EVP_PKEY_is_a(k, "RSA"))
    return R"({"kty":"RSA","n":")" + b(bn_param(k, OSSL_PKEY_PARAM_RSA_N)) + R"(","e":")" +
           b(bn_param(k, OSSL_PKEY_PARAM_RSA_E)) + "\"" + extra + "}";
  if (EVP_PKEY_is_a(k, "EC")) {
    int n = EVP_PKEY_get_bits(k) == 256 ? 32 : 48;
    return R"({"kty":"EC","crv":")" + std::string(n == 32 ? "P-256" : "P-384") + R"(","x":")" +
           b(bn_param_padded(k, OSSL_PKEY_PARAM_EC_PUB_X, n)) + R"(","y":")" +
           b(bn_param_padded(k, OSSL_PKEY_PARAM_EC_PUB_Y, n)) + "\"" + extra + "}";
  }
  unsigned char raw[32];
  std::size_t len = sizeof raw;
  EVP_PKEY_get_raw_public_key(k, raw, &len);
  return R"({"kty":"OKP","crv":"Ed25519","x":")" + b(std::string(reinterpret_cast<char*>(raw), len)) + "\"" +
         extra + "}";
}

inline std::string oct_jwk(const std::string& secret, const std::string& kid = "", const std::string& alg = "") {
  std::string s = R"({"kty":"oct","k":")" + mw::base64url::encode(secret) + "\"";
  if (!kid.empty()) s += R"(,"kid":")" + kid + "\"";
  if (!alg.empty()) s += R"(,"alg":")" + alg + "\"";
  return s + "}";
}

/// Signs `input` as `alg` with a private key (or the HMAC secret).
inline std::string sign(mw::jwt_alg alg, EVP_PKEY* k, const std::string& secret, const std::string& input) {
  using A = mw::jwt_alg;
  if (mw::family_of(alg) == mw::key_family::hmac) {
    std::string mac;
    const char* md = alg == A::hs256 ? "SHA256" : alg == A::hs384 ? "SHA384" : "SHA512";
    if (!mw::detail::hmac(md, secret, input, mac)) throw std::runtime_error("hmac");
    return mac;
  }
  const EVP_MD* md = nullptr;
  switch (mw::hash_size(alg)) {
    case 32: md = EVP_sha256(); break;
    case 48: md = EVP_sha384(); break;
    case 64: md = EVP_sha512(); break;
    default: break;
  }
  mw::detail::md_ctx_ptr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, k) != 1) throw std::runtime_error("sign init");
  if (alg == A::ps256 || alg == A::ps384 || alg == A::ps512) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  std::size_t len = 0;
  auto in = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size()) != 1) throw std::runtime_error("sign len");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, input.size()) != 1)
    throw std::runtime_error("sign");
  sig.resize(len);
  if (alg == A::es256 || alg == A::es384) {  // DER -> R || S
    std::size_t half = alg == A::es256 ? 32 : 48;
    auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(2 * half, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(half));
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + half, static_cast<int>(half));
    ECDSA_SIG_free(es);
    return raw;
  }
  return sig;
}

/// A compact JWS of `header_json` and `claims_json`.
inline std::string token(mw::jwt_alg alg, EVP_PKEY* k, const std::string& secret, const std::string& header_json,
                         const std::string& claims_json) {
  std::string input = mw::base64url::encode(header_json) + "." + mw::base64url::encode(claims_json);
  return input + "." + mw::base64url::encode(sign(alg, k, secret, input));
}

inline std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace test_jwt
