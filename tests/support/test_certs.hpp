// tests/support/test_certs.hpp: a test CA, a second (untrusted) CA, and a leaf for backend.test
// and 127.0.0.1 signed by the first, made once per test process with the openssl CLI (a missing
// openssl fails the test, never skips it). Files: ca.pem/.key, other.pem/.key, leaf.pem/.key,
// garbage.pem (not PEM).
//
//     const auto& c = rproxy::test::certs();
//     server.use_certificate_chain_file(c.path("leaf.pem"));
#pragma once

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace rproxy::test {

struct cert_dir {
  std::filesystem::path dir;
  cert_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "rproxy-certs-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
    const std::string ec = "ec -pkeyopt ec_paramgen_curve:prime256v1";
    for (const char* ca : {"ca", "other"})
      run("openssl req -x509 -newkey " + ec + " -nodes -days 2 -keyout " + path(std::string(ca) + ".key") + " -out " +
          path(std::string(ca) + ".pem") + " -subj /CN=" + ca +
          " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign");
    run("openssl req -newkey " + ec + " -nodes -keyout " + path("leaf.key") + " -out " + path("leaf.csr") + " -subj /CN=backend.test");
    std::ofstream(path("leaf.ext")) << "subjectAltName=DNS:backend.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n";
    run("openssl x509 -req -in " + path("leaf.csr") + " -CA " + path("ca.pem") + " -CAkey " + path("ca.key") +
        " -CAcreateserial -days 2 -out " + path("leaf.pem") + " -extfile " + path("leaf.ext"));
    std::ofstream(path("garbage.pem")) << "not PEM\n";
  }
  cert_dir(const cert_dir&) = delete;
  cert_dir& operator=(const cert_dir&) = delete;
  ~cert_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  std::string path(const std::string& f) const { return (dir / f).string(); }
  static void run(const std::string& cmd) {
    INFO(cmd);
    REQUIRE(std::system((cmd + " >/dev/null 2>&1").c_str()) == 0);
  }
};

/// The process's certificates (made on first use).
inline const cert_dir& certs() {
  static const cert_dir d;
  return d;
}

}  // namespace rproxy::test
