#include "services/resp/shard_call.h"

namespace percore {

size_t ShardCall::Add(const CommandSpec& spec, CommandArgs args) {
  commands_.push_back({&spec, args_.size(), args.size() - 1});
  for (size_t i = 1; i < args.size(); ++i) {
    args_.emplace_back(arena_.size(), args[i].size());
    arena_.append(args[i].data(), args[i].size());
  }
  return commands_.size() - 1;
}

void ShardCall::Run(StringStore& store, const RespOptions& options) {
  for (const Queued& command : commands_) {
    argv_.clear();
    argv_.push_back(command.spec->name);
    for (size_t i = 0; i < command.argc; ++i) {
      const auto& [offset, length] = args_[command.first_arg + i];
      argv_.emplace_back(arena_.data() + offset, length);
    }
    ReplySink out(replies_);
    command.spec->store_fn(argv_, store, options, out);
    replies_.Seal();
  }
}

void ShardCall::Reset() {
  // The arena is kept for the next batch up to a size small batches use; one that carried a
  // large value gives its memory back, or every kept call of every idle request state would
  // hold the largest value it ever carried.
  if (arena_.capacity() > kKeptArenaBytes) {
    std::string().swap(arena_);
  } else {
    arena_.clear();
  }
  args_.clear();
  commands_.clear();
  argv_.clear();
  replies_.Clear();
}

}  // namespace percore
