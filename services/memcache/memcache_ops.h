#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/buffer.h"
#include "core/output_queue.h"
#include "services/memcache/item.h"
#include "services/memcache/item_store.h"
#include "services/memcache/memcache_parser.h"

namespace percore::memcache {

// Where replies go: straight into a connection's output buffer when the shard is local, or
// into a string that travels back to the connection's loop when it is not.
class ReplySink {
 public:
  explicit ReplySink(Buffer* buffer) : buffer_(buffer) {}
  explicit ReplySink(std::string* text) : text_(text) {}

  void Append(std::string_view bytes) {
    if (buffer_ != nullptr) buffer_->Append(bytes);
    else text_->append(bytes.data(), bytes.size());
  }

 private:
  Buffer* buffer_ = nullptr;
  std::string* text_ = nullptr;
};

// What the owning shard needs of a single-key command besides its key (and item), copied by
// value so it can travel to another loop.
struct KeyOp {
  CommandKind kind = CommandKind::kDelete;
  bool noreply = false;
  int64_t exptime = 0;
  uint64_t cas_unique = 0;
  uint64_t delta = 0;

  static KeyOp From(const Command& cmd) {
    return KeyOp{cmd.kind, cmd.noreply, cmd.exptime, cmd.cas_unique, cmd.delta};
  }
};

// Builds the item a storage command carries (key, flags and value copied from the request).
inline ItemPtr ItemFor(const Command& cmd) { return MakeItem(cmd.key, cmd.flags, cmd.value); }

// Runs a storage, touch, delete, incr or decr command on `store` and appends its reply (none
// with noreply). `item` is the stored item for storage commands, null otherwise; a storage
// command with a null item silently drops `key` (what follows a refused oversized set).
// Returns true when the reply is an error (CLIENT_ERROR / SERVER_ERROR), for request stats.
bool ExecuteKeyOp(ItemStore& store, const KeyOp& op, std::string_view key, ItemPtr item,
                  ReplySink& out);

// Looks up one key of get/gets/gat/gats (gat/gats also set the new expiry). Null on a miss.
const Item* LookUp(ItemStore& store, CommandKind kind, int64_t exptime, std::string_view key);

inline bool WithCas(CommandKind kind) { return kind == CommandKind::kGets || kind == CommandKind::kGats; }

// Appends "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n", then `tail` (the END of a
// one-key reply, so that a small hit costs one reservation). A value of
// OutputQueue::kShareAtLeast bytes or more is not copied: the output holds a reference to the
// item and sends the value from it. On the store's thread, or by a holder of a reference.
void AppendValue(const Item& item, bool with_cas, OutputQueue& out, std::string_view tail = {});

inline constexpr std::string_view kEnd = "END\r\n";

}  // namespace percore::memcache
