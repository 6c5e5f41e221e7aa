// without_io_uring [--errno=EPERM|ENOSYS] PROGRAM ARGS...
//
// Runs PROGRAM where io_uring cannot be set up, the way a container's seccomp profile denies
// it: a seccomp filter makes io_uring_setup(2) fail with the given errno (EPERM, as Docker's
// default profile answers, unless ENOSYS is asked for). Everything else is allowed. For the
// tests of --backend=auto's fallback and of an explicit --backend=io_uring that cannot start.

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  int first = 1;
  unsigned err = EPERM;
  if (argc > 1 && std::strncmp(argv[1], "--errno=", 8) == 0) {
    const char* name = argv[1] + 8;
    if (std::strcmp(name, "ENOSYS") == 0) {
      err = ENOSYS;
    } else if (std::strcmp(name, "EPERM") != 0) {
      std::fprintf(stderr, "without_io_uring: --errno must be EPERM or ENOSYS\n");
      return 2;
    }
    first = 2;
  }
  if (first >= argc) {
    std::fprintf(stderr, "usage: without_io_uring [--errno=EPERM|ENOSYS] PROGRAM ARGS...\n");
    return 2;
  }
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog program{};
  program.len = static_cast<unsigned short>(sizeof(filter) / sizeof(filter[0]));
  program.filter = filter;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
    std::fprintf(stderr, "without_io_uring: installing the seccomp filter failed: %s\n", std::strerror(errno));
    return 2;
  }
  ::execv(argv[first], argv + first);
  std::fprintf(stderr, "without_io_uring: exec %s: %s\n", argv[first], std::strerror(errno));
  return 127;
}
