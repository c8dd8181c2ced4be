// rproxy/middleware/jwt_key.hpp: JWS algorithms and verification keys: loaded from PEM public
// keys or certificates, HMAC secrets, or a local JWKS file; each key bound to one algorithm
// family (and optionally one algorithm) so a token can never pick how its key is used
// (an HS256 token "signed" with an RSA public key as HMAC secret finds no key and fails).
//
//     rproxy::middleware::key_set keys;
//     keys.add_pem_file("/etc/rproxy/idp.pem", "idp-2024");         // RSA, EC P-256/P-384, Ed25519
//     keys.add_jwks_file("/etc/rproxy/jwks.json");                  // RSA n/e, EC x/y, OKP x, oct k
//     keys.add_hmac_secret(secret, "svc", rproxy::middleware::jwt_alg::hs256);
//
//     rproxy::middleware::key_store store({{key_source::kind::jwks_file, "/etc/rproxy/jwks.json"}});
//     if (auto r = store.reload(); !r) log(r.error().message());   // keeps the previous keys
//     std::shared_ptr<const key_set> now = store.current();         // a snapshot, swapped whole
//
// Rules: RSA keys must be >= 2048 bits; HMAC secrets must be at least as long as the hash they
// are used with (RFC 7518 §3.2); JWKs with "use" other than "sig", or "key_ops" without
// "verify", or of unsupported types are skipped; a malformed supported JWK fails the load.
#pragma once

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <rproxy/core/json.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/middleware/base64url.hpp>
#include <rproxy/middleware/detail/openssl.hpp>
#include <rproxy/middleware/error.hpp>

namespace rproxy::middleware {

namespace detail {
/// The middleware code (error::json_*) for an error of the JSON reader; other codes unchanged.
inline std::error_code from_json_error(std::error_code ec) noexcept {
  if (ec.category() != json::error_category()) return ec;
  switch (static_cast<json::error>(ec.value())) {
    case json::error::syntax: return error::json_syntax;
    case json::error::too_deep: return error::json_too_deep;
    case json::error::too_large: return error::json_too_large;
    case json::error::duplicate_key: return error::json_duplicate_key;
    case json::error::bad_encoding: return error::json_bad_encoding;
  }
  return error::json_syntax;
}
}  // namespace detail

/// The JWS algorithms this verifier implements (RFC 7518 §3.1, RFC 8037).
enum class jwt_alg : std::uint8_t { hs256, hs384, hs512, rs256, rs384, rs512, ps256, ps384, ps512, es256, es384, eddsa };

/// The kind of key an algorithm needs.
enum class key_family : std::uint8_t { hmac, rsa, ec_p256, ec_p384, ed25519 };

constexpr std::string_view to_string(jwt_alg a) noexcept {
  switch (a) {
    case jwt_alg::hs256: return "HS256";
    case jwt_alg::hs384: return "HS384";
    case jwt_alg::hs512: return "HS512";
    case jwt_alg::rs256: return "RS256";
    case jwt_alg::rs384: return "RS384";
    case jwt_alg::rs512: return "RS512";
    case jwt_alg::ps256: return "PS256";
    case jwt_alg::ps384: return "PS384";
    case jwt_alg::ps512: return "PS512";
    case jwt_alg::es256: return "ES256";
    case jwt_alg::es384: return "ES384";
    case jwt_alg::eddsa: return "EdDSA";
  }
  return "?";
}

/// The algorithm named `s` exactly (case-sensitive, as JOSE requires); nullopt if unknown.
/// "none" is unknown here: the verifier refuses it before looking it up.
constexpr std::optional<jwt_alg> parse_alg(std::string_view s) noexcept {
  for (auto a : {jwt_alg::hs256, jwt_alg::hs384, jwt_alg::hs512, jwt_alg::rs256, jwt_alg::rs384, jwt_alg::rs512,
                 jwt_alg::ps256, jwt_alg::ps384, jwt_alg::ps512, jwt_alg::es256, jwt_alg::es384, jwt_alg::eddsa})
    if (to_string(a) == s) return a;
  return std::nullopt;
}

constexpr key_family family_of(jwt_alg a) noexcept {
  switch (a) {
    case jwt_alg::hs256:
    case jwt_alg::hs384:
    case jwt_alg::hs512: return key_family::hmac;
    case jwt_alg::es256: return key_family::ec_p256;
    case jwt_alg::es384: return key_family::ec_p384;
    case jwt_alg::eddsa: return key_family::ed25519;
    default: return key_family::rsa;
  }
}

/// The hash size in bytes (HMAC output, minimum HMAC secret size); 0 for EdDSA.
constexpr std::size_t hash_size(jwt_alg a) noexcept {
  switch (a) {
    case jwt_alg::hs256:
    case jwt_alg::rs256:
    case jwt_alg::ps256:
    case jwt_alg::es256: return 32;
    case jwt_alg::hs384:
    case jwt_alg::rs384:
    case jwt_alg::ps384:
    case jwt_alg::es384: return 48;
    case jwt_alg::hs512:
    case jwt_alg::rs512:
    case jwt_alg::ps512: return 64;
    case jwt_alg::eddsa: return 0;
  }
  return 0;
}

/// One verification key.
struct jwt_key {
  std::string kid;                ///< empty: matches tokens without "kid" (and any, when no kid is given)
  key_family family = key_family::hmac;
  std::optional<jwt_alg> alg;     ///< when set, the only algorithm this key verifies
  detail::shared_pkey pkey;       ///< public key (all families but hmac)
  std::string secret;             ///< HMAC secret (hmac only)
  /// HMAC contexts keyed with `secret` for SHA-256/384/512 (null where the secret is too short).
  std::array<detail::keyed_mac, 3> hmac{};

