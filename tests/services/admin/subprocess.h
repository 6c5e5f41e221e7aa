#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace percore::testing {

// A child process with its stdout and stderr on pipes, for end-to-end tests of the binaries.
class Subprocess {
 public:
  // Starts argv[0] (a path) with the rest as arguments; stdin is /dev/null.
  explicit Subprocess(const std::vector<std::string>& argv);
  ~Subprocess();  // Kills the child if it still runs.
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  // Reads stdout until it holds a line containing `text` or `timeout_ms` passes; returns
  // that line, or "" on timeout or EOF. Everything read is kept in stdout_text().
  std::string WaitForLine(const std::string& text, int timeout_ms = 10000);
  void Signal(int signal_number);
  // Reads both pipes to EOF and reaps the child; its exit code, or -1 if it had to be killed
  // after `timeout_ms` or died by a signal.
  int Wait(int timeout_ms = 10000);
  const std::string& stdout_text() const { return out_; }
  const std::string& stderr_text() const { return err_; }

 private:
  // Reads whatever is ready on the pipes within `timeout_ms`; false once both are at EOF.
  bool Pump(int timeout_ms);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  size_t scanned_ = 0;  // stdout_ before this offset was already searched by WaitForLine
};

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion (killed after `timeout_ms`).
RunResult RunCommand(const std::vector<std::string>& argv, int timeout_ms = 20000);

}  // namespace percore::testing
