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
    for (size_t e = 0; e < totals.accept_errors.size(); ++e) totals.accept_errors[e] += c->accept_errors[e].Get();
  }
  for (int i = 0; i < server.loop_count(); ++i) {
    if (distributor != nullptr && i < static_cast<int>(distributor->handed.size())) {
      totals.handed.push_back(distributor->handed[i]->Get());
    } else {
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
