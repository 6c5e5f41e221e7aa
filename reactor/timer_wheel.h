#pragma once

#include <array>
#include <cstdint>
#include <limits>

namespace percore {

class TimerWheel;

// An intrusive timer: embed (or derive from) it in the object it times, so arming, re-arming
// and cancelling never allocate. Owned by its user; it must be cancelled (or fired) before it
// is destroyed — the destructor cancels it if still armed.
class TimerEntry {
 public:
  TimerEntry() = default;
  TimerEntry(const TimerEntry&) = delete;
  TimerEntry& operator=(const TimerEntry&) = delete;
  virtual ~TimerEntry();

  bool armed() const { return wheel_ != nullptr; }
  int64_t deadline_ns() const { return deadline_ns_; }

 protected:
  // Called by TimerWheel::Advance once the deadline has passed; the entry is already disarmed,
  // so it may re-arm itself from here, or destroy the object that embeds it: the wheel does not
  // touch the entry once OnTimer has been called.
  virtual void OnTimer() = 0;

 private:
  friend class TimerWheel;
  // Links and position, meaningful only while armed (wheel_ != nullptr).
  TimerWheel* wheel_ = nullptr;
  TimerEntry* prev_ = nullptr;
  TimerEntry* next_ = nullptr;
  int64_t deadline_ns_ = 0;
  uint64_t deadline_tick_ = 0;
  uint16_t list_ = 0;  // which of the wheel's lists holds the entry: the head to fix on unlink
};

// A hierarchical hashed timing wheel (Varghese & Lauck): O(1) arm, re-arm and cancel.
// kLevels levels of kSlots slots each; level 0 slots are one tick wide, level k slots are
// kSlots^k ticks wide. Entries beyond the top level's horizon wait in the top level and are
// re-filed when their slot comes round. An entry never fires before its deadline and fires at
// most one tick after it (plus however late Advance is called); this implementation compares
// exact deadlines within the current tick, so an entry fires on the first Advance whose now_ns
// reaches its deadline. Single-threaded: every call on the owning loop's thread.
class TimerWheel {
 public:
  static constexpr int kLevels = 4;
  static constexpr int kSlotBits = 8;
  static constexpr int kSlots = 1 << kSlotBits;

  // `tick_ns`: resolution; `now_ns`: the current time on the caller's monotonic clock.
  TimerWheel(int64_t tick_ns, int64_t now_ns);
  ~TimerWheel();
  TimerWheel(const TimerWheel&) = delete;
  TimerWheel& operator=(const TimerWheel&) = delete;

  // Arms `entry` to fire at `deadline_ns` (re-arms if it is already armed, on this wheel).
  // A deadline in the past fires on the next Advance. May be called from OnTimer.
  void Schedule(TimerEntry* entry, int64_t deadline_ns);
  // Disarms `entry`; a no-op if it is not armed. May be called from OnTimer.
  void Cancel(TimerEntry* entry);
  // Fires every entry whose deadline is <= now_ns, in deadline-tick order. Returns how many fired.
  // Entries armed with an already-reached deadline fire first; entries of one tick fire in no
  // particular order. An entry armed during this call with a deadline <= now_ns (a callback
  // re-arming itself in the past) fires on the next Advance, not this one, so it cannot loop.
  // A now_ns earlier than a previous one counts as the previous one. Not re-entrant: never call
  // it from OnTimer. Skips empty stretches of time in one step however long the loop slept.
  //
  // Called once per loop iteration, it costs a comparison until something may be due: the
  // wheel keeps a lower bound on every armed deadline (lowered by Schedule, kept by Cancel
  // unless the wheel empties, recomputed by an Advance that does work), and an Advance before
  // it only records the time. The ticks in between are walked later, in one step, by the
  // Advance that has work.
  int Advance(int64_t now_ns) {
    const int64_t now = now_ns > now_ns_ ? now_ns : now_ns_;
    if (now < due_bound_ns_) {
      now_ns_ = now;
      return 0;
    }
    return AdvanceDue(now);
  }
  // A lower bound on the earliest armed deadline (time at which Advance may have work), or -1
  // when nothing is armed. Used to compute how long the loop may sleep. Right after
  // Advance(now) returns it is > now (unless OnTimer armed an entry in the past), so a loop that
  // sleeps until NextExpiry never spins; a cancelled entry may leave it early, which costs one
  // wake-up whose Advance recomputes it.
  int64_t NextExpiry() const { return due_bound_ns_ == kNoDeadline ? -1 : due_bound_ns_; }

