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

}  // namespace

void AppendValue(const Item& item, bool with_cas, OutputQueue& out) {
  // "VALUE <key> <flags> <bytes>[ <cas>]\r\n": the numbers (at most 20 digits each) are
  // formatted on the stack, so a hit costs a few copies into the reply and nothing else.
  char numbers[80];
  char* p = numbers;
  *p++ = ' ';
  p = PutNumber(p, p + 20, item.flags);
  *p++ = ' ';
  p = PutNumber(p, p + 20, item.value_size);
  if (with_cas) {
    *p++ = ' ';
    p = PutNumber(p, p + 20, item.cas);
  }
  *p++ = '\r';
  *p++ = '\n';
  out.Append("VALUE ");
  out.Append(std::string_view(item.key_data(), item.key_size));
  out.Append(std::string_view(numbers, static_cast<size_t>(p - numbers)));
  const std::string_view value = item.value_with_crlf();
  if (value.size() < OutputQueue::kShareAtLeast) {
    out.Append(value);
    return;
  }
  // The shared_ptr's deleter drops the item reference (also if making the control block
  // throws).
  out.AppendShared(value, std::shared_ptr<const void>(ShareItem(item).release(), [](const void* p) {
                     ItemDeleter()(static_cast<Item*>(const_cast<void*>(p)));
                   }));
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
