#include "reactor/timer_wheel.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <limits>

// Layout. A tick number is read as base-256 digits; digit l is the slot index at level l.
// An entry whose deadline tick differs from current_tick_ in no digit above digit l sits at the
// lowest such level l, in the slot named by its digit l: every entry at level l < 3 then has the
// same higher digits as current_tick_, and (for l > 0) its slot starts in the future. When current_tick_
// reaches the start of an occupied higher-level slot, that slot is re-filed ("cascaded") one or
// more levels down. Deadlines whose digits above level 3 differ (beyond the horizon) also sit at
// level 3 in the slot of their digit 3; when it comes round they are re-filed, possibly into the
// same slot again for another lap.
//
// Level-0 slot of current_tick_ holds entries due within the current tick; Advance fires the
// ones whose exact deadline has passed and keeps the others, so nothing fires early and nothing
// waits for the next tick boundary.

namespace percore {
namespace {

int Digit(uint64_t tick, int level) {
  return static_cast<int>((tick >> (level * TimerWheel::kSlotBits)) & (TimerWheel::kSlots - 1));
}

}  // namespace

TimerEntry::~TimerEntry() {
  if (wheel_ != nullptr) wheel_->Cancel(this);
}

TimerWheel::TimerWheel(int64_t tick_ns, int64_t now_ns)
    : tick_ns_(tick_ns), origin_ns_(now_ns), current_tick_(0), now_ns_(now_ns) {
  assert(tick_ns > 0);
}

TimerWheel::~TimerWheel() {
  for (TimerEntry* head : lists_) {
    for (TimerEntry* entry = head; entry != nullptr;) {
      TimerEntry* next = entry->next_;
      entry->wheel_ = nullptr;
      entry->prev_ = nullptr;
      entry->next_ = nullptr;
      entry = next;
    }
  }
}

uint64_t TimerWheel::TickOf(int64_t ns) const {
  // Unsigned so that a span wider than INT64_MAX (origin far below zero) is still exact.
  return (static_cast<uint64_t>(ns) - static_cast<uint64_t>(origin_ns_)) /
         static_cast<uint64_t>(tick_ns_);
}

int64_t TimerWheel::TickStartNs(uint64_t tick) const {
  // Only asked for ticks at or before some armed deadline's tick, so the sum fits in int64_t.
  return static_cast<int64_t>(static_cast<uint64_t>(origin_ns_) +
                              tick * static_cast<uint64_t>(tick_ns_));
}

void TimerWheel::Link(TimerEntry* entry, int list) {
  TimerEntry*& head = lists_[list];
  entry->list_ = static_cast<uint16_t>(list);
  entry->prev_ = nullptr;
  entry->next_ = head;
  if (head != nullptr) head->prev_ = entry;
  head = entry;
  if (list < kWheelLists) SetOccupied(list);
}

void TimerWheel::SetOccupied(int list) {
  occupied_[list / kSlots][list % kSlots / 64] |= uint64_t{1} << (list % 64);
  next_tick_valid_ = false;
}

void TimerWheel::ClearOccupied(int list) {
  occupied_[list / kSlots][list % kSlots / 64] &= ~(uint64_t{1} << (list % 64));
  next_tick_valid_ = false;
}

void TimerWheel::Unlink(TimerEntry* entry) {
  const int list = entry->list_;
  if (entry->prev_ != nullptr) {
    entry->prev_->next_ = entry->next_;
  } else {
    lists_[list] = entry->next_;
  }
  if (entry->next_ != nullptr) entry->next_->prev_ = entry->prev_;
  entry->prev_ = nullptr;
  entry->next_ = nullptr;
  if (list < kWheelLists && lists_[list] == nullptr) ClearOccupied(list);
}

void TimerWheel::File(TimerEntry* entry) {
  const uint64_t tick = entry->deadline_tick_;
  assert(tick >= current_tick_);
  const int highest_differing_bit = std::bit_width((tick ^ current_tick_) | 1) - 1;
  const int level = std::min(highest_differing_bit / kSlotBits, kLevels - 1);
  const int list = level * kSlots + Digit(tick, level);
  if (tick == current_tick_) {
    current_slot_min_ns_ = lists_[list] == nullptr
                               ? entry->deadline_ns_
                               : std::min(current_slot_min_ns_, entry->deadline_ns_);
  }
  Link(entry, list);
}

void TimerWheel::Schedule(TimerEntry* entry, int64_t deadline_ns) {
  if (entry->wheel_ == this) {
    Unlink(entry);
  } else {
    if (entry->wheel_ != nullptr) entry->wheel_->Cancel(entry);
    entry->wheel_ = this;
    if (size_++ == 0 && TickOf(now_ns_) > current_tick_) {
      // Advance only records the time while nothing is armed: catch the empty wheel up first,
      // so that the entry is filed from the current tick, not from a stale one laps behind.
      current_tick_ = TickOf(now_ns_);
      next_tick_valid_ = false;
    }
  }
  entry->deadline_ns_ = deadline_ns;
  if (deadline_ns < due_bound_ns_) due_bound_ns_ = deadline_ns;
  if (deadline_ns <= now_ns_) {
    overdue_min_ns_ = lists_[kOverdueList] == nullptr ? deadline_ns
                                                      : std::min(overdue_min_ns_, deadline_ns);
    entry->deadline_tick_ = current_tick_;
    Link(entry, kOverdueList);
    return;
  }
  entry->deadline_tick_ = TickOf(deadline_ns);
  File(entry);
}

void TimerWheel::Cancel(TimerEntry* entry) {
  if (entry->wheel_ == nullptr) return;
  assert(entry->wheel_ == this);
  Unlink(entry);
  entry->wheel_ = nullptr;
  if (--size_ == 0) due_bound_ns_ = kNoDeadline;
}

void TimerWheel::DetachToFiring(int list) {
  assert(lists_[kFiringList] == nullptr);
  TimerEntry* head = lists_[list];
  for (TimerEntry* entry = head; entry != nullptr; entry = entry->next_) {
    entry->list_ = kFiringList;
  }
  lists_[kFiringList] = head;
  lists_[list] = nullptr;
  if (list < kWheelLists) ClearOccupied(list);
}

void TimerWheel::Fire(TimerEntry* entry) {
  Unlink(entry);
  entry->wheel_ = nullptr;
  --size_;
  entry->OnTimer();
}

int TimerWheel::FireOverdue() {
  if (lists_[kOverdueList] == nullptr) return 0;
  firing_min_ns_ = overdue_min_ns_;
  DetachToFiring(kOverdueList);
  int fired = 0;
  while (lists_[kFiringList] != nullptr) {
    Fire(lists_[kFiringList]);
    ++fired;
  }
  return fired;
}

int TimerWheel::FireCurrentSlot(int64_t now_ns) {
  const int list = Digit(current_tick_, 0);
  if (lists_[list] == nullptr || now_ns < current_slot_min_ns_) return 0;
  firing_min_ns_ = current_slot_min_ns_;
  DetachToFiring(list);
  int fired = 0;
  while (TimerEntry* entry = lists_[kFiringList]) {
    if (entry->deadline_ns_ <= now_ns) {
      Fire(entry);
      ++fired;
    } else {
      Unlink(entry);
      File(entry);
    }
  }
  return fired;
}

void TimerWheel::MoveTo(uint64_t tick) {
  assert(tick > current_tick_);
  current_tick_ = tick;
  next_tick_valid_ = false;
  // Entries already in this tick's level-0 slot were filed without tracking their minimum; the
  // slot's start is a bound for them (File refines it for entries cascaded in below).
  current_slot_min_ns_ = TickStartNs(tick);
  // Top level first: its entries may land in a lower slot that also starts at `tick`.
  for (int level = kLevels - 1; level >= 1; --level) {
    if ((tick & ((uint64_t{1} << (level * kSlotBits)) - 1)) != 0) continue;
    const int list = level * kSlots + Digit(tick, level);
    TimerEntry* entry = lists_[list];
    if (entry == nullptr) continue;
    lists_[list] = nullptr;
    ClearOccupied(list);
    // No callback runs while re-filing, so the detached chain can be walked directly.
    while (entry != nullptr) {
      TimerEntry* next = entry->next_;
      File(entry);
      entry = next;
    }
  }
}

int TimerWheel::FindOccupied(int level, int from) const {
  for (int word = from / 64; word < kWordsPerLevel; ++word) {
    uint64_t bits = occupied_[level][word];
    if (word == from / 64) bits &= ~uint64_t{0} << (from % 64);
    if (bits != 0) return word * 64 + std::countr_zero(bits);
  }
  return -1;
}

uint64_t TimerWheel::NextEventTick() const {
  // Asked at least twice per loop iteration (Advance, then the poll timeout) while the wheel
  // rarely changes in between: the answer is kept until a slot fills or empties or the
  // current tick moves.
  if (!next_tick_valid_) {
    cached_next_tick_ = ScanNextEventTick();
    next_tick_valid_ = true;
  }
  return cached_next_tick_;
}

uint64_t TimerWheel::ScanNextEventTick() const {
  // A non-empty lower level always has work before any higher level, so the first level with an
  // occupied slot after the current digit decides.
  for (int level = 0; level < kLevels; ++level) {
    const int shift = level * kSlotBits;
    const uint64_t block = current_tick_ >> (shift + kSlotBits) << (shift + kSlotBits);
    const int slot = FindOccupied(level, Digit(current_tick_, level) + 1);
    if (slot >= 0) return block | (static_cast<uint64_t>(slot) << shift);
    if (level == kLevels - 1) {
      // Only entries beyond the horizon sit at or before the current top digit: their slot comes
      // round in the next top-level lap.
      const int lap_slot = FindOccupied(level, 0);
      if (lap_slot >= 0) {
        return block + (uint64_t{1} << (shift + kSlotBits)) +
               (static_cast<uint64_t>(lap_slot) << shift);
      }
    }
  }
  return kNoTick;
}

int TimerWheel::AdvanceDue(int64_t now_ns) {
  assert(!advancing_);
  advancing_ = true;
  now_ns_ = std::max(now_ns_, now_ns);
  const int64_t now = now_ns_;
  const uint64_t target = TickOf(now);

  int fired = FireOverdue();
  for (;;) {
    fired += FireCurrentSlot(now);
    if (current_tick_ == target) break;
    const uint64_t next = NextEventTick();
    if (next > target) {
      // Nothing is filed in between, so no slot needs re-filing on the way.
      current_tick_ = target;
      next_tick_valid_ = false;
      break;
    }
    MoveTo(next);
  }
  advancing_ = false;
  due_bound_ns_ = ScanNextExpiry();
  return fired;
}

int64_t TimerWheel::ScanNextExpiry() const {
  int64_t earliest = kNoDeadline;
  if (lists_[kOverdueList] != nullptr) earliest = overdue_min_ns_;
  if (lists_[kFiringList] != nullptr) earliest = std::min(earliest, firing_min_ns_);  // only while OnTimer runs
  if (lists_[Digit(current_tick_, 0)] != nullptr) {
    // Everything else in the wheel is due in a later tick.
    earliest = std::min(earliest, current_slot_min_ns_);
  } else if (const uint64_t tick = NextEventTick(); tick != kNoTick) {
    earliest = std::min(earliest, TickStartNs(tick));
  }
  return earliest;
}

}  // namespace percore
