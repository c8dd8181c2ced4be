// rproxy/app/side_file.hpp: a side file of an app (a ban list, a key file): loaded when opened
// and again after each change (app/file_watch.hpp: config/watcher, inotify, debounced). A load
// that fails keeps what the last good one loaded and logs the file, the line and the error.
//
//     auto bans = rproxy::app::side_file::open(rt.control().get_executor(), rt.log(), "bans", cfg.bans.file,
//                                              [&list, f = cfg.bans.file](std::size_t* line) { return list.load(f, line); });
//     // keep `bans` while the file is in use; a reload that names another file opens that one
//
// `load(error_line)` reads the file into the app's object and must leave that object as it was
// when it fails (ban_list::load and api_key_store::reload do), setting *error_line when the
// failure has a line (0: none).
#pragma once

#include <asio/any_io_executor.hpp>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <rproxy/app/file_watch.hpp>
#include <rproxy/core/result.hpp>
#include <rproxy/observe/log.hpp>

namespace rproxy::app {

class side_file {
public:
  using load_fn = std::function<result<void>(std::size_t* error_line)>;

  /// Loads `file` now (logged either way) and watches it. `what` names it in the log ("bans").
  static side_file open(const asio::any_io_executor& ex, const observe::logger& log, std::string what, std::filesystem::path file,
                        load_fn load) {
    auto st = std::make_shared<state>(state{&log, std::move(what), std::move(file), std::move(load)});
    st->load_now();
    side_file f(st);
    auto w = file_watch::open(ex, st->file, [st] { st->load_now(); });
    if (w) f.watch_.emplace(std::move(*w));
    else log.warn("file not watched; changes need a reload", {{"what", st->what}, {"file", st->file.string()}, {"error", w.error().message()}});
    return f;
  }

  /// Whether the last load succeeded (a failed one kept the contents before it).
  bool ok() const noexcept { return st_->ok; }
  /// Whether changes to the file are seen (else only open() and reload() load it).
  bool watched() const noexcept { return watch_.has_value(); }
  /// Loads the file now. False: it failed (logged; the previous contents stay).
  bool reload() { return st_->load_now(); }

private:
  struct state {
    const observe::logger* log;
    std::string what;
    std::filesystem::path file;
    load_fn load;
    bool ok = false;

    bool load_now() {
      std::size_t line = 0;
      auto r = load(&line);
      ok = r.has_value();
      if (ok) {
        log->info("file loaded", {{"what", what}, {"file", file.string()}});
        return true;
      }
      const auto at = line ? file.string() + ":" + std::to_string(line) : file.string();
      log->error("file not loaded; the previous contents stay", {{"what", what}, {"at", at}, {"error", r.error().message()}});
      return false;
    }
  };
  explicit side_file(std::shared_ptr<state> st) : st_(std::move(st)) {}

  std::shared_ptr<state> st_;
  std::optional<file_watch> watch_;
};

}  // namespace rproxy::app
