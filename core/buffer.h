#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace percore {

class BufferPool;

// A contiguous byte buffer with a read position and a write position:
//
//   [ consumed | readable bytes | writable space ]
//   0          read_            write_           capacity_
//
// Parsers see the readable bytes as one span (no chain walking for a message split across
// reads); replies appended to an output Buffer leave in one write(), however many pipelined
// requests produced them. Storage comes from and returns to a per-loop BufferPool, so an idle
// connection holds no buffer memory and a busy one does not allocate per message.
// Not thread-safe.
class Buffer {
 public:
  Buffer() = default;
  // A buffer that takes its first block from `pool` when it first needs room, and hands that
  // block back to `pool` if it outgrows it. Its owner still Releases it when it empties, so
  // the blocks a loop's connections use circulate through the loop's pool.
  explicit Buffer(BufferPool* pool) : pool_(pool) {}
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() = default;

  size_t size() const { return write_ - read_; }
  bool empty() const { return write_ == read_; }
  size_t capacity() const { return capacity_; }
  const char* data() const { return storage_.get() + read_; }
  std::string_view view() const { return std::string_view(data(), size()); }

  // Exchanges contents and storage with `other` (both of one loop's pool): how a handler hands
  // what it read to the output without copying it.
  void Swap(Buffer& other) noexcept {
    std::swap(pool_, other.pool_);
    storage_.swap(other.storage_);
    std::swap(capacity_, other.capacity_);
    std::swap(read_, other.read_);
    std::swap(write_, other.write_);
  }

  // Drops the first n readable bytes (n <= size()).
  void Consume(size_t n);
  // Drops all readable bytes; keeps the storage.
  void Clear() { read_ = write_ = 0; }

  void Append(std::string_view bytes);
  void Append(const void* bytes, size_t n) { Append(std::string_view(static_cast<const char*>(bytes), n)); }

  // Makes at least n bytes writable and returns where they start; Commit(k) then publishes the
  // first k of them. For serializers that format in place.
  char* Reserve(size_t n);
  void Commit(size_t n) { write_ += n; }
  size_t writable() const { return capacity_ - write_; }

  // Reads from fd at most `max_bytes` with one readv: into the writable space and, when that is
  // small, into a per-thread 64 KiB overflow area that is then appended. Returns read()'s
  // result; on -1, errno is left as read() set it.
  ssize_t ReadFromFd(int fd, size_t max_bytes);
  // Writes the readable bytes (at most max_bytes of them) with one send(MSG_NOSIGNAL) (write()
  // for non-sockets) and consumes what was written. Returns its result; on -1, errno is left as
  // it set it.
  ssize_t WriteToFd(int fd, size_t max_bytes = static_cast<size_t>(-1));

  // Storage management, used by BufferPool.
  bool has_storage() const { return storage_ != nullptr; }

 private:
  friend class BufferPool;
  void Grow(size_t needed);

  BufferPool* pool_ = nullptr;
  std::unique_ptr<char[]> storage_;
  size_t capacity_ = 0;
  size_t read_ = 0;
  size_t write_ = 0;
};

// Recycles buffer storage of the standard block size. Owned by one loop; not thread-safe.
class BufferPool {
 public:
  static constexpr size_t kBlockSize = 16 * 1024;

  explicit BufferPool(size_t max_free_blocks = 1024) : max_free_(max_free_blocks) {}

  // Gives `buffer` storage of at least kBlockSize if it has none. Inline: a connection's
  // buffers take a block when bytes arrive and give it back when they are consumed, so this
  // and Release run for every request.
  void Attach(Buffer& buffer) {
    if (buffer.has_storage()) return;
    if (free_.empty()) {
      AllocateFor(buffer);
      return;
    }
    buffer.storage_ = std::move(free_.back());
    free_.pop_back();
    if (free_.size() < low_water_) low_water_ = free_.size();
    buffer.capacity_ = kBlockSize;
    buffer.read_ = buffer.write_ = 0;
  }
  // Takes back the storage of an empty buffer (keeping standard-size blocks for reuse, freeing
  // grown ones). A buffer that still holds bytes is left alone.
  void Release(Buffer& buffer) {
    if (buffer.has_storage() && buffer.empty()) TakeBack(buffer);
  }
  // Frees the free blocks that no Attach needed since the previous Trim (the fewest the free
  // list held in between), so a burst's blocks are not cached for good. The owner calls it
  // periodically; two quiet periods return what a burst left behind.
  void Trim();

  size_t free_blocks() const { return free_.size(); }
  size_t blocks_allocated() const { return allocated_; }  // since construction
  size_t blocks_trimmed() const { return trimmed_; }       // freed by Trim

 private:
  friend class Buffer;
  // A standard block a growing buffer (or Release) no longer needs.
  void Recycle(std::unique_ptr<char[]>&& block) {
    if (free_.size() < max_free_) {
      free_.push_back(std::move(block));
    } else {
      block.reset();
    }
  }
  void AllocateFor(Buffer& buffer);
  void TakeBack(Buffer& buffer);

  std::vector<std::unique_ptr<char[]>> free_;
  size_t max_free_;
  size_t allocated_ = 0;
  size_t trimmed_ = 0;
  size_t low_water_ = 0;  // fewest free blocks since the last Trim
};

}  // namespace percore
