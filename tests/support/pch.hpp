// Precompiled for every test executable: the heavy third-party headers, parsed once.
#pragma once
#include <asio.hpp>
#include <boost/hana.hpp>
#include <catch2/catch.hpp>
