// Catch2's main for every unit and law suite. It prints the random-order seed before running,
// so a failure that depends on test order (or a crash) can be replayed with --rng-seed <seed>.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <iostream>

int main(int argc, char* argv[]) {
  Catch::Session session;
  if (int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  std::cout << "catch: order " << (session.config().runOrder() == Catch::RunTests::InRandomOrder ? "rand" : "declared")
            << ", rng-seed " << session.config().rngSeed() << std::endl;
  return session.run();
}
