#pragma once

// Running real clients from a test: whether a tool is installed, and a shell command's output
// and exit code. Header-only; test code only.

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace percore::test {

// Whether `name` is on the PATH.
inline bool HaveTool(const std::string& name) {
  return std::system(("command -v " + name + " >/dev/null 2>&1").c_str()) == 0;
}

// Runs `command` through the shell; returns its standard output and sets `exit_code` (-1 if it
// could not run or did not exit normally).
inline std::string RunShell(const std::string& command, int* exit_code) {
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *exit_code = -1;
    return output;
  }
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), pipe)) > 0) output.append(chunk, n);
  const int status = pclose(pipe);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

}  // namespace percore::test