  /// Whether this key may verify a token signed with `a`.
  bool accepts(jwt_alg a) const noexcept {
    if (family_of(a) != family || (alg && *alg != a)) return false;
    return family != key_family::hmac || secret.size() >= hash_size(a);
  }
};

namespace detail {

inline std::error_code fail(error e) {
  ERR_clear_error();  // leave no stale errors on this thread's OpenSSL queue (TLS reads it)
  return make_error_code(e);
}

/// Classifies a public key; RSA under 2048 bits is weak.
inline rproxy::result<key_family> classify(EVP_PKEY* k) {
  if (EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "RSA-PSS")) {
    if (EVP_PKEY_get_bits(k) < 2048) return rproxy::failure(fail(error::weak_key));
    return key_family::rsa;
  }
  if (EVP_PKEY_is_a(k, "ED25519")) return key_family::ed25519;
  if (EVP_PKEY_is_a(k, "EC")) {
    char name[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &len) != 1)
      return rproxy::failure(fail(error::bad_key));
    std::string_view g(name, len);
    if (g == "prime256v1" || g == "P-256" || g == "secp256r1") return key_family::ec_p256;
    if (g == "secp384r1" || g == "P-384") return key_family::ec_p384;
  }
  return rproxy::failure(fail(error::bad_key));
}

inline bool family_matches(key_family f, std::optional<jwt_alg> alg) { return !alg || family_of(*alg) == f; }

inline std::string read_file(const std::string& path, bool& ok) {
  std::ifstream in(path, std::ios::binary);
  ok = static_cast<bool>(in);
  if (!ok) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

inline rproxy::result<pkey_ptr> rsa_from_jwk(std::string_view n_b64, std::string_view e_b64) {
  std::string n, e;
  if (!base64url::decode(n_b64, n) || !base64url::decode(e_b64, e) || n.empty() || e.empty())
    return rproxy::failure(fail(error::bad_key));
  bn_ptr bn_n(BN_bin2bn(bytes(n), static_cast<int>(n.size()), nullptr));
  bn_ptr bn_e(BN_bin2bn(bytes(e), static_cast<int>(e.size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(), &OSSL_PARAM_BLD_free);
  if (!bn_n || !bn_e || !bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1)
    return rproxy::failure(fail(error::crypto_failure));
  std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(bld.get()), &OSSL_PARAM_free);
  pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
    return rproxy::failure(fail(error::bad_key));
  return pkey_ptr(raw);
}

inline rproxy::result<pkey_ptr> ec_from_jwk(std::string_view crv, std::string_view x_b64, std::string_view y_b64) {
  std::size_t n = crv == "P-256" ? 32 : crv == "P-384" ? 48 : 0;
  std::string x, y;
  if (n == 0 || !base64url::decode(x_b64, x) || !base64url::decode(y_b64, y) || x.size() != n || y.size() != n)
    return rproxy::failure(fail(error::bad_key));
  std::string pub = "\x04" + x + y;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(n == 32 ? "P-256" : "P-384"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub.data(), pub.size()), OSSL_PARAM_construct_end()};
  pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1)
    return rproxy::failure(fail(error::bad_key));
  pkey_ptr key(raw);
  pkey_ctx_ptr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) return rproxy::failure(fail(error::bad_key));  // point on curve
  return key;
}

