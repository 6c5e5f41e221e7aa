#pragma once

#include <array>
#include <cstdint>

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
  // so it may re-arm itself from here.
  virtual void OnTimer() = 0;

 private:
  friend class TimerWheel;
  TimerWheel* wheel_ = nullptr;
  TimerEntry* prev_ = nullptr;
  TimerEntry* next_ = nullptr;
  int64_t deadline_ns_ = 0;
  uint64_t deadline_tick_ = 0;
};

// A hierarchical hashed timing wheel (Varghese & Lauck): O(1) arm, re-arm and cancel.
// kLevels levels of kSlots slots each; level 0 slots are one tick wide, level k slots are
// kSlots^k ticks wide. Entries beyond the top level's horizon wait in the top level and are
// re-filed when their slot comes round. An entry never fires before its deadline and fires at
// most one tick after it (plus however late Advance is called). Single-threaded.
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
  // A deadline in the past fires on the next Advance.
  void Schedule(TimerEntry* entry, int64_t deadline_ns);
  // Disarms `entry`; a no-op if it is not armed.
  void Cancel(TimerEntry* entry);
  // Fires every entry whose deadline is <= now_ns, in deadline-tick order. Returns how many fired.
  int Advance(int64_t now_ns);
  // A lower bound on the earliest armed deadline (time at which Advance may have work), or -1
  // when nothing is armed. Used to compute how long the loop may sleep.
  int64_t NextExpiry() const;

  int size() const { return size_; }
  int64_t tick_ns() const { return tick_ns_; }

 private:
  // ... implementation-defined
  int64_t tick_ns_;
  int64_t origin_ns_;
  uint64_t current_tick_;
  int size_ = 0;
};

}  // namespace percore
