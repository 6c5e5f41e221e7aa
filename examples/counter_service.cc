#include "counter_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/buffer.h"
#include "reactor/close_reason.h"
#include "reactor/connection.h"

namespace counter {

namespace {

// With Debian's Abseil, absl::string_view is Abseil's own type; the map looks keys up by it.
absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

std::optional<uint64_t> CounterShard::Increment(std::string_view key) {
  auto it = counts_.find(AsAbsl(key));
  if (it == counts_.end()) {
    if (counts_.size() >= max_keys_) return std::nullopt;
    it = counts_.emplace(std::string(key), 0).first;
    keys_.Set(static_cast<int64_t>(counts_.size()));
  }
  increments_.Increment();
  return ++it->second;
}

uint64_t CounterShard::Get(std::string_view key) const {
  const auto it = counts_.find(AsAbsl(key));
  return it == counts_.end() ? 0 : it->second;
}

namespace {

enum class Verb { kIncr, kGet };

struct Request {
  Verb verb;
  std::string_view key;
};

// A key is one or more printable, non-space ASCII bytes.
bool ValidKey(std::string_view key) {
  if (key.empty()) return false;
  for (const unsigned char c : key) {
    if (c <= ' ' || c >= 0x7f) return false;
  }
  return true;
}

// Parses one line (its newline removed; a trailing '\r' is allowed). On a bad line, returns
// nullopt and sets `error` to the reply's reason.
std::optional<Request> ParseLine(std::string_view line, std::string_view& error) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t space = line.find(' ');
  const std::string_view verb = line.substr(0, space);
  Request request;
  if (verb == "INCR") {
    request.verb = Verb::kIncr;
  } else if (verb == "GET") {
    request.verb = Verb::kGet;
  } else {
    error = "unknown command";
    return std::nullopt;
  }
  request.key = space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
  if (!ValidKey(request.key)) {
    error = "bad key";
    return std::nullopt;
  }
  return request;
}

class CounterHandler final : public percore::Handler {
 public:
  CounterHandler(percore::Sharded<CounterShard>& shards, const CounterOptions& options)
      : shards_(shards), options_(options) {}

  percore::Action OnData(percore::Connection& conn, percore::Buffer& input) override {
    for (;;) {
      const std::string_view bytes = input.view();
      const size_t newline = bytes.find('\n');
      // The limit is on the line without its terminator ("\n" or "\r\n").
      size_t line_length = newline == std::string_view::npos ? bytes.size() : newline;
      if (line_length > 0 && bytes[line_length - 1] == '\r') --line_length;
      if (line_length > options_.max_line) return Refuse(conn, "line too long");
      if (newline == std::string_view::npos) {
        WatchPartialLine(conn, !bytes.empty());
        return percore::Action::Continue();  // wait for the rest of the line
      }
      std::string_view error;
      const std::optional<Request> request = ParseLine(bytes.substr(0, newline), error);
      if (!request) return Refuse(conn, error);
      // The key is copied before the line is consumed: the work may run later, on another loop.
      std::string key(request->key);
      input.Consume(newline + 1);
      WatchPartialLine(conn, false);
      const percore::Action action = Serve(conn, request->verb, std::move(key));
      // Remote owner: nothing more is read until the answer has been sent; the framework then
      // resumes the connection and offers the rest of `input` again.
      if (action.kind() != percore::Action::Kind::kContinue) return action;
    }
  }

  percore::Action OnDeadline(percore::Connection& conn) override {
    deadline_armed_ = false;
    conn.Send("ERROR timeout\n");
    return percore::Action::Close(percore::CloseMode::kFlush, percore::CloseReason::kReadTimeout);
  }

 private:
  percore::Action Serve(percore::Connection& conn, Verb verb, std::string key) {
    const percore::ShardId owner = shards_.OwnerOf(key);
    // Runs here, at once or once the owner has answered; either way the request is timed from
    // the callback that read it.
    auto reply = [](percore::Connection& c, std::optional<uint64_t> value) {
      if (value) {
        c.Send(absl::StrCat(*value, "\n"));
      } else {
        c.Send("ERROR too many keys\n");
      }
      c.RecordRequest(/*error=*/!value.has_value());
    };
    if (verb == Verb::kIncr) {
      return shards_.Await(
          conn, owner, [key = std::move(key)](CounterShard& shard) { return shard.Increment(key); },
          std::move(reply));
    }
    return shards_.Await(
        conn, owner,
        [key = std::move(key)](CounterShard& shard) { return std::optional<uint64_t>(shard.Get(key)); },
        std::move(reply));
  }

  // A bad request: say why, count it as an error, and close once the reply is written.
  percore::Action Refuse(percore::Connection& conn, std::string_view reason) {
    conn.Send(absl::StrCat("ERROR ", AsAbsl(reason), "\n"));
    conn.RecordRequest(/*error=*/true);
    return percore::Action::Close(percore::CloseMode::kFlush, percore::CloseReason::kProtocolError);
  }

  // The line timeout runs from the first byte of a line to its newline; more bytes of the same
  // line do not extend it.
  void WatchPartialLine(percore::Connection& conn, bool partial) {
    if (partial && !deadline_armed_) {
      conn.SetDeadline(options_.line_timeout);
      deadline_armed_ = true;
    } else if (!partial && deadline_armed_) {
      conn.ClearDeadline();
      deadline_armed_ = false;
    }
  }

  percore::Sharded<CounterShard>& shards_;
  const CounterOptions& options_;
  bool deadline_armed_ = false;
};

}  // namespace

CounterService::CounterService(CounterOptions options) : options_(std::move(options)) {}

std::unique_ptr<percore::Handler> CounterService::NewHandler(percore::Connection& conn) {
  return std::make_unique<CounterHandler>(shards_, options_);
}

std::vector<ShardFigures> CounterService::Figures() const {
  std::vector<ShardFigures> figures;
  shards_.ForEachShard([&](percore::ShardId id, const CounterShard& shard) {
    figures.push_back({id, shard.increments().Get(), shard.keys().Get()});
  });
  return figures;
}

}  // namespace counter
