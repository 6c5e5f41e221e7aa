#include "core/cpu.h"

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/errno_status.h"

namespace percore {

std::vector<int> AllowedCpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return {0};
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  if (cpus.empty()) cpus.push_back(0);
  return cpus;
}

absl::Status PinCurrentThread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  const int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
  if (err != 0) return ErrnoStatus(err, absl::StrCat("pin to cpu ", cpu));
  return absl::OkStatus();
}

void NameCurrentThread(const char* name) {
  char short_name[16] = {};
  std::strncpy(short_name, name, sizeof(short_name) - 1);
  pthread_setname_np(pthread_self(), short_name);
}

}  // namespace percore
