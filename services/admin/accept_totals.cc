#include "services/admin/accept_totals.h"

#include <string.h>

#include "absl/strings/str_cat.h"

namespace percore {

AcceptTotals SumAcceptCounters(Server& server) {
  AcceptTotals totals;
  const DistributorStats* distributor = server.distributor_stats();
  totals.reuseport = distributor == nullptr;
  for (const AcceptCounters* c : server.accept_counters()) {
    totals.accepted += c->accepted.Get();
    totals.rejected_global_limit += c->rejected_global_limit.Get();
    totals.rejected_loop_limit += c->rejected_loop_limit.Get();
    totals.rejected_no_loop += c->rejected_no_loop.Get();
    totals.backoffs += c->backoffs.Get();
    totals.wakeups += c->wakeups.Get();
    totals.placed_by_load += c->placed_by_load.Get();
    totals.placed_by_connections += c->placed_by_connections.Get();
    for (size_t e = 0; e < totals.accept_errors.size(); ++e) totals.accept_errors[e] += c->accept_errors[e].Get();
  }
  for (int i = 0; i < server.loop_count(); ++i) {
    if (distributor != nullptr && i < static_cast<int>(distributor->handed.size())) {
      // Taken in is read first: what is handed after it only adds to the pending count.
      const uint64_t taken = server.loop(i).stats().conns_handed_in.Get();
      const uint64_t handed = distributor->handed[i]->Get();
      totals.handed.push_back(handed);
      totals.pending.push_back(handed > taken ? handed - taken : 0);
    } else {
      totals.pending.push_back(0);
      totals.handed.push_back(server.loop(i).stats().conns_handed_in.Get());
    }
  }
  return totals;
}

std::string ErrnoName(int err) {
  if (err >= AcceptCounters::kMaxErrno) return "other";
  if (const char* name = strerrorname_np(err); name != nullptr) return name;
  return absl::StrCat("E", err);
}

}  // namespace percore
