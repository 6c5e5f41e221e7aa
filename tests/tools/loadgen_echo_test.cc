// loadgen against a real percore::Server running the echo service in this process: the
// requests it reports are the requests the server saw. And against fake servers that answer
// wrongly: every wrong reply is an error, and the binary exits 1.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/echo/echo_service.h"
#include "tests/testing/deadline.h"
#include "tests/tools/fake_server.h"
#include "tests/tools/loadgen_process.h"
#include "tests/tools/running_server.h"
#include "tools/loadgen/run.h"

namespace percore {
namespace {

using loadgen::LoadOptions;
using loadgen::Protocol;
using loadgen::Report;
using loadgen::RunLoad;
using test::Deadline;
using test::FakeServer;
using test::JsonNumber;
using test::RunLoadgen;
using test::WaitUntil;

// Echo counts one request per read; reads may coalesce pipelined messages.
class EchoServer : public test::RunningServer {
 public:
  EchoServer() : RunningServer(NewEchoService()) {}
  uint64_t echo_reads() { return requests(); }
};

LoadOptions EchoLoad(uint16_t port) {
  LoadOptions o;
  o.server = HostPort{"127.0.0.1", port};
  o.workload.protocol = Protocol::kEcho;
  o.workload.message_size = 100;
  o.connections = 8;
  o.threads = 2;
  o.depth = 4;
  o.requests = 2000;
  o.timeout_ns = 20'000'000'000;
  return o;
}

TEST(LoadgenEchoTest, ReportedRequestsAreWhatTheServerSaw) {
  EchoServer server;
  const Report r = *RunLoad(EchoLoad(server.port()));
  EXPECT_EQ(r.errors, 0u) << (r.error_samples.empty() ? "" : r.error_samples[0]);
  EXPECT_EQ(r.requests(), 2000u);
  EXPECT_EQ(r.issued, 2000u);
  EXPECT_EQ(r.bytes_out, 2000u * 100);
  EXPECT_EQ(r.bytes_in, 2000u * 100);
  EXPECT_EQ(r.latency_ns.count, 2000u);
  EXPECT_EQ(r.threads, 2);
  // Every message was read by the server before it was echoed, so its counters are final.
  EXPECT_TRUE(WaitUntil([&] { return server.bytes_in() == 2000u * 100; }, Deadline::In(absl::Seconds(10))))
      << server.bytes_in();
  EXPECT_EQ(server.handed_in(), 8u);
  EXPECT_GE(server.echo_reads(), 1u);
  EXPECT_LE(server.echo_reads(), 2000u);
}

TEST(LoadgenEchoTest, OpenLoopSendsTheRequestedCount) {
  EchoServer server;
  LoadOptions o = EchoLoad(server.port());
  o.rate = 20'000;
  o.requests = 1000;
  o.workload.message_size = 4096;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.requests(), 1000u);
  EXPECT_TRUE(WaitUntil([&] { return server.bytes_in() == 1000u * 4096; }, Deadline::In(absl::Seconds(10))));
}

TEST(LoadgenEchoTest, DurationBoundedRunStopsAndCountsConsistently) {
  EchoServer server;
  LoadOptions o = EchoLoad(server.port());
  o.requests = 0;
  o.duration_ns = 200'000'000;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_GT(r.requests(), 0u);
  EXPECT_EQ(r.issued, r.requests());
  EXPECT_TRUE(WaitUntil([&] { return server.bytes_in() == r.requests() * 100; }, Deadline::In(absl::Seconds(10))));
}

TEST(LoadgenEchoTest, ConnectPerRequestOpensAConnectionForEachRequest) {
  EchoServer server;
  LoadOptions o = EchoLoad(server.port());
  o.connect_per_request = true;
  o.depth = 1;
  o.connections = 4;
  o.requests = 300;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.requests(), 300u);
  EXPECT_EQ(r.connects, 300u);
  EXPECT_TRUE(WaitUntil([&] { return server.handed_in() == 300u; }, Deadline::In(absl::Seconds(10))));
}

TEST(LoadgenEchoTest, IdleConnectionsAreOpenedAndHeld) {
  EchoServer server;
  LoadOptions o = EchoLoad(server.port());
  o.idle_connections = 50;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.idle_connections, 50);
  EXPECT_TRUE(WaitUntil([&] { return server.handed_in() == 58u; }, Deadline::In(absl::Seconds(10))));
  EXPECT_EQ(server.bytes_in(), 2000u * 100);
}

TEST(LoadgenEchoTest, IdleConnectionsCanServeOneRequestFirst) {
  EchoServer server;
  LoadOptions o = EchoLoad(server.port());
  o.idle_connections = 20;
  o.idle_after_request = true;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(r.idle_connections, 20);
  // The run's 2,000 requests of 100 bytes, and one message of the workload's size per idle one.
  EXPECT_TRUE(WaitUntil([&] { return server.bytes_in() == 2000u * 100 + 20u * 100; }, Deadline::In(absl::Seconds(10))))
      << server.bytes_in();
}

TEST(LoadgenEchoTest, BadOptionsAndNoServerAreSetupFailures) {
  LoadOptions o = EchoLoad(1);
  o.depth = 0;
  EXPECT_FALSE(RunLoad(o).ok());
  o = EchoLoad(1);
  o.connect_per_request = true;
  o.depth = 1;
  o.rate = 10;
  EXPECT_FALSE(RunLoad(o).ok());
  // Nothing listens on a port just released.
  uint16_t free_port = 0;
  { FakeServer released([](std::string&) { return std::string(); }); free_port = released.port(); }
  EXPECT_FALSE(RunLoad(EchoLoad(free_port)).ok());
}

