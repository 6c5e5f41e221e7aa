#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "reactor/connection.h"
#include "reactor/handler.h"
#include "reactor/sharded.h"

namespace example {

// Each loop owns the tallies of the words that hash to it.
struct Tallies {
  absl::flat_hash_map<std::string, int64_t> seen;
};

// For each line "WORD\n", answers how often any client has sent WORD, this time included.
class TallyHandler final : public percore::Handler {
 public:
  explicit TallyHandler(percore::Sharded<Tallies>& tallies) : tallies_(tallies) {}

  percore::Action OnData(percore::Connection& conn, percore::Buffer& input) override {
    const size_t newline = input.view().find('\n');
    if (newline == std::string_view::npos) return percore::Action::Continue();
    std::string word(input.view().substr(0, newline));
    input.Consume(newline + 1);
    // Runs on the word's owner, then continues here with the count; reads nothing more
    // until then, so replies keep the order of the lines.
    return tallies_.Await(
        conn, tallies_.OwnerOf(word),
        [word = std::move(word)](Tallies& t) { return ++t.seen[word]; },
        [](percore::Connection& c, int64_t count) {
          c.Send(absl::StrCat(count, "\n"));
          c.RecordRequest();
        });
  }

 private:
  percore::Sharded<Tallies>& tallies_;
};

class TallyService final : public percore::Service {
 public:
  std::string_view name() const override { return "tally"; }
  std::unique_ptr<percore::Handler> NewHandler(percore::Connection& conn) override {
    return std::make_unique<TallyHandler>(tallies_);
  }

 private:
  percore::Sharded<Tallies> tallies_{*this};  // one per loop, built on that loop at Start
};

}  // namespace example
