#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace percore::test {

// Runs the //tools:loadgen binary (a data dependency of the test) as a child process.
struct LoadgenRun {
  int exit_code = -1;  // -1: did not exit normally, or did not finish in time (then killed)
  std::string output;  // its stdout
};

// Path of the loadgen binary in the test's runfiles.
std::string LoadgenPath();

// Runs loadgen with `args` (each a "--flag=value") and waits up to `timeout_s` seconds.
LoadgenRun RunLoadgen(const std::vector<std::string>& args, int timeout_s = 60);

// The number after "\"key\": " in loadgen's --json output; nullopt when absent.
std::optional<double> JsonNumber(std::string_view json, std::string_view key);

}  // namespace percore::test
