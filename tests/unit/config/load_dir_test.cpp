// Tests for rproxy/config/load_dir.hpp: one item per file, errors naming each file and line.
#include <catch2/catch.hpp>

#include <rproxy/config/load_dir.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace ld {
struct server {
  std::vector<std::string> domains;
  rproxy::config::endpoint address;
  bool proxy_protocol = false;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(required<&server::domains>("hostnames"), required<&server::address>("backend"),
                  doc<&server::proxy_protocol>());
  }
};

struct named {
  std::string name;
  std::vector<std::string> domains;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&named::name>("name; a file's item is named by its file"), required<&named::domains>("hostnames"));
  }
};
struct main_file {
  std::string servers_dir;
  std::vector<named> servers;
  std::string default_server;
  static constexpr auto describe() {
    using namespace rproxy::config;
    return fields(doc<&main_file::servers_dir>("dir"), doc<&main_file::servers>("inline"), doc<&main_file::default_server>("x"));
  }
};
}  // namespace ld

namespace {
namespace cfg = rproxy::config;
namespace fs = std::filesystem;

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "rproxy-config-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path / name) << text; }
};
}  // namespace

TEST_CASE("load_dir: every matching file, in name order, named by its stem", "[config]") {
  temp_dir d;
  d.write("survival.yaml", "domains: [survival.example.com]\naddress: 10.0.0.2:25565\n");
  d.write("lobby.yaml", "domains: [lobby.example.com, hub.example.com]\naddress: 10.0.0.1:25565\nproxy_protocol: true\n");
  d.write("notes.txt", "not yaml: [\n");
  d.write(".lobby.yaml.swp", "garbage: [\n");
  fs::create_directory(d.path / "sub.yaml");  // directories are skipped

  auto r = cfg::load_dir<ld::server>(d.path, "*.yaml");
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r);
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].name == "lobby");
  CHECK((*r)[0].path == d.path / "lobby.yaml");
  CHECK((*r)[0].value.domains == std::vector<std::string>{"lobby.example.com", "hub.example.com"});
  CHECK((*r)[0].value.proxy_protocol);
  CHECK((*r)[1].name == "survival");
  CHECK((*r)[1].value.address == cfg::endpoint{"10.0.0.2", 25565});
  CHECK_FALSE((*r)[1].value.proxy_protocol);
}

TEST_CASE("load_dir: each item keeps the positions of its file, for checks across files", "[config]") {
  temp_dir d;
  d.write("lobby.yaml", "address: 10.0.0.1:25565\ndomains:\n  - lobby.example.com\n  - hub.example.com\n");
  d.write("survival.yaml", "domains: [survival.example.com, hub.example.com]\naddress: 10.0.0.2:25565\n");

  auto r = cfg::load_dir<ld::server>(d.path);
  REQUIRE(r);
  REQUIRE(r->size() == 2);
  const auto& lobby = (*r)[0];
  const auto& survival = (*r)[1];
  CHECK(lobby.pos.file() == (d.path / "lobby.yaml").string());
  CHECK(lobby.pos.find("address") == cfg::mark{1, 10});
  CHECK(lobby.pos.find("domains[1]") == cfg::mark{4, 5});
  CHECK(survival.pos.file() == (d.path / "survival.yaml").string());
  CHECK(survival.pos.find("domains[1]") == cfg::mark{1, 33});
  // Not in the file: the nearest ancestor that is (the document).
  CHECK(survival.pos.find("proxy_protocol") == cfg::mark{1, 1});

  // A check made after loading reports where the second claim is.
  cfg::diagnostics diags;
  diags.add(survival.pos.file(), survival.pos.find("domains[1]"), cfg::error::invalid, "hub.example.com claimed twice");
  CHECK(diags[0].to_string() == (d.path / "survival.yaml").string() + ":1:33: hub.example.com claimed twice");
}

TEST_CASE("load_dir: bad files are reported with their name and line, all of them", "[config]") {
  temp_dir d;
  d.write("a-good.yaml", "domains: [a]\naddress: h:1\n");
  d.write("b-bad.yaml", "domains: [b]\naddress: h:1\nproxy_protocl: true\n");
  d.write("c-worse.yaml", "domains: [c]\n");
  d.write("d-broken.yaml", "domains: [d\n");

  auto r = cfg::load_dir<ld::server>(d.path);
  REQUIRE_FALSE(r);
  const std::string b = (d.path / "b-bad.yaml").string();
  const std::string c = (d.path / "c-worse.yaml").string();
  const std::string e = (d.path / "d-broken.yaml").string();
  const std::vector<std::string> expected = {
      b + ":3:1: unknown key 'proxy_protocl' (did you mean 'proxy_protocol'?)",
      c + ":1:1: missing required key 'address'",
      e + ":2:1: end of sequence flow not found",
  };
  std::vector<std::string> got;
  for (const auto& diag : r.error()) got.push_back(diag.to_string());
  CHECK(got == expected);
  CHECK(r.error()[0].file == b);
}

TEST_CASE("load_dir: empty and missing directories", "[config]") {
  temp_dir d;
  auto empty = cfg::load_dir<ld::server>(d.path);
  REQUIRE(empty);
  CHECK(empty->empty());

  auto missing = cfg::load_dir<ld::server>(d.path / "nope");
  REQUIRE_FALSE(missing);
  REQUIRE(missing.error().size() == 1);
  CHECK(missing.error()[0].to_string() ==
        (d.path / "nope").string() + ": cannot read directory: No such file or directory");
  CHECK(missing.error()[0].code == cfg::error::unreadable);
}

