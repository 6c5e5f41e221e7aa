#pragma once

#include <string>

#include "services/admin/admin.pb.h"

namespace percore {

// Human-readable renderings of admin replies (what percorectl prints without --json).

// Server line, one row per loop, the accepting side and one row per service. Rates are taken
// between `previous` and `now` when `previous` is given (watch), otherwise since start.
std::string StatsText(const admin::v1::Stats& now, const admin::v1::Stats* previous);
// One row per connection, then any stalled loops.
std::string ConnectionsText(const admin::v1::ListConnectionsResponse& reply);
std::string ConfigText(const admin::v1::Config& config);

}  // namespace percore
