#include "core/buffer.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cassert>
#include <utility>

#include "core/syscalls.h"

namespace percore {
namespace {

constexpr size_t kOverflowSize = 64 * 1024;

}  // namespace

Buffer::Buffer(Buffer&& other) noexcept
    : pool_(other.pool_),
      storage_(std::move(other.storage_)),
      capacity_(std::exchange(other.capacity_, 0)),
      read_(std::exchange(other.read_, 0)),
      write_(std::exchange(other.write_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  pool_ = other.pool_;
  storage_ = std::move(other.storage_);
  capacity_ = std::exchange(other.capacity_, 0);
  read_ = std::exchange(other.read_, 0);
  write_ = std::exchange(other.write_, 0);
  return *this;
}

void Buffer::Consume(size_t n) {
  assert(n <= size());
  read_ += n;
  if (read_ == write_) read_ = write_ = 0;
}

void Buffer::Append(std::string_view bytes) {
  if (bytes.empty()) return;
  char* dst = Reserve(bytes.size());
  std::memcpy(dst, bytes.data(), bytes.size());
  write_ += bytes.size();
}

char* Buffer::Reserve(size_t n) {
  if (writable() < n) Grow(n);
  return storage_.get() + write_;
}

void Buffer::Grow(size_t needed) {
  if (capacity_ == 0 && pool_ != nullptr && needed <= BufferPool::kBlockSize) {
    pool_->Attach(*this);
    return;
  }
  const size_t live = size();
  // Sliding the live bytes to the front is enough when the consumed prefix makes room and the
  // copy is small next to what we keep (the usual case: a partial message left after parsing).
  if (capacity_ - live >= needed && read_ >= live) {
    std::memmove(storage_.get(), storage_.get() + read_, live);
  } else {
    size_t new_capacity = std::max<size_t>(capacity_ ? capacity_ : BufferPool::kBlockSize, 1);
    while (new_capacity - live < needed) new_capacity *= 2;
    std::unique_ptr<char[]> bigger(new char[new_capacity]);
    if (live) std::memcpy(bigger.get(), storage_.get() + read_, live);
    std::unique_ptr<char[]> old = std::exchange(storage_, std::move(bigger));
    if (pool_ != nullptr && capacity_ == BufferPool::kBlockSize) pool_->Recycle(std::move(old));
    capacity_ = new_capacity;
  }
  read_ = 0;
  write_ = live;
}

ssize_t Buffer::ReadFromFd(int fd, size_t max_bytes) {
  thread_local char overflow[kOverflowSize];
  const size_t direct = std::min(writable(), max_bytes);
  iovec iov[2];
  int iovcnt = 0;
  if (direct > 0) iov[iovcnt++] = {storage_.get() + write_, direct};
  const size_t spill = std::min(kOverflowSize, max_bytes - direct);
  if (spill > 0) iov[iovcnt++] = {overflow, spill};
  if (iovcnt == 0) return 0;
  const ssize_t n = sys::Readv(fd, iov, iovcnt);
  if (n <= 0) return n;
  const size_t got = static_cast<size_t>(n);
  if (got <= direct) {
    write_ += got;
  } else {
    write_ += direct;
    Append(overflow, got - direct);
  }
  return n;
}

ssize_t Buffer::WriteToFd(int fd, size_t max_bytes) {
  if (empty()) return 0;
  const size_t length = std::min(size(), max_bytes);
  // send(MSG_NOSIGNAL): a peer that is gone yields EPIPE instead of killing the process.
  ssize_t n = sys::Send(fd, data(), length, MSG_NOSIGNAL);
  if (n < 0 && errno == ENOTSOCK) n = ::write(fd, data(), length);
  if (n > 0) Consume(static_cast<size_t>(n));
  return n;
}

void BufferPool::AllocateFor(Buffer& buffer) {
  low_water_ = 0;
  buffer.storage_.reset(new char[kBlockSize]);
  ++allocated_;
  buffer.capacity_ = kBlockSize;
  buffer.read_ = buffer.write_ = 0;
}

void BufferPool::TakeBack(Buffer& buffer) {
  if (buffer.capacity_ == kBlockSize) {
    Recycle(std::move(buffer.storage_));
  } else {
    buffer.storage_.reset();
  }
  buffer.capacity_ = 0;
  buffer.read_ = buffer.write_ = 0;
}

void BufferPool::Trim() {
  const size_t unused = std::min(low_water_, free_.size());
  free_.resize(free_.size() - unused);
  trimmed_ += unused;
  low_water_ = free_.size();
}

}  // namespace percore
