#pragma once

#include "absl/status/statusor.h"
#include "tools/loadgen/load_options.h"
#include "tools/loadgen/report.h"

namespace percore::loadgen {

// Checks the options for contradictions and values out of range.
absl::Status ValidateOptions(const LoadOptions& options);

// Runs the load described by `options` against options.server: opens the idle connections,
// preloads the keys if asked, starts `threads` workers and waits for them. A failure to set up
// (bad options, no server) is a Status; wrong replies during the run are counted in the Report.
// Ignores SIGPIPE and raises the soft open-file limit to the hard one (process-wide).
absl::StatusOr<Report> RunLoad(const LoadOptions& options);

}  // namespace percore::loadgen