// --- The binary ---

TEST(LoadgenBinaryTest, JsonReportMatchesTheServer) {
  EchoServer server;
  const test::LoadgenRun run = RunLoadgen({absl::StrCat("--server=127.0.0.1:", server.port()), "--protocol=echo",
                                           "--connections=4", "--threads=2", "--depth=8", "--requests=5000",
                                           "--message_size=64", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(JsonNumber(run.output, "requests"), 5000);
  EXPECT_EQ(JsonNumber(run.output, "errors"), 0);
  EXPECT_EQ(JsonNumber(run.output, "bytes_in"), 5000 * 64);
  EXPECT_TRUE(JsonNumber(run.output, "p99.9").has_value()) << run.output;
  EXPECT_TRUE(WaitUntil([&] { return server.bytes_in() == 5000u * 64; }, Deadline::In(absl::Seconds(10))));
}

TEST(LoadgenBinaryTest, TextReportByDefault) {
  EchoServer server;
  const test::LoadgenRun run =
      RunLoadgen({absl::StrCat("--server=127.0.0.1:", server.port()), "--requests=100", "--connections=2"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("requests  100 "), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("p99.9"), std::string::npos) << run.output;
}

TEST(LoadgenBinaryTest, BadFlagsExitTwo) {
  EXPECT_EQ(RunLoadgen({"--server=127.0.0.1:1", "--protocol=gopher"}).exit_code, 2);
  EXPECT_EQ(RunLoadgen({"--server=nonsense"}).exit_code, 2);
}

// Echoes every byte but the 10th of each 64-byte message, which it flips.
std::string CorruptingEcho(std::string& in) {
  std::string out;
  while (in.size() >= 64) {
    std::string message = in.substr(0, 64);
    message[9] ^= 1;
    out += message;
    in.erase(0, 64);
  }
  return out;
}

TEST(LoadgenErrorTest, EveryWrongReplyIsAnError) {
  FakeServer fake(CorruptingEcho);
  LoadOptions o = EchoLoad(fake.port());
  o.workload.message_size = 64;
  o.connections = 1;
  o.threads = 1;
  o.depth = 1;
  o.requests = 10;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 10u);
  EXPECT_EQ(r.requests(), 0u);
  EXPECT_EQ(r.latency_ns.count, 0u);  // a wrong reply is not a data point
  ASSERT_FALSE(r.error_samples.empty());
  EXPECT_NE(r.error_samples[0].find("echo reply differs"), std::string::npos) << r.error_samples[0];
}

TEST(LoadgenErrorTest, RequestsBehindAWrongReplyAreLost) {
  FakeServer fake(CorruptingEcho);
  LoadOptions o = EchoLoad(fake.port());
  o.workload.message_size = 64;
  o.connections = 1;
  o.threads = 1;
  o.depth = 4;
  o.requests = 40;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 40u);  // wrong, or lost with the dropped connection
  EXPECT_EQ(r.requests(), 0u);
}

TEST(LoadgenErrorTest, BinaryReportsTheErrorAndExitsOne) {
  FakeServer fake(CorruptingEcho);
  const test::LoadgenRun run = RunLoadgen({absl::StrCat("--server=127.0.0.1:", fake.port()), "--requests=5",
                                           "--connections=1", "--message_size=64", "--json"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.output, "errors"), 5) << run.output;
  EXPECT_EQ(JsonNumber(run.output, "requests"), 0);
  EXPECT_NE(run.output.find("echo reply differs"), std::string::npos) << run.output;
}

TEST(LoadgenErrorTest, MissingRepliesTimeOutAsErrors) {
  FakeServer fake([](std::string& in) {  // reads everything, answers nothing
    in.clear();
    return std::string();
  });
  LoadOptions o = EchoLoad(fake.port());
  o.connections = 2;
  o.threads = 1;
  o.depth = 3;
  o.requests = 100;
  o.timeout_ns = 100'000'000;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 6u);  // the 3 outstanding on each connection
  EXPECT_EQ(r.requests(), 0u);
}

TEST(LoadgenErrorTest, ExtraBytesAreAnError) {
  FakeServer fake([](std::string& in) {
    std::string out = CorruptingEcho(in);
    for (size_t i = 0; i < out.size(); i += 64) out[i + 9] ^= 1;  // undo: right replies...
    return out + "!";                                               // ...plus one byte nobody asked for
  });
  LoadOptions o = EchoLoad(fake.port());
  o.workload.message_size = 64;
  o.connections = 1;
  o.threads = 1;
  o.depth = 1;
  o.requests = 3;
  const Report r = *RunLoad(o);
  EXPECT_GE(r.errors, 1u);
  EXPECT_LE(r.requests(), 3u);
}

TEST(LoadgenErrorTest, AServerThatClosesEveryConnectionGivesErrors) {
  FakeServer fake([](std::string&) { return std::string(); }, /*close_on_accept=*/true);
  LoadOptions o = EchoLoad(fake.port());
  o.connections = 2;
  o.threads = 1;
  o.depth = 1;
  o.requests = 20;
  const Report r = *RunLoad(o);
  EXPECT_GT(r.errors, 0u);
  EXPECT_EQ(r.requests(), 0u);
}

}  // namespace
}  // namespace percore
