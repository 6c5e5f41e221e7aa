#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "reactor/poller.h"

namespace percore::test {

// The back end a test's servers run on: PERCORE_TEST_BACKEND (poll, epoll, io_uring or auto)
// when set, as the per-back-end variants of a test set it (tests/testing/defs.bzl,
// per_backend_cc_test); auto otherwise, the daemon's default.
inline PollerBackend TestBackend() {
  const char* name = std::getenv("PERCORE_TEST_BACKEND");
  if (name == nullptr || *name == '\0') return PollerBackend::kAuto;
  PollerBackend backend = PollerBackend::kAuto;
  if (!ParsePollerBackend(name, &backend)) {
    std::fprintf(stderr, "PERCORE_TEST_BACKEND=%s is not poll, epoll, io_uring or auto\n", name);
    std::abort();
  }
  return backend;
}

}  // namespace percore::test
