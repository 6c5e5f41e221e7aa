#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>
#include <memory>
#include <string_view>

#include <sys/uio.h>

#include "core/buffer.h"

namespace percore {

// The bytes a connection owes its peer, in order: bytes copied in (replies formatted by the
// handler) interleaved with bytes shared from elsewhere (a stored value), which are sent from
// where they live instead of being copied:
//
//   copied "VALUE k 0 1048576\r\n" | shared <the 1 MiB value> | copied "END\r\n"
//
// A shared piece holds a reference to its owner, so the bytes stay valid (and unchanged: the
// owner must treat them as immutable) until they are written or the queue is cleared, even if
// the store that handed them out drops or replaces them meanwhile, and even when the owner was
// created on another thread (the reference count is atomic). One reply of a 100 MiB value
// therefore costs its header, not 100 MiB of copies.
//
// Copying is cheaper than a reference for small pieces: shared pieces are meant for values of
// kShareAtLeast bytes or more. Not thread-safe; owned by one connection's loop.
class OutputQueue {
 public:
  static constexpr size_t kShareAtLeast = 16 * 1024;

  OutputQueue() = default;
  explicit OutputQueue(BufferPool* pool) : copied_(pool) {}
  OutputQueue(OutputQueue&&) noexcept = default;
  OutputQueue& operator=(OutputQueue&&) noexcept = default;

  // Every byte still to be written, copied and shared.
  size_t size() const { return copied_.size() + shared_bytes_; }
  bool empty() const { return size() == 0; }
  // The copied bytes alone: the memory this queue holds of its own (the output cap's measure).
  size_t copied_size() const { return copied_.size(); }
  size_t shared_pieces() const { return shared_.size(); }

  void Append(std::string_view bytes) { copied_.Append(bytes); }
  char* Reserve(size_t n) { return copied_.Reserve(n); }
  void Commit(size_t n) { copied_.Commit(n); }
  // The copied bytes as a Buffer, for serializers that write into one. What is appended there
  // follows everything queued so far, shared pieces included. Never Consume() it directly.
  Buffer& bytes() { return copied_; }

  // Queues `bytes`, kept alive by `owner`, after everything queued so far, without copying.
  void AppendShared(std::string_view bytes, std::shared_ptr<const void> owner);
  // Moves everything `other` holds to the end of this queue, in order; `other` is left empty.
  void AppendQueue(OutputQueue& other);

  // Writes at most `max_bytes` from the front with one sendmsg(MSG_NOSIGNAL) (writev for
  // non-sockets) of up to kMaxPieces pieces, and drops what was written. Returns its result;
  // on -1, errno is left as the call set it.
  ssize_t WriteToFd(int fd, size_t max_bytes);

  // For writers that hand the bytes to the kernel and learn later how many it took (io_uring):
  // describes at most `max_bytes` from the front in up to `max_pieces` (<= kMaxPieces) iovecs
  // and returns how many it filled; `*total` gets their byte count. The bytes stay where they
  // are, unchanged, until Consume() or Clear(), as long as nothing is appended meanwhile
  // (appending may move the copied bytes: a writer with a send in flight appends elsewhere).
  int Gather(size_t max_bytes, iovec* iov, int max_pieces, size_t* total) const;
  // Drops the first n bytes (n <= size()), as a write of n bytes would.
  void Consume(size_t n) { Drop(n); }
  static constexpr int kMaxPieces = 64;

  // Drops everything queued, releasing the shared pieces.
  void Clear();

 private:
  struct Shared {
    uint64_t at;  // written after the copied bytes up to this stream position
    std::string_view bytes;
    std::shared_ptr<const void> owner;
  };
  // The shared pieces, oldest first: a vector read from `head_`, which holds no memory while
  // the queue has no shared piece (a std::deque allocates its first block even when empty, and
  // every connection has two queues).
  class Pieces {
   public:
    Pieces() = default;
    Pieces(Pieces&& other) noexcept : items_(std::move(other.items_)), head_(std::exchange(other.head_, 0)) {
      other.items_.clear();
    }
    Pieces& operator=(Pieces&& other) noexcept {
      items_ = std::move(other.items_);
      head_ = std::exchange(other.head_, 0);
      other.items_.clear();
      return *this;
    }
    bool empty() const { return head_ == items_.size(); }
    size_t size() const { return items_.size() - head_; }
    Shared& operator[](size_t i) { return items_[head_ + i]; }
    const Shared& operator[](size_t i) const { return items_[head_ + i]; }
    Shared& front() { return items_[head_]; }
    void push_back(Shared piece) { items_.push_back(std::move(piece)); }
    void pop_front() {
      items_[head_].owner.reset();  // the bytes are written: their owner may go now
      if (++head_ == items_.size()) clear();
    }
    // Frees the vector too: a reply of many large pieces leaves nothing behind.
    void clear() {
      if (items_.capacity() != 0) std::vector<Shared>().swap(items_);
      head_ = 0;
    }

   private:
    std::vector<Shared> items_;
    size_t head_ = 0;
  };

  // Stream position of the first unwritten copied byte.
  uint64_t copied_front() const { return copied_written_; }
  uint64_t copied_end() const { return copied_written_ + copied_.size(); }
  void Drop(size_t n);

  Buffer copied_;
  uint64_t copied_written_ = 0;  // copied bytes written (or cleared) so far
  Pieces shared_;
  size_t shared_bytes_ = 0;
};

}  // namespace percore
