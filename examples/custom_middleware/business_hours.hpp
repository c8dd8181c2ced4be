// A user-written stage: refuse connections outside opening hours, with its own config block.
// Any rproxy app can list it: a refusal is rendered in the client's protocol (a Minecraft
// disconnect or server-list MOTD, an HTTP 403).
#pragma once
#include <ctime>
#include <string>
#include <rproxy/config/field.hpp>
#include <rproxy/pipeline/verdict.hpp>

struct business_hours {
  struct config {
    int open_hour = 0;    // local time, [open_hour, close_hour)
    int close_hour = 24;
    std::string message = "closed: come back during business hours";
    static constexpr auto describe() {
      using namespace rproxy::config;
      return fields(doc<&config::open_hour>("first hour (0-23, local time) when clients are let in"),
                    doc<&config::close_hour>("hour (1-24) from which clients are refused"),
                    doc<&config::message>("why a client was refused (logged and, where the protocol can, shown)"));
    }
  };
  config cfg;                                          // copied per worker at startup
  int (*hour_now)() = [] { std::time_t t = std::time(nullptr); std::tm tm{}; localtime_r(&t, &tm); return tm.tm_hour; };

  template <class Ctx>
  rproxy::verdict on_accept(Ctx&) const {
    const int h = hour_now();
    const bool open = cfg.open_hour <= h && h < cfg.close_hour;
    return open ? rproxy::next : rproxy::reject(rproxy::reject_code::forbidden, cfg.message);
  }
};
