#include "services/resp/resp_limits.h"

#include <atomic>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "core/buffer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reactor/connection.h"
#include "services/resp/command_table.h"
#include "services/resp/commands.h"
#include "services/resp/resp_options.h"
#include "services/resp/string_store.h"

namespace percore {
namespace {

using ::testing::HasSubstr;

TEST(ValidateRespLimitsTest, DefaultsWork) {
  EXPECT_TRUE(ValidateRespLimits(RespOptions{}, ConnectionOptions{}).ok());
}

TEST(ValidateRespLimitsTest, EachCombinationThatCannotWork) {
  struct Case {
    const char* what;
    RespOptions options;
    ConnectionOptions connection;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, auto change) {
    Case c{what, RespOptions{}, ConnectionOptions{}};
    change(c.options, c.connection);
    cases.push_back(c);
  };
  add("max_bulk_bytes", [](RespOptions& o, ConnectionOptions&) { o.max_bulk_bytes = 3; });
  add("max_bulk_bytes",
      [](RespOptions& o, ConnectionOptions&) { o.max_bulk_bytes = kRespSmallestBulkLimit - 1; });
  add("max_args", [](RespOptions& o, ConnectionOptions&) { o.max_args = 2; });
  add("max_inline_bytes", [](RespOptions& o, ConnectionOptions&) { o.max_inline_bytes = 8; });
  add("max_request_bytes",
      [](RespOptions& o, ConnectionOptions&) { o.max_request_bytes = o.max_bulk_bytes; });
  add("max_request_bytes", [](RespOptions& o, ConnectionOptions&) {
    o.max_bulk_bytes = size_t{1} << 30;  // the query buffer limit's default
  });
  add("max_batch_commands", [](RespOptions& o, ConnectionOptions&) { o.max_batch_commands = 0; });
  add("max_batch_bytes", [](RespOptions& o, ConnectionOptions&) { o.max_batch_bytes = 0; });
  add("expire_period",
      [](RespOptions& o, ConnectionOptions&) { o.expire_period = absl::ZeroDuration(); });
  add("expire_period",
      [](RespOptions& o, ConnectionOptions&) { o.expire_period = absl::InfiniteDuration(); });
  add("expire_sample", [](RespOptions& o, ConnectionOptions&) { o.expire_sample = -1; });
  add("output_cap", [](RespOptions&, ConnectionOptions& c) { c.output_cap = c.high_water; });
  add("output_cap", [](RespOptions&, ConnectionOptions& c) { c.output_cap = c.high_water / 2; });
  add("output_cap", [](RespOptions&, ConnectionOptions& c) {
    c.output_cap = c.high_water + kRespLargestCopiedPiece;
  });
  for (const Case& c : cases) {
    const absl::Status status = ValidateRespLimits(c.options, c.connection);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.what;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.what));
  }
}

TEST(ValidateRespLimitsTest, EdgesThatWork) {
  {
    RespOptions options;
    options.max_bulk_bytes = kRespSmallestBulkLimit;
    EXPECT_TRUE(ValidateRespLimits(options, ConnectionOptions{}).ok());
  }
  RespOptions options;
  options.max_args = 3;
  options.max_bulk_bytes = 100'000'000;  // "$100000000\r": 11 bytes
  options.max_inline_bytes = 11;
  options.max_request_bytes = options.max_bulk_bytes + kRespRequestFraming;
  ConnectionOptions connection;
  connection.output_cap = connection.high_water + kRespLargestCopiedPiece + 1;
  EXPECT_TRUE(ValidateRespLimits(options, connection).ok());
  options.max_inline_bytes = 10;
  EXPECT_FALSE(ValidateRespLimits(options, connection).ok());
}

// The output cap's margin above high_water assumes no reply RESP copies whole is larger than
// kRespLargestCopiedPiece; the largest are the self-descriptions.
TEST(ValidateRespLimitsTest, LargestCopiedRepliesFitTheMargin) {
  RespOptions options;
  StringStore store;
  std::atomic<int64_t> clients{0};
  std::atomic<uint64_t> total{0};
  ServerView view;
  view.options = &options;
  view.keyspace = [&store] {
    return KeyspaceFigures{1, store.key_count(), store.expiring_count()};
  };
  view.connected_clients = &clients;
  view.total_connections = &total;
  SessionContext session;
  session.server = &view;
  for (std::initializer_list<std::string_view> request :
       {std::initializer_list<std::string_view>{"COMMAND"}, {"COMMAND", "DOCS"},
        {"COMMAND", "LIST"}, {"COMMAND", "INFO"}, {"INFO"}, {"CONFIG", "GET", "*"}}) {
    std::vector<std::string_view> args(request);
    Buffer out;
    ASSERT_NE(RunCommandLocally(args, store, session, out), nullptr);
    EXPECT_LT(out.size(), kRespLargestCopiedPiece / 2) << args[0] << " " << args.size();
  }
}

}  // namespace
}  // namespace percore
