#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "core/buffer.h"
#include "core/lazy_deque.h"
#include "core/output_queue.h"
#include "services/resp/resp_reply.h"

namespace percore {

class ReplySink;

// Whether a connection's output is backed up (Connection::above_high_water, the one
// backpressure rule): where a streamed reply stops adding to the output. The callable must
// outlive the ReplySink or EmitTo call it is given to.
using OutputBackedUp = absl::FunctionRef<bool()>;

// RESP replies held in memory before they reach a connection's output: their formatted bytes
// copied in, and the stored values they send held by reference (a piece of bytes kept alive by
// its owner, as OutputQueue shares them), so that holding a reply costs its headers and one
// reference per value, not the values' bytes:
//
//   copied "*3\r\n$1048576\r\n" | shared <value> | copied "\r\n$-1\r\n$1048576\r\n" | shared ...
//
// Two uses. As a list: replies are sealed one by one (Seal) and then taken by index
// (MoveReplyTo), which is how a batch keeps each command's reply until the replies are merged in
// request order. As a stream: what a connection's output has no room for yet waits here, and
// EmitTo moves it on, from the front, as the output drains.
//
// Copying small values is cheaper than referencing them, but copies are what a held reply must
// not accumulate without bound: share_at_least() tells the command which values to hand over by
// reference. Values of OutputQueue::kShareAtLeast bytes or more always are; once the values
// copied into this queue reach its copy budget, every value longer than kCopyAlways is (a
// reference costs about as much as kCopyAlways bytes).
//
// Not thread-safe. A queue filled on one loop may be handed whole to another through
// EventLoop::Post (the references are safe to release on any thread).
class ReplyQueue {
 public:
  static constexpr size_t kCopyAlways = 64;
  static constexpr size_t kDefaultCopyBudget = size_t{256} << 10;

  ReplyQueue() = default;
  ReplyQueue(const ReplyQueue&) = delete;
  ReplyQueue& operator=(const ReplyQueue&) = delete;

  void set_copy_budget(size_t bytes) { copy_budget_ = bytes; }
  // The length from which a value should be handed over by reference rather than copied.
  size_t share_at_least() const {
    return copied_values_ < copy_budget_ ? OutputQueue::kShareAtLeast : kCopyAlways;
  }

  // Formatted bytes go here; they follow everything appended so far.
  Buffer& bytes() { return bytes_; }
  // Appends `piece` without copying; `owner` keeps it alive (and unchanged) while it is held.
  void AppendShared(std::string_view piece, std::shared_ptr<const void> owner);
  // Appends the bulk reply "$len\r\n<value>\r\n": the value by reference when `owner` is set
  // (and the value is longer than kCopyAlways), copied otherwise.
  void AppendValue(std::string_view value, std::shared_ptr<const void> owner);

  bool empty() const { return bytes_.empty() && pieces_.empty(); }
  // Bytes held, copied and shared.
  size_t size() const { return bytes_.size() + shared_bytes_; }
  size_t shared_pieces() const { return pieces_.size(); }

  // --- As a list ---
  // Ends the reply appended since the previous Seal.
  void Seal() { ends_.push_back({bytes_end(), pieces_.size()}); }
  size_t replies() const { return ends_.size(); }
  // The start of reply `i`: its bytes up to its first shared piece, which always include its
  // type byte (a shared piece never starts a reply). Enough to tell an error or read an integer.
  std::string_view head(size_t i) const;
  // Appends reply `i` to `out`, passing its references on rather than copying their bytes.
  // Each reply may be moved once.
  void MoveReplyTo(size_t i, ReplySink& out);

  // --- As a stream ---
  // Moves what is held to `out`, oldest first, until `backed_up()`; copied bytes go in chunks
  // of at most kEmitChunk, so `out` passes the high-water mark by at most one chunk or
  // one value. Returns true once nothing is left (the queue is then cleared).
  bool EmitTo(OutputQueue& out, OutputBackedUp backed_up);

  // Drops everything, releasing the references and memory beyond a small reserve.
  void Clear();

 private:
  static constexpr size_t kEmitChunk = size_t{64} << 10;

  struct Piece {
    uint64_t at;  // sent after the copied bytes up to this stream position
    std::string_view bytes;
    std::shared_ptr<const void> owner;
  };
  struct End {
    uint64_t bytes;  // stream position where the reply's copied bytes end
    size_t pieces;   // index past its last piece
  };

  uint64_t bytes_end() const { return emitted_ + bytes_.size(); }

