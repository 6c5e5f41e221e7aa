#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstddef>

namespace percore::sys {

// The system calls of the request path, made without glibc's cancellation-point wrappers.
// read, readv, send, sendmsg and epoll_wait are POSIX cancellation points, so glibc brackets each
// with __pthread_enable_asynccancel and __pthread_disable_asynccancel: about 30 instructions a
// call, 90 of a request that is one wait, one read and one write. percore never cancels a thread
// (it does not call pthread_cancel), so nothing is lost by entering the kernel through
// syscall(2), which returns -1 and sets errno as the wrappers do.

inline ssize_t Readv(int fd, const iovec* iov, int count) { return ::syscall(SYS_readv, fd, iov, count); }

inline ssize_t Read(int fd, void* data, size_t n) { return ::syscall(SYS_read, fd, data, n); }

inline ssize_t Send(int fd, const void* data, size_t n, int flags) {
  return ::syscall(SYS_sendto, fd, data, n, flags, nullptr, 0);
}

inline ssize_t SendMsg(int fd, const msghdr* msg, int flags) { return ::syscall(SYS_sendmsg, fd, msg, flags); }

inline int EpollWait(int epoll_fd, epoll_event* events, int max_events, int timeout_ms) {
  return static_cast<int>(::syscall(SYS_epoll_wait, epoll_fd, events, max_events, timeout_ms));
}

}  // namespace percore::sys
