// libFuzzer target for the admin request loop (rproxy/admin/request_reader.hpp): the same
// input fed whole and split at two points (from its first bytes) gives the same requests
// (method, target, body, keep-alive) and the same final error, if any.
#include <rproxy/admin/request_reader.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct outcome {
  std::vector<std::string> requests;
  unsigned error = 0;
  bool operator==(const outcome&) const = default;
};

outcome run(std::string_view in, std::vector<std::size_t> cuts) {
  rproxy::admin::request_reader rd(4096);
  outcome out;
  cuts.push_back(in.size());
  std::size_t at = 0;
  for (std::size_t end : cuts) {
    rd.feed(in.substr(at, end - at));
    at = end;
    for (auto s = rd.next(); s.what != rproxy::admin::request_reader::step::need_more; s = rd.next()) {
      if (s.what == rproxy::admin::request_reader::step::error) {
        out.error = s.status;
        return out;
      }
      out.requests.push_back(rd.head().method + ' ' + rd.head().target + ' ' + rd.body() +
                             (rd.keep_alive() ? " keep" : " close"));
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  std::size_t a = data[0] % (in.size() + 1), b = data[1] % (in.size() + 1);
  if (a > b) std::swap(a, b);
  if (!(run(in, {}) == run(in, {a, b}))) {
    std::fprintf(stderr, "admin_request fuzz: a split changed the requests\n");
    std::abort();
  }
  return 0;
}
