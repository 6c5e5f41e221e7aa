#pragma once

#include <vector>

#include "absl/status/status.h"

namespace percore {

// The CPUs this process may run on (its affinity mask), in ascending order.
std::vector<int> AllowedCpus();

// Pins the calling thread to `cpu`.
absl::Status PinCurrentThread(int cpu);

// Names the calling thread (visible in top -H, gdb); longer names are cut to 15 bytes.
void NameCurrentThread(const char* name);

}  // namespace percore