inline rproxy::result<pkey_ptr> ed25519_from_jwk(std::string_view x_b64) {
  std::string x;
  if (!base64url::decode(x_b64, x) || x.size() != 32) return rproxy::failure(fail(error::bad_key));
  EVP_PKEY* raw = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, bytes(x), x.size());
  if (raw == nullptr) return rproxy::failure(fail(error::bad_key));
  return pkey_ptr(raw);
}

}  // namespace detail

/// An immutable-once-built set of verification keys.
class key_set {
public:
  /// Adds a PEM public key ("BEGIN PUBLIC KEY") or certificate ("BEGIN CERTIFICATE").
  rproxy::result<void> add_pem(std::string_view pem, std::string kid = {}, std::optional<jwt_alg> alg = {}) {
    detail::bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return rproxy::failure(detail::fail(error::crypto_failure));
    detail::pkey_ptr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
      ERR_clear_error();
      detail::bio_ptr bio2(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
      std::unique_ptr<X509, decltype(&X509_free)> cert(PEM_read_bio_X509(bio2.get(), nullptr, nullptr, nullptr), &X509_free);
      if (cert) key.reset(X509_get_pubkey(cert.get()));
    }
    if (!key) return rproxy::failure(detail::fail(error::bad_key));
    return add_public_key(std::move(key), std::move(kid), alg);
  }

  rproxy::result<void> add_pem_file(const std::string& path, std::string kid = {}, std::optional<jwt_alg> alg = {}) {
    bool ok = false;
    std::string pem = detail::read_file(path, ok);
    if (!ok) return rproxy::failure(make_error_code(error::file_unreadable));
    return add_pem(pem, std::move(kid), alg);
  }

  /// Adds an HMAC secret (raw bytes). It must be at least 32 bytes, and at least the hash size of
  /// `alg` when given; without `alg` it verifies each HS algorithm whose hash it is long enough for.
  rproxy::result<void> add_hmac_secret(std::string secret, std::string kid = {}, std::optional<jwt_alg> alg = {}) {
    if (alg && family_of(*alg) != key_family::hmac) return rproxy::failure(make_error_code(error::bad_key));
    if (secret.size() < (alg ? hash_size(*alg) : 32)) return rproxy::failure(make_error_code(error::weak_key));
    jwt_key k;
    k.kid = std::move(kid);
    k.family = key_family::hmac;
    k.alg = alg;
    k.secret = std::move(secret);
    if (!prepare_hmac(k)) return rproxy::failure(detail::fail(error::crypto_failure));
    keys_.push_back(std::move(k));
    return {};
  }

  /// Adds the usable keys of a JWKS document ({"keys": [...]}) or of a single JWK. All or
  /// nothing: on error no key of this document is added.
  rproxy::result<void> add_jwks(std::string_view text) {
    json::limits lim;
    lim.max_bytes = 1 << 20;
    lim.max_depth = 8;
    lim.max_nodes = 1 << 17;
    auto doc = json::parse(text, lim);
    if (!doc) return rproxy::failure(detail::from_json_error(doc.error()));
    json::value root = doc->root();
    if (!root.is_object()) return rproxy::failure(make_error_code(error::bad_key));
    std::vector<jwt_key> added;
    if (auto ks = root.find("keys")) {
      if (!ks->is_array()) return rproxy::failure(make_error_code(error::bad_key));
      for (json::value jwk : ks->children())
        if (auto r = parse_jwk(jwk, added); !r) return r;
    } else if (auto r = parse_jwk(root, added); !r) {
      return r;
    }
    for (auto& k : added) keys_.push_back(std::move(k));
    return {};
  }

