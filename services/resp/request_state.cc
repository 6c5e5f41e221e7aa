#include "services/resp/request_state.h"

namespace percore {

RespRequestState::RespRequestState(const RespStateSettings& settings)
    : parser(*settings.options), copy_budget(settings.batch_copy_budget) {
  calls.resize(static_cast<size_t>(settings.shard_count));
  local.set_copy_budget(copy_budget);
  pending.set_copy_budget(settings.pending_copy_budget);
}

}  // namespace percore