TEST_CASE("load_file: a real file; a directory is not one", "[config]") {
  temp_dir d;
  d.write("one.yaml", "domains: [x]\naddress: \"[::1]:9\"\n");
  auto r = cfg::load_file<ld::server>(d.path / "one.yaml");
  REQUIRE(r);
  CHECK(r->address == cfg::endpoint{"::1", 9});
  auto dir = cfg::load_file<ld::server>(d.path);
  REQUIRE_FALSE(dir);
  CHECK(dir.error()[0].to_string() == d.path.string() + ": cannot read: is a directory");
}

TEST_CASE("matches_pattern: shell patterns, hidden files excluded", "[config]") {
  CHECK(cfg::matches_pattern("lobby.yaml", "*.yaml"));
  CHECK(cfg::matches_pattern("lobby.yml", "*.y*ml"));
  CHECK_FALSE(cfg::matches_pattern("lobby.yaml~", "*.yaml"));
  CHECK_FALSE(cfg::matches_pattern(".lobby.yaml", "*.yaml"));
  CHECK(cfg::matches_pattern(".lobby.yaml", ".*.yaml"));
}

namespace {
auto load_main(const fs::path& p) {
  return cfg::load_with_dir<ld::main_file, &ld::main_file::servers, &ld::main_file::servers_dir, &ld::named::name>(p);
}
}  // namespace

TEST_CASE("load_with_dir: inline items, then the directory's, named by their files, each with its origin", "[config]") {
  temp_dir d;
  fs::create_directory(d.path / "servers");
  d.write("main.yaml", "servers_dir: servers\nservers:\n  - name: hub\n    domains: [hub.example.com]\n");
  d.write("servers/lobby.yaml", "domains:\n  - lobby.example.com\n  - lobby2.example.com\n");
  d.write("servers/pvp.yaml", "name: arena\ndomains: [pvp.example.com]\n");

  auto r = load_main(d.path / "main.yaml");
  INFO((r ? std::string() : r.error().to_string()));
  REQUIRE(r);
  const auto& list = r->value.servers;
  REQUIRE(list.size() == 3);
  CHECK(list[0].name == "hub");
  CHECK(list[1].name == "lobby");  // from the file name
  CHECK(list[2].name == "arena");  // its own name wins
  CHECK(list[1].domains == std::vector<std::string>{"lobby.example.com", "lobby2.example.com"});

  // Each item's fields are found in its own file.
  CHECK(r->pos_of(0).file() == (d.path / "main.yaml").string());
  CHECK(r->find(0, "domains[0]") == cfg::mark{4, 15});
  CHECK(r->pos_of(1).file() == (d.path / "servers" / "lobby.yaml").string());
  CHECK(r->find(1, "domains[1]") == cfg::mark{3, 5});
  cfg::diagnostics diags;
  r->add(diags, 2, "domains[0]", "claimed twice");
  r->add(diags, 0, "domains[0]", "claimed twice");
  REQUIRE(diags.size() == 2);
  CHECK(diags[0].to_string() == (d.path / "servers" / "pvp.yaml").string() + ":2:11: claimed twice");
  CHECK(diags[1].to_string() == (d.path / "main.yaml").string() + ":4:15: claimed twice");
  CHECK(r->main.find("servers_dir") == cfg::mark{1, 14});
}

TEST_CASE("load_with_dir: a name declared twice is reported where the second one is", "[config]") {
  temp_dir d;
  fs::create_directory(d.path / "servers");
  d.write("main.yaml", "servers_dir: servers\nservers: [{name: lobby, domains: [a]}]\n");
  d.write("servers/a.yaml", "name: b\ndomains: [x]\n");
  d.write("servers/b.yaml", "domains: [y]\n");       // named b by its file: a.yaml took it
  d.write("servers/lobby.yaml", "domains: [z]\n");   // lobby is in main.yaml

  auto r = load_main(d.path / "main.yaml");
  REQUIRE_FALSE(r);
  std::vector<std::string> got;
  for (const auto& diag : r.error()) got.push_back(diag.to_string());
  const std::vector<std::string> expected = {
      (d.path / "servers" / "b.yaml").string() + ":1:1: name 'b' is also declared in " + (d.path / "servers" / "a.yaml").string(),
      (d.path / "servers" / "lobby.yaml").string() + ":1:1: name 'lobby' is also declared in " + (d.path / "main.yaml").string(),
  };
  CHECK(got == expected);
}

TEST_CASE("load_with_dir: no directory named, a missing one, a bad file in it", "[config]") {
  temp_dir d;
  d.write("plain.yaml", "servers: [{name: a, domains: [a]}]\n");
  auto plain = load_main(d.path / "plain.yaml");
  REQUIRE(plain);
  CHECK(plain->value.servers.size() == 1);
  CHECK(plain->files.empty());

  d.write("missing.yaml", "servers_dir: nope\n");
  auto missing = load_main(d.path / "missing.yaml");
  REQUIRE_FALSE(missing);
  CHECK(missing.error()[0].to_string() == (d.path / "nope").string() + ": cannot read directory: No such file or directory");

  fs::create_directory(d.path / "abs");
  d.write("abs/x.yaml", "domain: [x]\n");
  d.write("absolute.yaml", "servers_dir: " + (d.path / "abs").string() + "\n");
  auto bad = load_main(d.path / "absolute.yaml");
  REQUIRE_FALSE(bad);
  CHECK(bad.error()[0].file == (d.path / "abs" / "x.yaml").string());

  CHECK(cfg::dir_beside("/etc/app/main.yaml", "servers") == fs::path("/etc/app/servers"));
  CHECK(cfg::dir_beside("/etc/app/main.yaml", "/srv/servers") == fs::path("/srv/servers"));
  CHECK_FALSE(cfg::dir_beside("/etc/app/main.yaml", ""));
}
