// libFuzzer target for the ban file (rproxy/middleware/ban.hpp): any text is parsed without a
// crash or undefined behaviour (huge `until` values included); a file that parses, written
// again and parsed again, gives the same file.
#include <rproxy/middleware/ban.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  rproxy::middleware::ban_list bans;
  std::size_t line = 0;
  if (!bans.parse(text, &line)) return 0;
  const auto now = std::chrono::system_clock::time_point{};  // nothing written has expired
  const std::string once = bans.serialize(now);
  rproxy::middleware::ban_list again;
  // The order of the lines is the tables' (hash) order: compared as sets of lines.
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    for (std::size_t at = 0; at < text.size();) {
      const auto nl = text.find('\n', at);
      out.emplace_back(text.substr(at, nl - at));
      at = nl == std::string::npos ? text.size() : nl + 1;
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  if (!again.parse(once) || lines(again.serialize(now)) != lines(once)) {
    std::fprintf(stderr, "ban_file fuzz: written file does not read back the same\n");
    std::abort();
  }
  return 0;
}
