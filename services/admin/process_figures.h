#pragma once

#include <cstdint>
#include <string>

namespace percore {

// Figures of the whole process, read from /proc. Each returns 0 when /proc cannot be read.
// Thread-safe; each call reads the file anew (a few microseconds).

// Resident set size in bytes.
uint64_t ResidentMemoryBytes();
// File descriptors the process has open.
int64_t OpenFileDescriptors();
// When the process started, Unix time in nanoseconds (10 ms resolution: clock ticks).
int64_t ProcessStartUnixNanos();

// "percore VERSION (COMPILER, MODE)": what GetStats and percore_build_info report.
std::string BuildDescription();
// The version alone.
inline constexpr char kPercoreVersion[] = "0.1.0";

}  // namespace percore