  Buffer bytes_;
  uint64_t emitted_ = 0;  // stream position of bytes_'s first byte (bytes EmitTo moved on)
  LazyDeque<Piece> pieces_;  // nothing allocated while no piece is shared
  size_t shared_bytes_ = 0;
  std::vector<End> ends_;
  size_t copied_values_ = 0;  // value bytes copied in since the last Clear
  size_t copy_budget_ = kDefaultCopyBudget;
};

// Where a command writes its reply: one of a plain Buffer (everything copied), a ReplyQueue, or
// a connection's output with a ReplyQueue behind it. Formatted bytes go to bytes(); a value read
// from the store goes through AppendValue, which sends it by reference when the target can hold
// one, so a large value is never copied into a reply.
//
// With a connection's output, the reply is written there while the output is not backed up;
// from the first append that finds it backed up, everything goes to the
// overflow queue instead (which the connection's handler emits as the output drains). A reply
// that finds the overflow queue non-empty starts there, so replies never overtake each other.
// The switch happens only inside these calls: a command must call bytes() again after
// AppendValue, AppendShared or AppendBulkCopy rather than keep the Buffer it got before.
class ReplySink {
 public:
  // Everything into `bytes`, copied: no reference is ever asked for.
  explicit ReplySink(Buffer& bytes) : bytes_(&bytes), start_(&bytes), start_size_(bytes.size()) {}
  // Into `queue`, values by reference as its copy budget decides.
  explicit ReplySink(ReplyQueue& queue)
      : bytes_(&queue.bytes()), queue_(&queue), start_(bytes_), start_size_(bytes_->size()) {}
  // Into `output` until `backed_up()`, then into `overflow`.
  ReplySink(OutputQueue& output, OutputBackedUp backed_up, ReplyQueue& overflow)
      : bytes_(&output.bytes()),
        output_(&output),
        overflow_(&overflow),
        backed_up_(backed_up),
        start_(bytes_),
        start_size_(bytes_->size()) {
    if (!overflow.empty()) SwitchToOverflow();
  }
  ReplySink(const ReplySink&) = delete;
  ReplySink& operator=(const ReplySink&) = delete;

  Buffer& bytes() {
    MaybeOverflow();
    return *bytes_;
  }
  // The threshold to pass to StringStore::GetShared: values at least this long should be
  // handed over by reference. Never, for a plain Buffer.
  size_t share_at_least() {
    MaybeOverflow();
    if (queue_ != nullptr) return queue_->share_at_least();
    return output_ != nullptr ? OutputQueue::kShareAtLeast : std::numeric_limits<size_t>::max();
  }
  // Appends the bulk reply of a stored value. With `owner`, the bytes stay valid and unchanged
  // while it lives and are sent from where they are when that is worth it; without, they must
  // stay valid for this call only and are copied.
  void AppendValue(std::string_view value, std::shared_ptr<const void> owner);
  // The common case of a value read from the store: when `value` is shorter than
  // share_at_least(), appends its bulk reply (copied) and returns true. Otherwise appends
  // nothing and returns false: the caller asks the store for a reference and calls AppendValue.
  bool AppendValueIfShort(std::string_view value) {
    MaybeOverflow();
    if (queue_ != nullptr) return AppendToQueueIfShort(value);
    if (output_ != nullptr && value.size() >= OutputQueue::kShareAtLeast) return false;
    AppendBulk(*bytes_, value);
    return true;
  }
  // Appends the bulk reply of bytes nobody keeps (an argument being echoed). They are copied;
  // long ones into a shared copy of their own, which the output does not count as the copied
  // bytes its cap bounds (the same bound as a stored value of that size).
  void AppendBulkCopy(std::string_view bytes);
  // Appends `piece` (not a whole reply) kept alive by `owner`.
  void AppendShared(std::string_view piece, std::shared_ptr<const void> owner);

  // Starts the next reply through the same sink: StartsWithError then looks at what is written
  // from here on. (One sink may carry a connection's successive replies.)
  void BeginReply() {
    start_ = bytes_;
    start_size_ = bytes_->size();
  }
  // Whether anything went to the overflow queue (then everything after it goes there too).
  bool overflowed() const { return queue_ != nullptr && queue_ == overflow_; }
  // Whether the first byte written through this sink (since BeginReply) was '-' (an error).
  bool StartsWithError() const {
    if (start_->size() > start_size_) return start_->view()[start_size_] == '-';
    return OverflowStartsWithError();
  }

 private:
  bool AppendToQueueIfShort(std::string_view value);
  bool OverflowStartsWithError() const;
  void MaybeOverflow() {
    if (output_ != nullptr && backed_up_()) SwitchToOverflow();
  }
  void SwitchToOverflow();
  static bool NeverBackedUp() { return false; }

  Buffer* bytes_;
  OutputQueue* output_ = nullptr;
  ReplyQueue* queue_ = nullptr;
  ReplyQueue* overflow_ = nullptr;
  OutputBackedUp backed_up_ = NeverBackedUp;
  // Where the reply began, and where the overflow queue's bytes ended when it moved there.
  const Buffer* start_;
  size_t start_size_;
  size_t overflow_start_size_ = 0;
};

}  // namespace percore