  rproxy::result<void> add_jwks_file(const std::string& path) {
    bool ok = false;
    std::string text = detail::read_file(path, ok);
    if (!ok) return rproxy::failure(make_error_code(error::file_unreadable));
    return add_jwks(text);
  }

  std::span<const jwt_key> keys() const noexcept { return keys_; }
  std::size_t size() const noexcept { return keys_.size(); }
  bool empty() const noexcept { return keys_.empty(); }

private:
  rproxy::result<void> add_public_key(detail::pkey_ptr key, std::string kid, std::optional<jwt_alg> alg) {
    auto fam = detail::classify(key.get());
    if (!fam) return rproxy::failure(fam.error());
    if (!detail::family_matches(*fam, alg)) return rproxy::failure(make_error_code(error::bad_key));
    jwt_key k;
    k.kid = std::move(kid);
    k.family = *fam;
    k.alg = alg;
    k.pkey = detail::share(std::move(key));
    keys_.push_back(std::move(k));
    return {};
  }

  static bool prepare_hmac(jwt_key& k) {
    static constexpr const char* names[] = {"SHA256", "SHA384", "SHA512"};
    static constexpr std::size_t sizes[] = {32, 48, 64};
    for (std::size_t i = 0; i < 3; ++i) {
      if (k.secret.size() < sizes[i]) continue;
      k.hmac[i] = detail::hmac_prepare(names[i], k.secret);
      if (!k.hmac[i]) return false;
    }
    return true;
  }

  static std::optional<std::string_view> str(json::value obj, std::string_view name) {
    auto v = obj.find(name);
    if (!v || !v->is_string()) return std::nullopt;
    return v->as_string();
  }

  // Appends the key of one JWK to `out`, skips a JWK that is not for us, fails a malformed one.
  static rproxy::result<void> parse_jwk(json::value jwk, std::vector<jwt_key>& out) {
    auto bad = [] { return rproxy::result<void>(rproxy::failure(make_error_code(error::bad_key))); };
    if (!jwk.is_object()) return bad();
    auto kty = str(jwk, "kty");
    if (!kty) return bad();
    if (auto use = jwk.find("use")) {
      if (!use->is_string()) return bad();
      if (use->as_string() != "sig") return {};
    }
    if (auto ops = jwk.find("key_ops")) {
      if (!ops->is_array()) return bad();
      bool verify = false;
      for (json::value op : ops->children()) verify |= op.is_string() && op.as_string() == "verify";
      if (!verify) return {};
    }
    std::optional<jwt_alg> alg;
    if (auto a = jwk.find("alg")) {
      if (!a->is_string()) return bad();
      alg = parse_alg(a->as_string());
      if (!alg) return {};  // an algorithm we do not verify (RSA-OAEP, none, ...): not our key
    }
    jwt_key k;
    if (auto kid = jwk.find("kid")) {
      if (!kid->is_string()) return bad();
      k.kid = std::string(kid->as_string());
    }
    k.alg = alg;
    detail::pkey_ptr pkey;
    if (*kty == "RSA") {
      auto n = str(jwk, "n"), e = str(jwk, "e");
      if (!n || !e) return bad();
      auto r = detail::rsa_from_jwk(*n, *e);
      if (!r) return rproxy::failure(r.error());
      pkey = std::move(*r);
    } else if (*kty == "EC") {
      auto crv = str(jwk, "crv"), x = str(jwk, "x"), y = str(jwk, "y");
      if (!crv || !x || !y) return bad();
      if (*crv != "P-256" && *crv != "P-384") return {};  // P-521, secp256k1: unsupported, skipped
      auto r = detail::ec_from_jwk(*crv, *x, *y);
      if (!r) return rproxy::failure(r.error());
      pkey = std::move(*r);
    } else if (*kty == "OKP") {
      auto crv = str(jwk, "crv"), x = str(jwk, "x");
      if (!crv || !x) return bad();
      if (*crv != "Ed25519") return {};  // X25519 (not a signature key), Ed448: skipped
      auto r = detail::ed25519_from_jwk(*x);
      if (!r) return rproxy::failure(r.error());
      pkey = std::move(*r);
    } else if (*kty == "oct") {
      auto kv = str(jwk, "k");
      std::string secret;
      if (!kv || !base64url::decode(*kv, secret)) return bad();
      if (alg && family_of(*alg) != key_family::hmac) return bad();
      if (secret.size() < (alg ? hash_size(*alg) : 32)) return rproxy::failure(make_error_code(error::weak_key));
      k.family = key_family::hmac;
      k.secret = std::move(secret);
      if (!prepare_hmac(k)) return rproxy::failure(detail::fail(error::crypto_failure));
      out.push_back(std::move(k));
      return {};
    } else {
      return {};  // unknown key type: skipped
    }
    auto fam = detail::classify(pkey.get());
    if (!fam) return rproxy::failure(fam.error());
    if (!detail::family_matches(*fam, alg)) return bad();
    k.family = *fam;
    k.pkey = detail::share(std::move(pkey));
    out.push_back(std::move(k));
    return {};
  }

