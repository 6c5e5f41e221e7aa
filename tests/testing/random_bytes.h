#pragma once

#include <cstddef>
#include <random>
#include <string>

namespace percore::test {

// `n` pseudo-random bytes from `rng`: reproducible for a given seed, and unlike a repeating
// pattern, a byte that is lost, duplicated or reordered in transit cannot go unnoticed.
std::string RandomBytes(std::mt19937_64& rng, size_t n);

}  // namespace percore::test
