// libFuzzer target for the messages of the shared bans channel (rproxy/cluster/shared_bans.hpp):
// anything a Redis client could publish there is applied without a crash or undefined behaviour,
// stays within max_bans, and leaves list() equal to what its own ban lines say.
#include <rproxy/cluster/shared_bans.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // names as written, and folded (mc-proxy: Minecraft names ignore case)
  for (const bool fold : {false, true}) {
    rproxy::cluster::shared_bans bans(nullptr, nullptr, {.fold_identity_case = fold});
    // the input as one message, then split in two at its first NUL (a ban, then maybe an unban)
    const auto cut = text.find('\0');
    bans.receive(text.substr(0, cut));
    if (cut != std::string_view::npos) bans.receive(text.substr(cut + 1));
    if (bans.size() > rproxy::cluster::shared_bans::max_bans) {
      std::fprintf(stderr, "shared_bans fuzz: more bans than max_bans\n");
      std::abort();
    }
    if (bans.list().size() != bans.size()) {
      std::fprintf(stderr, "shared_bans fuzz: list() and the accepted bans disagree (%zu vs %zu, fold %d)\n", bans.list().size(),
                   bans.size(), int(fold));
      std::abort();
    }
  }
  return 0;
}
