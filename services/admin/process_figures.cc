#include "services/admin/process_figures.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "core/clock.h"

namespace percore {
namespace {

std::string ReadWholeFile(const char* path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

uint64_t ResidentMemoryBytes() {
  // statm: size resident shared text lib data dt, in pages.
  const std::string statm = ReadWholeFile("/proc/self/statm");
  std::vector<absl::string_view> fields = absl::StrSplit(statm, ' ', absl::SkipEmpty());
  uint64_t pages = 0;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &pages)) return 0;
  return pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

int64_t OpenFileDescriptors() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  int64_t count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory's own descriptor
}

int64_t ProcessStartUnixNanos() {
  // Field 22 of /proc/self/stat is the start time in clock ticks after boot. The command name
  // (field 2) may hold spaces, so fields are counted from the closing parenthesis.
  const std::string stat = ReadWholeFile("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(paren + 1), ' ', absl::SkipEmpty());
  uint64_t ticks = 0;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &ticks)) return 0;
  // Boot time from the two clocks now, which avoids parsing /proc/stat's btime (whole seconds).
  timespec boot;
  clock_gettime(CLOCK_BOOTTIME, &boot);
  const int64_t since_boot_ns = int64_t{boot.tv_sec} * 1'000'000'000 + boot.tv_nsec;
  const int64_t boot_unix_ns = WallNanos() - since_boot_ns;
  const int64_t hz = sysconf(_SC_CLK_TCK);
  if (hz <= 0) return 0;
  return boot_unix_ns + static_cast<int64_t>(ticks) * (1'000'000'000 / hz);
}

std::string BuildDescription() {
#if defined(__clang__)
  const std::string compiler = absl::StrCat("clang ", __clang_major__, ".", __clang_minor__);
#elif defined(__GNUC__)
  const std::string compiler = absl::StrCat("gcc ", __GNUC__, ".", __GNUC_MINOR__);
#else
  const std::string compiler = "unknown compiler";
#endif
#if defined(NDEBUG)
  const char* mode = "opt";
#else
  const char* mode = "debug";
#endif
  return absl::StrCat("percore ", kPercoreVersion, " (", compiler, ", ", mode, ")");
}

}  // namespace percore
