// loadgen against percore's own HTTP, memcache and RESP services in this process: every reply
// passes its checks, and the requests it reports are the requests the service counted.

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/http/http_service.h"
#include "services/memcache/memcache_service.h"
#include "services/resp/resp_service.h"
#include "tests/testing/deadline.h"
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
using test::JsonNumber;
using test::RunLoadgen;
using test::RunningServer;
using test::WaitUntil;

LoadOptions Load(uint16_t port, Protocol protocol) {
  LoadOptions o;
  o.server = HostPort{"127.0.0.1", port};
  o.workload.protocol = protocol;
  o.connections = 8;
  o.threads = 2;
  o.depth = 4;
  o.requests = 2000;
  o.timeout_ns = 20'000'000'000;
  o.workload.keys = 500;
  o.workload.key_size = 32;
  o.workload.value_size = 100;
  return o;
}

std::string FirstError(const Report& r) { return r.error_samples.empty() ? "" : r.error_samples[0]; }

// The service counted exactly `n` requests (it counts a request when its reply is queued, so
// once every reply has arrived the count is final).
void ExpectServerCounted(RunningServer& server, uint64_t n) {
  EXPECT_TRUE(WaitUntil([&] { return server.requests() == n; }, Deadline::In(absl::Seconds(10))))
      << "server counted " << server.requests() << ", expected " << n;
}

// --- http ---

TEST(LoadgenHttpTest, PlaintextKeepAlive) {
  RunningServer server(NewHttpService());
  const Report r = *RunLoad(Load(server.port(), Protocol::kHttp));
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.requests(), 2000u);
  EXPECT_EQ(r.reissued, 0u);
  ExpectServerCounted(server, 2000);
  EXPECT_EQ(server.request_errors(), 0u);
  EXPECT_EQ(server.handed_in(), 8u);
}

TEST(LoadgenHttpTest, PipelinedDepth16) {
  RunningServer server(NewHttpService());
  LoadOptions o = Load(server.port(), Protocol::kHttp);
  o.depth = 16;
  o.requests = 4000;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.requests(), 4000u);
  ExpectServerCounted(server, 4000);
}

TEST(LoadgenHttpTest, ConnectionPerRequest) {
  RunningServer server(NewHttpService());
  LoadOptions o = Load(server.port(), Protocol::kHttp);
  o.connect_per_request = true;
  o.depth = 1;
  o.requests = 200;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.connects, 200u);
  ExpectServerCounted(server, 200);
  EXPECT_EQ(server.handed_in(), 200u);
}

TEST(LoadgenHttpTest, JsonRoute) {
  RunningServer server(NewHttpService());
  LoadOptions o = Load(server.port(), Protocol::kHttp);
  o.workload.path = "/json";
  o.workload.expect_body = "{\"message\":\"Hello, World!\"}";
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.requests(), 2000u);
}

TEST(LoadgenHttpTest, AnUnexpectedStatusIsAnErrorForEveryRequest) {
  RunningServer server(NewHttpService());
  LoadOptions o = Load(server.port(), Protocol::kHttp);
  o.workload.path = "/no-such-page";
  o.depth = 1;
  o.requests = 50;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 50u);
  EXPECT_EQ(r.requests(), 0u);
  EXPECT_NE(FirstError(r).find("status 404"), std::string::npos) << FirstError(r);
  // And when 404 is what is asked for, the same replies are right.
  o.workload.expect_status = 404;
  o.workload.check_body = false;
  const Report r404 = *RunLoad(o);
  EXPECT_EQ(r404.errors, 0u) << FirstError(r404);
  EXPECT_EQ(r404.requests(), 50u);
}

TEST(LoadgenHttpTest, BinaryExitsZeroAndReportsJson) {
  RunningServer server(NewHttpService());
  const test::LoadgenRun run =
      RunLoadgen({absl::StrCat("--server=127.0.0.1:", server.port()), "--protocol=http", "--connections=4",
                  "--depth=2", "--requests=1000", "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(JsonNumber(run.output, "requests"), 1000);
  ExpectServerCounted(server, 1000);
}

// --- memcache ---

TEST(LoadgenMemcacheTest, PreloadedMixChecksEveryValue) {
  RunningServer server(NewMemcacheService());
  LoadOptions o = Load(server.port(), Protocol::kMemcache);
  o.preload = true;
  o.workload.get_ratio = 0.9;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.preloaded, 500u);
  EXPECT_EQ(r.requests(), 2000u);
  EXPECT_EQ(r.misses, 0u);  // a miss after the preload would have been an error
  ExpectServerCounted(server, 2500);
}

TEST(LoadgenMemcacheTest, WithoutPreloadGetsMissUntilSet) {
  RunningServer server(NewMemcacheService());
  LoadOptions o = Load(server.port(), Protocol::kMemcache);
  o.workload.get_ratio = 1.0;
  o.requests = 300;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.misses, 300u);
  EXPECT_EQ(r.ok, 0u);
  ExpectServerCounted(server, 300);
}

TEST(LoadgenMemcacheTest, PipelinedSets) {
  RunningServer server(NewMemcacheService());
  LoadOptions o = Load(server.port(), Protocol::kMemcache);
  o.workload.get_ratio = 0;
  o.depth = 16;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.ok, 2000u);
  ExpectServerCounted(server, 2000);
}

// --- resp ---

TEST(LoadgenRespTest, PreloadedGets) {
  RunningServer server(NewRespService());
  LoadOptions o = Load(server.port(), Protocol::kResp);
  o.preload = true;
  o.workload.get_ratio = 1.0;
  o.depth = 16;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.ok, 2000u);
  EXPECT_EQ(r.misses, 0u);
  ExpectServerCounted(server, 2500);
}

TEST(LoadgenRespTest, MixWithMisses) {
  RunningServer server(NewRespService());
  LoadOptions o = Load(server.port(), Protocol::kResp);
  o.workload.get_ratio = 0.5;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.requests(), 2000u);
  EXPECT_GT(r.misses, 0u);
  ExpectServerCounted(server, 2000);
}

TEST(LoadgenRespTest, Ping) {
  RunningServer server(NewRespService());
  LoadOptions o = Load(server.port(), Protocol::kResp);
  o.workload.ping = true;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 0u) << FirstError(r);
  EXPECT_EQ(r.ok, 2000u);
  ExpectServerCounted(server, 2000);
}

TEST(LoadgenRespTest, ProtocolMismatchIsAnError) {
  // memcache requests to a RESP server: inline commands it does not know.
  RunningServer server(NewRespService());
  LoadOptions o = Load(server.port(), Protocol::kMemcache);
  o.connections = 1;
  o.threads = 1;
  o.depth = 1;
  o.requests = 5;
  const Report r = *RunLoad(o);
  EXPECT_EQ(r.errors, 5u);
  EXPECT_EQ(r.requests(), 0u);
}

}  // namespace
}  // namespace percore
