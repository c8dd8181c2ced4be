// Tests for rproxy/app/mc_config_load.hpp: a Minecraft config from a main file and a directory of
// server files, and the checks that span files, each error at its file:line:col.
#include <catch2/catch.hpp>

#include <rproxy/app/mc_config_load.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace mcl {
struct config {
  std::string servers_dir;
  std::vector<rproxy::app::mc_server_block> servers;
  std::string default_server;
  rproxy::app::mc_unknown_domain_block unknown_domain{};
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&config::servers_dir>("dir"), doc<&config::servers>("inline"), doc<&config::default_server>("default"),
                  doc<&config::unknown_domain>("unknown"));
  }
};
}  // namespace mcl

namespace {
namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "rproxy-mc-config-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
    fs::create_directory(path / "servers");
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path / name) << text; }
  std::string main() const { return (path / "main.yaml").string(); }
};

const char* const lobby_file = "domains: [Lobby.Example.com]\nbackends:\n  - address: 127.0.0.1:25566\n";
}  // namespace

TEST_CASE("load_mc_config: inline servers and one file per server make one list", "[app]") {
  temp_dir d;
  d.write("main.yaml",
          "servers_dir: servers\ndefault_server: lobby\nservers:\n"
          "  - name: survival\n    domains: [survival.example.com]\n    backends: [{address: 127.0.0.1:25567}]\n");
  d.write("servers/lobby.yaml", lobby_file);
  auto c = rproxy::app::load_mc_config<mcl::config>(d.main());
  INFO((c ? std::string() : c.error().to_string()));
  REQUIRE(c);
  REQUIRE(c->servers.size() == 2);
  CHECK(c->servers[0].name == "survival");
  CHECK(c->servers[1].name == "lobby");  // named by its file
  CHECK(c->servers[1].domains == std::vector<std::string>{"Lobby.Example.com"});
}

TEST_CASE("load_mc_config: a host name claimed twice across files is an error where the second claim is", "[app]") {
  temp_dir d;
  d.write("main.yaml",
          "servers_dir: servers\nservers:\n"
          "  - name: survival\n    domains: [survival.example.com, lobby.example.com.]\n    backends: [{address: 127.0.0.1:25567}]\n");
  d.write("servers/lobby.yaml", lobby_file);
  auto c = rproxy::app::load_mc_config<mcl::config>(d.main());
  REQUIRE_FALSE(c);
  const auto text = c.error().to_string();
  // case and the trailing dot are normalized; the second claim is lobby.yaml's first domain (line 1, column 11)
  CHECK(text == (d.path / "servers/lobby.yaml").string() +
                    ":1:11: domain 'Lobby.Example.com' is already claimed by server 'survival'\n");
}

TEST_CASE("load_mc_config: default_server names a server, and action default needs one", "[app]") {
  temp_dir d;
  SECTION("a default_server no file declares") {
    d.write("main.yaml", "servers_dir: servers\ndefault_server: hub\n");
    d.write("servers/lobby.yaml", lobby_file);
    auto c = rproxy::app::load_mc_config<mcl::config>(d.main());
    REQUIRE_FALSE(c);
    CHECK(c.error().to_string() == d.main() + ":2:17: default_server 'hub' is not a server\n");
  }
  SECTION("unknown_domain.action default without a default_server") {
    d.write("main.yaml", "servers_dir: servers\nunknown_domain:\n  action: default\n");
    d.write("servers/lobby.yaml", lobby_file);
    auto c = rproxy::app::load_mc_config<mcl::config>(d.main());
    REQUIRE_FALSE(c);
    CHECK(c.error().to_string() == d.main() + ":3:11: unknown_domain.action is default but default_server is not set\n");
  }
  SECTION("both set: fine") {
    d.write("main.yaml", "servers_dir: servers\ndefault_server: lobby\nunknown_domain: {action: default}\n");
    d.write("servers/lobby.yaml", lobby_file);
    auto c = rproxy::app::load_mc_config<mcl::config>(d.main());
    INFO((c ? std::string() : c.error().to_string()));
    CHECK(c);
  }
}
