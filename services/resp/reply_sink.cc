#include "services/resp/reply_sink.h"

#include <algorithm>
#include <string>

#include "services/resp/resp_reply.h"

namespace percore {
namespace {

// Storage a drained queue keeps for its next use; more is returned.
constexpr size_t kKeptBytes = size_t{64} << 10;
constexpr size_t kKeptEnds = 4096;

}  // namespace

void ReplyQueue::AppendShared(std::string_view piece, std::shared_ptr<const void> owner) {
  if (piece.empty()) return;
  pieces_.push_back(Piece{bytes_end(), piece, std::move(owner)});
  shared_bytes_ += piece.size();
}

void ReplyQueue::AppendValue(std::string_view value, std::shared_ptr<const void> owner) {
  if (owner == nullptr || value.size() <= kCopyAlways) {
    AppendBulk(bytes_, value);
    copied_values_ += value.size();
    return;
  }
  AppendBulkHeader(bytes_, value.size());
  AppendShared(value, std::move(owner));
  bytes_.Append("\r\n");
}

std::string_view ReplyQueue::head(size_t i) const {
  const uint64_t begin = i == 0 ? emitted_ : ends_[i - 1].bytes;
  const size_t first_piece = i == 0 ? 0 : ends_[i - 1].pieces;
  uint64_t end = ends_[i].bytes;
  if (first_piece < ends_[i].pieces) end = std::min(end, pieces_[first_piece].at);
  return bytes_.view().substr(static_cast<size_t>(begin - emitted_),
                              static_cast<size_t>(end - begin));
}

void ReplyQueue::MoveReplyTo(size_t i, ReplySink& out) {
  uint64_t pos = i == 0 ? emitted_ : ends_[i - 1].bytes;
  const size_t first_piece = i == 0 ? 0 : ends_[i - 1].pieces;
  const std::string_view all = bytes_.view();
  auto copy_until = [&](uint64_t until) {
    if (until > pos) {
      out.bytes().Append(all.substr(static_cast<size_t>(pos - emitted_),
                                    static_cast<size_t>(until - pos)));
    }
    pos = until;
  };
  for (size_t p = first_piece; p < ends_[i].pieces; ++p) {
    Piece& piece = pieces_[p];
    copy_until(piece.at);
    out.AppendShared(piece.bytes, std::move(piece.owner));
  }
  copy_until(ends_[i].bytes);
}

bool ReplyQueue::EmitTo(OutputQueue& out, OutputBackedUp backed_up) {
  while (!backed_up()) {
    const uint64_t next = pieces_.empty() ? bytes_end() : pieces_.front().at;
    if (emitted_ < next) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(next - emitted_, kEmitChunk));
      out.Append(bytes_.view().substr(0, n));
      bytes_.Consume(n);
      emitted_ += n;
      continue;
    }
    if (pieces_.empty()) break;
    Piece& piece = pieces_.front();
    // A short piece (a value referenced only because the copy budget ran out) is cheaper
    // copied into the output than sent as a piece of its own.
    if (piece.bytes.size() >= OutputQueue::kShareAtLeast) {
      out.AppendShared(piece.bytes, std::move(piece.owner));
    } else {
      out.Append(piece.bytes);
    }
    shared_bytes_ -= piece.bytes.size();
    pieces_.pop_front();
  }
  if (!empty()) return false;
  Clear();
  return true;
}

void ReplyQueue::Clear() {
  if (bytes_.capacity() > kKeptBytes) {
    bytes_ = Buffer();
  } else {
    bytes_.Clear();
  }
  emitted_ = 0;
  pieces_.clear();
  shared_bytes_ = 0;
  if (ends_.capacity() > kKeptEnds) {
    std::vector<End>().swap(ends_);
  } else {
    ends_.clear();
  }
  copied_values_ = 0;
}

void ReplySink::SwitchToOverflow() {
  output_ = nullptr;
  queue_ = overflow_;
  bytes_ = &overflow_->bytes();
  overflow_start_size_ = bytes_->size();
}

bool ReplySink::AppendToQueueIfShort(std::string_view value) {
  if (value.size() >= queue_->share_at_least()) return false;
  queue_->AppendValue(value, nullptr);
  return true;
}

void ReplySink::AppendValue(std::string_view value, std::shared_ptr<const void> owner) {
  MaybeOverflow();
  if (queue_ != nullptr) {
    queue_->AppendValue(value, std::move(owner));
  } else if (output_ != nullptr && owner != nullptr && value.size() >= OutputQueue::kShareAtLeast) {
    AppendBulkHeader(output_->bytes(), value.size());
    output_->AppendShared(value, std::move(owner));
    output_->Append("\r\n");
  } else {
    AppendBulk(*bytes_, value);
  }
}

void ReplySink::AppendBulkCopy(std::string_view bytes) {
  MaybeOverflow();
  if (bytes.size() >= OutputQueue::kShareAtLeast && (queue_ != nullptr || output_ != nullptr)) {
    auto copy = std::make_shared<const std::string>(bytes);
    const std::string_view view = *copy;
    AppendValue(view, std::move(copy));
    return;
  }
  AppendBulk(*bytes_, bytes);
}

void ReplySink::AppendShared(std::string_view piece, std::shared_ptr<const void> owner) {
  MaybeOverflow();
  if (queue_ != nullptr) {
    queue_->AppendShared(piece, std::move(owner));
  } else if (output_ != nullptr && piece.size() >= OutputQueue::kShareAtLeast) {
    output_->AppendShared(piece, std::move(owner));
  } else {
    bytes_->Append(piece);
  }
}

bool ReplySink::OverflowStartsWithError() const {
  if (overflow_ != nullptr && start_ != &overflow_->bytes()) {
    const Buffer& overflow = overflow_->bytes();
    if (overflow.size() > overflow_start_size_) return overflow.view()[overflow_start_size_] == '-';
  }
  return false;
}

}  // namespace percore