  std::vector<jwt_key> keys_;
};

/// Where a key_store loads its keys from.
struct key_source {
  enum class kind : std::uint8_t { pem_file, jwks_file, hmac_secret_file };
  kind type = kind::jwks_file;
  std::string path;
  std::string kid;                ///< pem_file / hmac_secret_file: the key id tokens name
  std::optional<jwt_alg> alg;     ///< pem_file / hmac_secret_file: restrict the key to one algorithm
};

/// Builds a key set from sources (all must load).
inline rproxy::result<key_set> load_key_set(std::span<const key_source> sources) {
  key_set ks;
  for (const auto& s : sources) {
    rproxy::result<void> r;
    switch (s.type) {
      case key_source::kind::pem_file: r = ks.add_pem_file(s.path, s.kid, s.alg); break;
      case key_source::kind::jwks_file: r = ks.add_jwks_file(s.path); break;
      case key_source::kind::hmac_secret_file: {
        bool ok = false;
        std::string secret = detail::read_file(s.path, ok);
        if (!ok) return rproxy::failure(make_error_code(error::file_unreadable));
        while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
        // A PEM key in the secret file is a mistake (type: pem was meant), and a public key as
        // an HMAC secret is the algorithm-confusion attack: refused.
        if (secret.find("-----BEGIN") != std::string::npos) return rproxy::failure(make_error_code(error::bad_key));
        r = ks.add_hmac_secret(std::move(secret), s.kid, s.alg);
        break;
      }
    }
    if (!r) return rproxy::failure(r.error());
  }
  if (ks.empty()) return rproxy::failure(make_error_code(error::bad_key));
  return ks;
}

/// The live key set of a JWT stage: replaced atomically on reload; verifiers take a snapshot.
class key_store {
public:
  explicit key_store(std::vector<key_source> sources = {}) : sources_(std::move(sources)) {}
  explicit key_store(key_set ks) { replace(std::move(ks)); }

  /// Reloads from the sources; on error the current keys stay in use.
  rproxy::result<void> reload() {
    auto ks = load_key_set(sources_);
    if (!ks) return rproxy::failure(ks.error());
    replace(std::move(*ks));
    return {};
  }

  void replace(key_set ks) {
    auto next = std::make_shared<const key_set>(std::move(ks));
    std::lock_guard lock(mu_);
    current_.swap(next);  // the old one is released outside the lock
  }

  /// The current keys (never null: empty before the first load).
  std::shared_ptr<const key_set> current() const {
    {
      std::lock_guard lock(mu_);
      if (current_) return current_;
    }
    static const auto empty = std::make_shared<const key_set>();
    return empty;
  }

private:
  std::vector<key_source> sources_;
  // A mutex, not std::atomic<std::shared_ptr>: libstdc++ 12 implements that with a lock too,
  // and ThreadSanitizer reports it (see config/snapshot.hpp). Readers take it once per request.
  mutable std::mutex mu_;
  std::shared_ptr<const key_set> current_;
};

}  // namespace rproxy::middleware
