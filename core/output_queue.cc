#include "core/output_queue.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <utility>

#include "core/syscalls.h"

namespace percore {

void OutputQueue::AppendShared(std::string_view bytes, std::shared_ptr<const void> owner) {
  if (bytes.empty()) return;
  shared_.push_back(Shared{copied_end(), bytes, std::move(owner)});
  shared_bytes_ += bytes.size();
}

void OutputQueue::AppendQueue(OutputQueue& other) {
  uint64_t pos = other.copied_front();
  for (size_t i = 0; i < other.shared_.size(); ++i) {
    Shared& piece = other.shared_[i];
    copied_.Append(other.copied_.view().substr(pos - other.copied_front(), piece.at - pos));
    pos = piece.at;
    AppendShared(piece.bytes, std::move(piece.owner));
  }
  copied_.Append(other.copied_.view().substr(pos - other.copied_front()));
  other.Clear();
}

ssize_t OutputQueue::WriteToFd(int fd, size_t max_bytes) {
  if (shared_.empty()) {
    // Copied bytes only (every small reply): one send, as a plain Buffer would do it.
    const size_t n = std::min(copied_.size(), max_bytes);
    if (n == 0) return 0;
    ssize_t sent = sys::Send(fd, copied_.data(), n, MSG_NOSIGNAL);
    if (sent < 0 && errno == ENOTSOCK) sent = ::write(fd, copied_.data(), n);
    if (sent > 0) {
      copied_.Consume(static_cast<size_t>(sent));
      copied_written_ += static_cast<uint64_t>(sent);
    }
    return sent;
  }
  iovec iov[kMaxPieces];
  size_t total = 0;
  const int count = Gather(max_bytes, iov, kMaxPieces, &total);
  if (count == 0) return 0;
  msghdr msg = {};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<size_t>(count);
  // MSG_NOSIGNAL: a peer that is gone yields EPIPE instead of killing the process.
  ssize_t n = sys::SendMsg(fd, &msg, MSG_NOSIGNAL);
  if (n < 0 && errno == ENOTSOCK) n = ::writev(fd, iov, count);
  if (n > 0) Drop(static_cast<size_t>(n));
  return n;
}

int OutputQueue::Gather(size_t max_bytes, iovec* iov, int max_pieces, size_t* total) const {
  int count = 0;
  size_t sum = 0;
  auto add = [&](const char* data, size_t n) {
    n = std::min(n, max_bytes - sum);
    if (n == 0) return;
    iov[count++] = {const_cast<char*>(data), n};
    sum += n;
  };
  uint64_t pos = copied_front();
  size_t next = 0;  // the first shared piece not offered
  for (; next < shared_.size(); ++next) {
    const Shared& piece = shared_[next];
    if (count >= max_pieces - 1 || sum == max_bytes) break;
    add(copied_.data() + (pos - copied_front()), piece.at - pos);
    pos = piece.at;
    if (count < max_pieces && sum < max_bytes) add(piece.bytes.data(), piece.bytes.size());
  }
  // The copied bytes after the last piece offered, up to the next shared piece: with the piece
  // limit reached before the end, the copied bytes beyond that piece must wait for it.
  const uint64_t copied_until = next < shared_.size() ? shared_[next].at : copied_end();
  if (count < max_pieces && sum < max_bytes && pos < copied_until) {
    add(copied_.data() + (pos - copied_front()), copied_until - pos);
  }
  *total = sum;
  return count;
}

void OutputQueue::Drop(size_t n) {
  while (n > 0) {
    const uint64_t next_shared = shared_.empty() ? copied_end() : shared_.front().at;
    if (next_shared > copied_front()) {
      const size_t k = static_cast<size_t>(std::min<uint64_t>(n, next_shared - copied_front()));
      copied_.Consume(k);
      copied_written_ += k;
      n -= k;
      continue;
    }
    assert(!shared_.empty());
    Shared& piece = shared_.front();
    const size_t k = std::min(n, piece.bytes.size());
    piece.bytes.remove_prefix(k);
    shared_bytes_ -= k;
    n -= k;
    if (piece.bytes.empty()) shared_.pop_front();
  }
}

void OutputQueue::Clear() {
  copied_written_ += copied_.size();
  copied_.Clear();
  shared_.clear();
  shared_bytes_ = 0;
}

}  // namespace percore