  int size() const { return size_; }
  int64_t tick_ns() const { return tick_ns_; }

 private:
  // Lists are indexed level * kSlots + slot for the wheel proper, then two more.
  static constexpr int kWheelLists = kLevels * kSlots;
  // Armed with a deadline that had already been reached when scheduled (also from OnTimer):
  // fired at the start of the next Advance, never in the Advance that scheduled them.
  static constexpr int kOverdueList = kWheelLists;
  // Detached by Advance and emptied one entry at a time, so OnTimer may cancel or re-arm any
  // entry, the ones still waiting here included.
  static constexpr int kFiringList = kWheelLists + 1;
  static constexpr int kLists = kWheelLists + 2;
  static constexpr int kWordsPerLevel = kSlots / 64;

  uint64_t TickOf(int64_t ns) const;
  int64_t TickStartNs(uint64_t tick) const;
  // Puts an armed entry with deadline_tick_ >= current_tick_ in its wheel slot.
  void File(TimerEntry* entry);
  void Link(TimerEntry* entry, int list);
  void SetOccupied(int list);
  void ClearOccupied(int list);
  void Unlink(TimerEntry* entry);
  // Moves a whole list onto the (empty) firing list.
  void DetachToFiring(int list);
  // Disarms `entry` and runs its callback; `entry` must not be touched afterwards.
  void Fire(TimerEntry* entry);
  int FireOverdue();
  // Fires the entries of the current tick's slot that are due at `now_ns`; keeps the rest.
  int FireCurrentSlot(int64_t now_ns);
  // Moves current_tick_ forward to `tick` and re-files the higher-level slots that start there.
  void MoveTo(uint64_t tick);
  // The first tick after current_tick_ at which a wheel slot (at any level) starts to hold work,
  // or kNoTick if the wheel proper is empty. Lets Advance skip empty stretches in one step.
  uint64_t NextEventTick() const;
  uint64_t ScanNextEventTick() const;  // NextEventTick without the cache
  // The first occupied slot of `level` at index >= `from`, or -1.
  int FindOccupied(int level, int from) const;

  static constexpr uint64_t kNoTick = ~uint64_t{0};
  static constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();

  int AdvanceDue(int64_t now_ns);
  // The wheel's own lower bound on the earliest deadline (what NextExpiry reported before it
  // was cached in due_bound_ns_), or kNoDeadline.
  int64_t ScanNextExpiry() const;

  int64_t tick_ns_;
  int64_t origin_ns_;  // tick t covers [origin_ns_ + t * tick_ns_, origin_ns_ + (t + 1) * tick_ns_)
  uint64_t current_tick_;  // the tick holding now_ns_
  int size_ = 0;
  int64_t now_ns_;  // the latest time given to the constructor or Advance
  // <= every armed entry's deadline; kNoDeadline when nothing was armed since it was computed.
  int64_t due_bound_ns_ = kNoDeadline;
  bool advancing_ = false;
  // Lower bounds of the deadlines on the overdue list, the firing list and the current tick's
  // level-0 slot. Valid while the list is non-empty; reset when it is refilled from empty.
  int64_t overdue_min_ns_ = 0;
  int64_t firing_min_ns_ = 0;
  int64_t current_slot_min_ns_ = 0;
  std::array<TimerEntry*, kLists> lists_{};
  // Bit s of level l is set iff list l * kSlots + s is non-empty.
  std::array<std::array<uint64_t, kWordsPerLevel>, kLevels> occupied_{};
  // NextEventTick's last answer, valid until occupied_ or current_tick_ changes.
  mutable uint64_t cached_next_tick_ = 0;
  mutable bool next_tick_valid_ = false;
};

}  // namespace percore
