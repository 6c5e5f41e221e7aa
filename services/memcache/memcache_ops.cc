#include "services/memcache/memcache_ops.h"

#include <charconv>
#include <cstring>
#include <utility>

namespace percore::memcache {
namespace {

StoreMode ModeOf(CommandKind kind) {
  switch (kind) {
    case CommandKind::kAdd: return StoreMode::kAdd;
    case CommandKind::kReplace: return StoreMode::kReplace;
    case CommandKind::kAppend: return StoreMode::kAppend;
    case CommandKind::kPrepend: return StoreMode::kPrepend;
    case CommandKind::kCas: return StoreMode::kCas;
    default: return StoreMode::kSet;
  }
}

std::string_view StoreReply(StoreResult result) {
  switch (result) {
    case StoreResult::kStored: return "STORED\r\n";
    case StoreResult::kNotStored: return "NOT_STORED\r\n";
    case StoreResult::kExists: return "EXISTS\r\n";
    case StoreResult::kNotFound: return "NOT_FOUND\r\n";
    case StoreResult::kTooLarge: return "SERVER_ERROR object too large for cache\r\n";
    case StoreResult::kNoMemory: return "SERVER_ERROR out of memory storing object\r\n";
  }
  return "SERVER_ERROR internal\r\n";
}

char* PutNumber(char* p, char* end, uint64_t value) { return std::to_chars(p, end, value).ptr; }

// Longest "VALUE <key> <flags> <bytes> <cas>\r\n": the key and three numbers of at most 20
// digits each.
constexpr size_t kMaxValueLine = 6 + kMaxKeySize + 3 * 21 + 2;

// Writes the VALUE line of `item` at `p` (room for kMaxValueLine bytes); returns its end.
char* PutValueLine(char* p, const Item& item, bool with_cas) {
  std::memcpy(p, "VALUE ", 6);
  p += 6;
  std::memcpy(p, item.key_data(), item.key_size);
  p += item.key_size;
  *p++ = ' ';
  if (item.flags == 0) {  // most clients never set flags
    *p++ = '0';
  } else {
    p = PutNumber(p, p + 20, item.flags);
  }
  *p++ = ' ';
  p = PutNumber(p, p + 20, item.value_size);
  if (with_cas) {
    *p++ = ' ';
    p = PutNumber(p, p + 20, item.cas);
  }
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

// A large value goes out from the item itself: the output keeps a reference to it.
void AppendSharedValue(const Item& item, bool with_cas, OutputQueue& out, std::string_view tail) {
  char* const start = out.Reserve(kMaxValueLine);
  out.Commit(static_cast<size_t>(PutValueLine(start, item, with_cas) - start));
  // The shared_ptr's deleter drops the item reference (also if making the control block
  // throws).
  out.AppendShared(item.value_with_crlf(),
                   std::shared_ptr<const void>(ShareItem(item).release(), [](const void* p) {
                     ItemDeleter()(static_cast<Item*>(const_cast<void*>(p)));
                   }));
  out.Append(tail);
}

}  // namespace

void AppendValue(const Item& item, bool with_cas, OutputQueue& out, std::string_view tail) {
  const std::string_view value = item.value_with_crlf();
  if (value.size() >= OutputQueue::kShareAtLeast) {
    AppendSharedValue(item, with_cas, out, tail);
    return;
  }
  // The whole block (and what follows it) formatted in place with one reservation.
  char* const start = out.Reserve(kMaxValueLine + value.size() + tail.size());
  char* p = PutValueLine(start, item, with_cas);
  std::memcpy(p, value.data(), value.size());
  p += value.size();
  if (!tail.empty()) {
    std::memcpy(p, tail.data(), tail.size());
    p += tail.size();
  }
  out.Commit(static_cast<size_t>(p - start));
}

const Item* LookUp(ItemStore& store, CommandKind kind, int64_t exptime, std::string_view key) {
  const bool touch = kind == CommandKind::kGat || kind == CommandKind::kGats;
  return touch ? store.GetAndTouch(key, exptime) : store.Get(key);
}

bool ExecuteKeyOp(ItemStore& store, const KeyOp& op, std::string_view key, ItemPtr item,
                  ReplySink& out) {
  std::string_view reply;
  bool error = false;
  char number[22];
  switch (op.kind) {
    case CommandKind::kTouch:
      reply = store.Touch(key, op.exptime) ? "TOUCHED\r\n" : "NOT_FOUND\r\n";
      break;
    case CommandKind::kDelete:
      reply = store.Delete(key) ? "DELETED\r\n" : "NOT_FOUND\r\n";
      break;
    case CommandKind::kIncr:
    case CommandKind::kDecr: {
      uint64_t value = 0;
      switch (store.Delta(key, op.kind == CommandKind::kIncr, op.delta, &value)) {
        case DeltaResult::kOk: {
          char* p = PutNumber(number, number + 20, value);
          *p++ = '\r';
          *p++ = '\n';
          reply = std::string_view(number, static_cast<size_t>(p - number));
          break;
        }
        case DeltaResult::kNotFound:
          reply = "NOT_FOUND\r\n";
          break;
        case DeltaResult::kNonNumeric:
          reply = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
          error = true;
          break;
        case DeltaResult::kNoMemory:
          reply = "SERVER_ERROR out of memory\r\n";
          error = true;
          break;
      }
      break;
    }
    default: {
      if (item == nullptr) {  // a rejected oversized set: drop the old value, say nothing
        store.Unlink(key);
        return false;
      }
      const StoreResult result = store.Store(ModeOf(op.kind), std::move(item), op.exptime,
                                             op.cas_unique);
      reply = StoreReply(result);
      error = result == StoreResult::kTooLarge || result == StoreResult::kNoMemory;
      break;
    }
  }
  if (!op.noreply) out.Append(reply);
  return error;
}

}  // namespace percore::memcache
