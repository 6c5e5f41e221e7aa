// TLS endpoints against real clients: percored's built-in services (the service catalog: http
// with ALPN http/1.1, resp, echo, memcache) on TLS endpoints of an in-process server with two
// loops on the default back end, driven by curl, openssl s_client, redis-cli and wrk. Both
// versions, ALPN, keep-alive, a large upload, resumption from a ticket, sustained load; the
// clients a TLS endpoint refuses (TLS 1.1 only, plaintext, a renegotiation), each counted and
// with the server still serving afterwards; and a certificate reload that new connections see
// while one opened before it goes on, and a reload of an expired certificate that is refused.
//
// Each test is skipped when a tool it drives is not installed (tools/setup.sh installs them
// all); every command runs under `timeout 20`.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "reactor/server.h"
#include "tests/testing/deadline.h"
#include "tests/testing/test_backend.h"
#include "tests/testing/shell.h"
#include "tests/testing/test_certs.h"
#include "tools/service_catalog.h"

extern char** environ;

namespace percore {
namespace {

using test::Deadline;
using test::WaitUntil;

Deadline Soon() { return Deadline::In(absl::Seconds(20)); }

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

const test::TestCertificates& Certs() {
  static const test::TestCertificates* certs = [] {
    auto made = test::MakeTestCertificates(TempPath("tls_interop_certs"));
    if (!made.ok()) {
      std::fprintf(stderr, "test certificates: %s\n", std::string(made.status().message()).c_str());
      std::abort();
    }
    return new test::TestCertificates(*made);
  }();
  return *certs;
}

using test::HaveTool;

#define REQUIRE_TOOL(name)                                              \
  do {                                                                  \
    if (!HaveTool(name)) GTEST_SKIP() << name << " is not installed";   \
  } while (0)

// Runs `command` through the shell with `timeout 20` in front and `input` (written to a file)
// as its standard input; returns its standard output (and standard error, which the command is
// run with merged into it) and sets `exit_code`.
std::string RunTool(const std::string& command, const std::string& input, int* exit_code) {
  static int inputs = 0;
  const std::string input_file = TempPath("input" + std::to_string(++inputs));
  {
    std::ofstream file(input_file, std::ios::binary);
    file << input;
  }
  return test::RunShell("timeout 20 " + command + " < " + input_file + " 2>&1", exit_code);
}
std::string RunTool(const std::string& command, int* exit_code) { return RunTool(command, "", exit_code); }

// A command (`timeout 20` in front) the test talks to while it runs: its standard input is a
// pipe the test writes, its standard output and error one pipe the test reads. Killed and
// reaped on destruction if it has not exited by then.
class Child {
 public:
  explicit Child(const std::string& command) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0) return;
    if (::pipe2(out, O_CLOEXEC) != 0) {
      ::close(in[0]);
      ::close(in[1]);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, out[1], 2);
    const std::string line = "exec timeout 20 " + command;
    const char* argv[] = {"sh", "-c", line.c_str(), nullptr};
    if (::posix_spawn(&pid_, "/bin/sh", &actions, nullptr, const_cast<char**>(argv), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    ::fcntl(stdout_, F_SETFL, ::fcntl(stdout_, F_GETFL) | O_NONBLOCK);
  }
  ~Child() {
    CloseStdin();
    if (pid_ > 0 && !exit_code_.has_value()) {
      ::kill(pid_, SIGTERM);  // timeout passes it on to the command
      if (!WaitForExit(Deadline::In(absl::Seconds(5))).has_value()) {
        ::kill(pid_, SIGKILL);
        int status;
        ::waitpid(pid_, &status, 0);
      }
    }
    if (stdout_ >= 0) ::close(stdout_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  bool started() const { return pid_ > 0; }
  bool Write(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(stdin_, bytes.data(), bytes.size());
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // End of input: s_client (without -ign_eof) sends close_notify and exits.
  void CloseStdin() {
    if (stdin_ >= 0) ::close(stdin_);
    stdin_ = -1;
  }
  // Reads until what the command printed contains `text` (true) or the deadline passes or the
  // output ends (false).
  bool WaitForOutput(std::string_view text, Deadline deadline) {
    for (;;) {
      if (output_.find(text) != std::string::npos) return true;
      if (!ReadSome(deadline)) return output_.find(text) != std::string::npos;
    }
  }
  // Reads to the end of the output, then reaps the command: its exit code, or nothing if the
  // deadline passed first (or it ended by a signal: -1).
  std::optional<int> WaitForExit(Deadline deadline) {
    while (ReadSome(deadline)) {
    }
    if (exit_code_.has_value()) return exit_code_;
    if (pid_ <= 0) return std::nullopt;
    int status = 0;
    const bool reaped = WaitUntil([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, deadline);
    if (!reaped) return std::nullopt;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return exit_code_;
  }
  const std::string& output() const { return output_; }

 private:
  // One read of what is there, waiting for it until the deadline; false at the end of the
  // output or when the deadline has passed.
  bool ReadSome(Deadline deadline) {
    if (stdout_ < 0 || eof_) return false;
    char chunk[16384];
    for (;;) {
      const ssize_t n = ::read(stdout_, chunk, sizeof(chunk));
      if (n > 0) {
        output_.append(chunk, static_cast<size_t>(n));
        return true;
      }
      if (n == 0) {
        eof_ = true;
        return false;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) {
        eof_ = true;
        return false;
      }
      if (deadline.expired()) return false;
      pollfd p{stdout_, POLLIN, 0};
      ::poll(&p, 1, deadline.PollTimeoutMs(100));
    }
  }

  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  bool eof_ = false;
  std::optional<int> exit_code_;
  std::string output_;
};

// The first line of `output` that starts with `prefix`, without its end of line; empty if none.
std::string LineStartingWith(const std::string& output, std::string_view prefix) {
  size_t at = 0;
  while (at < output.size()) {
    size_t end = output.find('\n', at);
    if (end == std::string::npos) end = output.size();
    std::string_view line(output.data() + at, end - at);
    if (line.starts_with(prefix)) return std::string(line);
    at = end + 1;
  }
  return "";
}

size_t Count(const std::string& haystack, std::string_view needle) {
  size_t count = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++count;
  return count;
}

// Where the catalog's services listen, all on TLS: percored's
// --listen=http+tls=127.0.0.1:0,resp+tls=...,echo+tls=...,memcache+tls=...
constexpr char kListen[] =
    "http+tls=127.0.0.1:0,resp+tls=127.0.0.1:0,echo+tls=127.0.0.1:0,memcache+tls=127.0.0.1:0";

class TlsInteropTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // A connection a failing test left stuck holds the drain no longer than this.
    if (server_) server_->Stop(absl::Seconds(2));
  }

  // Serves the catalog's services on TLS endpoints with `cert_file` and `key_file`, as percored
  // does with --tls_cert / --tls_key (ALPN http/1.1 on http).
  void StartServer(const std::string& cert_file = Certs().cert_file, const std::string& key_file = Certs().key_file) {
    ServerOptions options;
    options.loops = 2;
    options.backend = test::TestBackend();  // auto (the daemon's default) unless PERCORE_TEST_BACKEND
    server_ = std::make_unique<Server>(options);
    absl::StatusOr<std::vector<Endpoint>> endpoints = ParseListen(kListen);
    ASSERT_TRUE(endpoints.ok()) << endpoints.status();
    ASSERT_TRUE(AddServices(*server_, *endpoints).ok());
    for (const Endpoint& e : *endpoints) {
      ASSERT_TRUE(e.tls) << e.service;
      EndpointOptions endpoint;
      TlsOptions tls;
      tls.cert_file = cert_file;
      tls.key_file = key_file;
      if (e.service == "http") tls.alpn = {"http/1.1"};
      endpoint.tls = tls;
      absl::StatusOr<ListenerInfo> listener = server_->Listen(e.service, e.address, endpoint);
      ASSERT_TRUE(listener.ok()) << e.service << ": " << listener.status();
      ASSERT_TRUE(listener->tls);
      ports_[e.service] = listener->bound.port();
      listener_index_[e.service] = server_->listeners().size() - 1;
    }
    ASSERT_TRUE(server_->Start().ok());
  }

  std::string Port(const std::string& service) { return std::to_string(ports_.at(service)); }
  uint64_t Closed(CloseReason reason) const { return server_->Totals().closed_by(reason); }
  // One of a TLS endpoint's per-loop figures, summed over the loops.
  uint64_t TlsFigure(const std::string& service, Counter TlsLoopStats::*figure) const {
    const TlsEndpoint* endpoint = server_->listener_tls(listener_index_.at(service));
    uint64_t sum = 0;
    for (int i = 0; i < server_->loop_count(); ++i) {
      sum += (server_->loop(i).stats().tls[endpoint->index()].get()->*figure).Get();
    }
    return sum;
  }

  std::string Curl(const std::string& args, int* exit_code) {
    const std::string port = Port("http");
    return RunTool("curl -sS --max-time 10 --cacert " + Certs().ca_file + " --resolve localhost:" + port +
                       ":127.0.0.1 " + args,
                   exit_code);
  }
  std::string HttpsUrl(const std::string& path) { return "https://localhost:" + Port("http") + path; }
  // s_client's arguments for `service`'s endpoint, trusting the test CA, with SNI localhost.
  std::string SClient(const std::string& service, const std::string& extra) {
    return "openssl s_client -connect 127.0.0.1:" + Port(service) + " -servername localhost -CAfile " +
           Certs().ca_file + " " + extra;
  }
  std::string RedisCli(const std::string& args, const std::string& input, int* exit_code) {
    return RunTool("redis-cli --tls --cacert " + Certs().ca_file + " -h 127.0.0.1 -p " + Port("resp") +
                       " --sni localhost " + args,
                   input, exit_code);
  }
  std::string RedisCli(const std::string& args, int* exit_code) { return RedisCli(args, "", exit_code); }

  // An s_client conversation with the echo service: `line` comes back; then end of input
  // closes it (close_notify) and s_client exits 0. Returns what s_client printed.
  std::string EchoOverSClient(const std::string& extra, const std::string& line) {
    Child client(SClient("echo", extra));
    EXPECT_TRUE(client.started());
    EXPECT_TRUE(client.Write(line));
    EXPECT_TRUE(client.WaitForOutput(line, Soon())) << client.output();
    client.CloseStdin();
    EXPECT_EQ(client.WaitForExit(Soon()), 0) << client.output();
    return client.output();
  }

  // The echo service still answers a new TLS connection.
  void ExpectEchoStillServes(const std::string& what) {
    SCOPED_TRACE(what);
    const std::string out = EchoOverSClient("-tls1_3", "still serving\n");
    EXPECT_NE(out.find("Verify return code: 0 (ok)"), std::string::npos) << out;
  }

  std::unique_ptr<Server> server_;
  std::map<std::string, uint16_t> ports_;
  std::map<std::string, size_t> listener_index_;
};

// --- curl ------------------------------------------------------------------------------------

TEST_F(TlsInteropTest, CurlGetsPlaintextWithAlpnHttp11OverBothVersions) {
  REQUIRE_TOOL("curl");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  int code;
  std::string out = Curl("-v " + HttpsUrl("/plaintext"), &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("* ALPN: offers h2,http/1.1"), std::string::npos) << out;
  EXPECT_NE(out.find("* ALPN: server accepted http/1.1"), std::string::npos) << out;
  EXPECT_NE(out.find("* SSL connection using TLSv1.3"), std::string::npos) << out;
  EXPECT_NE(out.find("*  SSL certificate verify ok."), std::string::npos) << out;
  EXPECT_NE(out.find("< HTTP/1.1 200 OK"), std::string::npos) << out;
  EXPECT_NE(out.find("\nHello, World!"), std::string::npos) << out;  // the body (on stdout, among stderr)

  out = Curl("-v --tlsv1.2 --tls-max 1.2 " + HttpsUrl("/json"), &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("* SSL connection using TLSv1.2"), std::string::npos) << out;
  EXPECT_NE(out.find("* ALPN: server accepted http/1.1"), std::string::npos) << out;
  EXPECT_NE(out.find("{\"message\":\"Hello, World!\"}"), std::string::npos) << out;

  // Without the CA the chain does not verify: the server's certificate is not taken on trust.
  out = RunTool("curl -sS --max-time 10 --resolve localhost:" + Port("http") + ":127.0.0.1 " +
                    HttpsUrl("/plaintext"),
                &code);
  EXPECT_EQ(code, 60) << out;  // CURLE_PEER_FAILED_VERIFICATION
  EXPECT_GE(TlsFigure("http", &TlsLoopStats::tls13), 1u);
  EXPECT_GE(TlsFigure("http", &TlsLoopStats::tls12), 1u);
}

TEST_F(TlsInteropTest, CurlKeepsOneConnectionForSeveralRequestsAndALargeUpload) {
  REQUIRE_TOOL("curl");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  int code;
  std::string out = Curl("-o /dev/null -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\\n' " +
                             HttpsUrl("/plaintext") + " " + HttpsUrl("/json") + " " + HttpsUrl("/"),
                         &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "200 1\n200 0\n200 0\n");  // one handshake, then the same connection

  // The built-in routes take no POST: 300 KB of body goes up through the TLS session, is read
  // to its end and answered 405, and the connection serves the next request.
  const std::string upload = TempPath("upload.bin");
  {
    std::ofstream file(upload, std::ios::binary);
    for (int i = 0; i < 300 * 1024; ++i) file.put(static_cast<char>('a' + i % 26));
  }
  const std::string port = Port("http");
  const std::string again = " --next --cacert " + Certs().ca_file + " --resolve localhost:" + port + ":127.0.0.1 ";
  out = Curl("-o /dev/null -w '%{http_code} %{num_connects} %{size_upload}\\n' --data-binary @" + upload + " " +
                 HttpsUrl("/plaintext") + again + "-w ' %{http_code} %{num_connects}\\n' " + HttpsUrl("/plaintext"),
             &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "405 1 307200\nHello, World! 200 0\n");
  EXPECT_EQ(Closed(CloseReason::kProtocolError), 0u);
  EXPECT_EQ(Closed(CloseReason::kTlsError), 0u);
}

// --- openssl s_client ------------------------------------------------------------------------

TEST_F(TlsInteropTest, SClientVerifiesNegotiatesAndResumesBothVersions) {
  REQUIRE_TOOL("openssl");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  for (const std::string version : {"TLSv1.3", "TLSv1.2"}) {
    SCOPED_TRACE(version);
    const std::string flag = version == "TLSv1.3" ? "-tls1_3" : "-tls1_2";
    const std::string session = TempPath("session" + flag);
    std::string out = EchoOverSClient(flag + " -sess_out " + session, "first over " + version + "\n");
    EXPECT_NE(out.find("Verify return code: 0 (ok)"), std::string::npos) << out;
    EXPECT_NE(out.find("\nNew, " + version + ", Cipher is "), std::string::npos) << out;
    EXPECT_NE(out.find("    Protocol  : " + version + "\n"), std::string::npos) << out;
    EXPECT_NE(LineStartingWith(out, "subject=").find("CN = localhost"), std::string::npos) << out;
    // The chain: the leaf, then the intermediate the CA file does not hold.
    EXPECT_NE(out.find(" 1 s:"), std::string::npos) << out;
    EXPECT_NE(out.find("No ALPN negotiated"), std::string::npos) << out;  // echo has no ALPN list
    ASSERT_TRUE(std::filesystem::exists(session));

    out = EchoOverSClient(flag + " -sess_in " + session, "resumed over " + version + "\n");
    EXPECT_NE(out.find("\nReused, " + version + ", Cipher is "), std::string::npos) << out;
    EXPECT_NE(out.find("Verify return code: 0 (ok)"), std::string::npos) << out;
  }
  EXPECT_EQ(TlsFigure("echo", &TlsLoopStats::handshakes), 4u);
  EXPECT_EQ(TlsFigure("echo", &TlsLoopStats::resumptions), 2u);
  EXPECT_EQ(TlsFigure("echo", &TlsLoopStats::tls13), 2u);
  EXPECT_EQ(TlsFigure("echo", &TlsLoopStats::tls12), 2u);
  // Every conversation ended with close_notify from the client.
  EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kPeerClosed) == 4; }, Soon()));
}

TEST_F(TlsInteropTest, SClientSpeaksHttpWithAlpnAndMemcache) {
  REQUIRE_TOOL("openssl");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  for (const std::string flag : {"-tls1_3", "-tls1_2"}) {
    SCOPED_TRACE(flag);
    int code;
    const std::string out = RunTool(SClient("http", flag + " -alpn http/1.1 -ign_eof"),
                                    "GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", &code);
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(out.find("ALPN protocol: http/1.1"), std::string::npos) << out;
    EXPECT_NE(out.find("Verify return code: 0 (ok)"), std::string::npos) << out;
    EXPECT_NE(out.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << out;
    EXPECT_NE(out.find("\r\n\r\nHello, World!"), std::string::npos) << out;
  }
  // memcache's text protocol through s_client; "quit" ends the conversation from the server.
  int code;
  const std::string out =
      RunTool(SClient("memcache", "-quiet -ign_eof"), "set k 0 0 5\r\nhello\r\nget k\r\nquit\r\n", &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("STORED\r\nVALUE k 0 5\r\nhello\r\nEND\r\n"), std::string::npos) << out;
}

// Values of 16 KB and more go out from the store itself (shared pieces of the output queue), not
// copied: through the TLS session as well, on one connection, either side of that size.
TEST_F(TlsInteropTest, SClientGetsLargeMemcacheValues) {
  REQUIRE_TOOL("openssl");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Child client(SClient("memcache", "-quiet"));  // -quiet: no commands, end of input ignored
  ASSERT_TRUE(client.started());
  std::string expected;
  for (const size_t size : {size_t{1000}, size_t{16000}, size_t{17000}, size_t{100000}}) {
    SCOPED_TRACE(size);
    std::string value;
    for (size_t i = 0; i < size; ++i) value.push_back(static_cast<char>('a' + i % 26));
    const std::string key = "v" + std::to_string(size);
    ASSERT_TRUE(client.Write("set " + key + " 0 0 " + std::to_string(size) + "\r\n" + value + "\r\n"));
    expected += "STORED\r\n";
    ASSERT_TRUE(client.WaitForOutput(expected, Soon())) << client.output().size();
    ASSERT_TRUE(client.Write("get " + key + "\r\n"));
    expected += "VALUE " + key + " 0 " + std::to_string(size) + "\r\n" + value + "\r\nEND\r\n";
    const bool complete = client.WaitForOutput(expected, Deadline::In(absl::Seconds(10)));
    const std::string& out = client.output();
    ASSERT_TRUE(complete) << "got " << out.size() << " of " << expected.size()
                          << " bytes; the end: " << out.substr(out.size() - std::min<size_t>(out.size(), 60));
  }
  ASSERT_TRUE(client.Write("quit\r\n"));
  EXPECT_EQ(client.WaitForExit(Soon()), 0);
  // After the certificate check s_client prints (depth=...), the replies and nothing else.
  EXPECT_TRUE(client.output().ends_with(expected)) << client.output().size() << " bytes";
}

// --- redis-cli -------------------------------------------------------------------------------

TEST_F(TlsInteropTest, RedisCliSetsGetsAndPings) {
  REQUIRE_TOOL("redis-cli");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  int code;
  EXPECT_EQ(RedisCli("PING", &code), "PONG\n");
  EXPECT_EQ(code, 0);
  EXPECT_EQ(RedisCli("SET greeting 'hello over tls'", &code), "OK\n");
  EXPECT_EQ(code, 0);
  EXPECT_EQ(RedisCli("GET greeting", &code), "hello over tls\n");
  EXPECT_EQ(code, 0);
  // A value of 200 KB each way (many TLS records), from stdin with -x.
  std::string value;
  for (int i = 0; i < 200 * 1024; ++i) value.push_back(static_cast<char>('a' + i % 26));
  EXPECT_EQ(RedisCli("-x SET big", value, &code), "OK\n");
  EXPECT_EQ(code, 0);
  const std::string got = RedisCli("GET big", &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(got.size(), value.size() + 1);
  EXPECT_TRUE(got == value + "\n");
  // Several commands on one connection.
  const std::string piped = RedisCli("", "PING\nGET greeting\nDEL greeting\nEXISTS greeting\n", &code);
  EXPECT_EQ(code, 0) << piped;
  EXPECT_EQ(piped, "PONG\nhello over tls\n1\n0\n");
  EXPECT_EQ(Closed(CloseReason::kTlsHandshakeFailed), 0u);
  EXPECT_EQ(Closed(CloseReason::kTlsError), 0u);
}

// --- wrk -------------------------------------------------------------------------------------

TEST_F(TlsInteropTest, WrkKeepAliveOverTls) {
  REQUIRE_TOOL("wrk");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  int code;
  const std::string out =
      RunTool("wrk -t1 -c8 -d1s --timeout 5s https://127.0.0.1:" + Port("http") + "/plaintext", &code);
  EXPECT_EQ(code, 0) << out;
  std::printf("%s", out.c_str());  // wrk's own summary, for the test log
  const size_t marker = out.find(" requests in ");
  ASSERT_NE(marker, std::string::npos) << out;
  size_t digits = marker;
  while (digits > 0 && out[digits - 1] >= '0' && out[digits - 1] <= '9') --digits;
  ASSERT_LT(digits, marker) << out;
  EXPECT_GT(std::stoull(out.substr(digits, marker - digits)), 0u) << out;
  EXPECT_EQ(out.find("Socket errors"), std::string::npos) << out;
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  EXPECT_GE(TlsFigure("http", &TlsLoopStats::handshakes), 8u);
  EXPECT_EQ(Closed(CloseReason::kTlsHandshakeFailed), 0u);
  EXPECT_EQ(Closed(CloseReason::kTlsError), 0u);
  EXPECT_EQ(Closed(CloseReason::kProtocolError), 0u);
}

// --- clients a TLS endpoint refuses ----------------------------------------------------------

TEST_F(TlsInteropTest, OnlyTls11OfferedIsRefusedAndCounted) {
  REQUIRE_TOOL("openssl");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  for (const std::string service : {"echo", "http"}) {
    SCOPED_TRACE(service);
    const uint64_t before = Closed(CloseReason::kTlsHandshakeFailed);
    int code;
    // SECLEVEL=0: the client's own configuration allows TLS 1.1 and its ciphers, so the refusal
    // is the server's.
    const std::string out = RunTool(SClient(service, "-tls1_1 -cipher DEFAULT@SECLEVEL=0"), &code);
    EXPECT_NE(code, 0) << out;
    EXPECT_NE(out.find("New, (NONE), Cipher is (NONE)"), std::string::npos) << out;
    EXPECT_NE(out.find("no peer certificate available"), std::string::npos) << out;
    EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kTlsHandshakeFailed) == before + 1; }, Soon()))
        << Closed(CloseReason::kTlsHandshakeFailed);
  }
  EXPECT_EQ(TlsFigure("echo", &TlsLoopStats::handshake_failures), 1u);
  EXPECT_EQ(TlsFigure("http", &TlsLoopStats::handshake_failures), 1u);
  ExpectEchoStillServes("after TLS 1.1");
}

TEST_F(TlsInteropTest, PlaintextClientsOnTheTlsPortFailAndAreCounted) {
  REQUIRE_TOOL("curl");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  int code;
  std::string out = RunTool("curl -sS --max-time 10 http://127.0.0.1:" + Port("http") + "/plaintext", &code);
  EXPECT_NE(code, 0) << out;
  EXPECT_EQ(out.find("Hello"), std::string::npos) << out;
  EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kTlsHandshakeFailed) == 1; }, Soon()))
      << Closed(CloseReason::kTlsHandshakeFailed);
  if (HaveTool("redis-cli")) {
    out = RunTool("redis-cli -h 127.0.0.1 -p " + Port("resp") + " PING", &code);
    EXPECT_NE(code, 0) << out;
    EXPECT_EQ(out.find("PONG"), std::string::npos) << out;
    EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kTlsHandshakeFailed) == 2; }, Soon()))
        << Closed(CloseReason::kTlsHandshakeFailed);
  }
  // The same endpoint still serves a TLS client.
  out = Curl(HttpsUrl("/plaintext"), &code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_EQ(out, "Hello, World!");
}

TEST_F(TlsInteropTest, RenegotiationIsRefused) {
  REQUIRE_TOOL("openssl");
  ASSERT_NO_FATAL_FAILURE(StartServer());
  Child client(SClient("echo", "-tls1_2"));
  ASSERT_TRUE(client.started());
  ASSERT_TRUE(client.Write("before renegotiation\n"));
  ASSERT_TRUE(client.WaitForOutput("before renegotiation\n", Soon())) << client.output();
  // A line "R" makes s_client ask for a renegotiation (a new ClientHello on the session).
  ASSERT_TRUE(client.Write("R\n"));
  ASSERT_TRUE(client.WaitForOutput("RENEGOTIATING", Soon())) << client.output();
  // The server answers no_renegotiation, which OpenSSL's client takes as fatal: it ends the
  // connection instead of going on with a second handshake.
  const std::optional<int> exit_code = client.WaitForExit(Soon());
  const std::string& out = client.output();
  EXPECT_NE(exit_code, 0) << out;
  EXPECT_NE(out.find("no renegotiation"), std::string::npos) << out;
  // One certificate check (at the first handshake), none from a second handshake.
  EXPECT_EQ(Count(out, "depth=0 "), 1u) << out;
  EXPECT_EQ(TlsFigure("echo", &TlsLoopStats::handshakes), 1u);
  EXPECT_TRUE(WaitUntil([&] { return Closed(CloseReason::kTlsError) == 1; }, Soon()))
      << Closed(CloseReason::kTlsError);
  ExpectEchoStillServes("after the renegotiation attempt");
  EXPECT_EQ(TlsFigure("echo", &TlsLoopStats::handshakes), 2u);
}

// --- certificate reload ----------------------------------------------------------------------

TEST_F(TlsInteropTest, ReloadServesTheNewCertificateToNewConnectionsOnly) {
  REQUIRE_TOOL("openssl");
  // Served from copies, so that the test can replace the certificate under the server.
  const std::string served_cert = TempPath("served_cert.pem");
  const std::string served_key = TempPath("served_key.pem");
  const auto overwrite = std::filesystem::copy_options::overwrite_existing;
  ASSERT_TRUE(std::filesystem::copy_file(Certs().cert_file, served_cert, overwrite));
  ASSERT_TRUE(std::filesystem::copy_file(Certs().key_file, served_key, overwrite));
  ASSERT_NO_FATAL_FAILURE(StartServer(served_cert, served_key));

  // Opened before the reload, and kept open through it; with a ticket for later.
  const std::string session = TempPath("session_before_reload");
  Child before(SClient("echo", "-tls1_3 -sess_out " + session));
  ASSERT_TRUE(before.started());
  ASSERT_TRUE(before.Write("before the reload\n"));
  ASSERT_TRUE(before.WaitForOutput("before the reload\n", Soon())) << before.output();
  EXPECT_NE(LineStartingWith(before.output(), "subject=").find("CN = localhost"), std::string::npos)
      << before.output();

  ASSERT_TRUE(std::filesystem::copy_file(Certs().second_cert_file, served_cert, overwrite));
  const absl::Status reloaded = server_->ReloadCertificates();
  ASSERT_TRUE(reloaded.ok()) << reloaded;
  for (const char* service : {"echo", "http", "resp", "memcache"}) {
    EXPECT_EQ(server_->listener_tls(listener_index_.at(service))->reloads(), 1u) << service;
  }

  // A new connection gets the new certificate, which verifies.
  for (const std::string service : {"echo", "http"}) {
    SCOPED_TRACE(service);
    int code;
    const std::string out = RunTool(SClient(service, "-tls1_2"), &code);
    EXPECT_NE(LineStartingWith(out, "subject=").find("CN = percore-reloaded"), std::string::npos) << out;
    EXPECT_NE(out.find("Verify return code: 0 (ok)"), std::string::npos) << out;
  }
  std::string out = EchoOverSClient("-tls1_3", "after the reload\n");
  EXPECT_NE(LineStartingWith(out, "subject=").find("CN = percore-reloaded"), std::string::npos) << out;

  // The connection from before goes on with its session.
  ASSERT_TRUE(before.Write("still the old connection\n"));
  EXPECT_TRUE(before.WaitForOutput("still the old connection\n", Soon())) << before.output();
  before.CloseStdin();
  EXPECT_EQ(before.WaitForExit(Soon()), 0) << before.output();
  // Its ticket still resumes: the ticket keys carry over the reload.
  ASSERT_TRUE(std::filesystem::exists(session));
  out = EchoOverSClient("-tls1_3 -sess_in " + session, "resumed after the reload\n");
  EXPECT_NE(out.find("\nReused, TLSv1.3, "), std::string::npos) << out;

  // An expired certificate is refused by the reload, naming why; the one in use stays.
  ASSERT_TRUE(std::filesystem::copy_file(Certs().expired_cert_file, served_cert, overwrite));
  const absl::Status refused = server_->ReloadCertificates();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("expired"), std::string_view::npos) << refused;
  EXPECT_EQ(server_->listener_tls(listener_index_.at("echo"))->reloads(), 1u);
  out = EchoOverSClient("-tls1_2", "after the refused reload\n");
  EXPECT_NE(LineStartingWith(out, "subject=").find("CN = percore-reloaded"), std::string::npos) << out;
  EXPECT_NE(out.find("Verify return code: 0 (ok)"), std::string::npos) << out;
  if (HaveTool("curl")) {
    int code;
    out = Curl("-v " + HttpsUrl("/plaintext"), &code);
    EXPECT_EQ(code, 0) << out;
    EXPECT_NE(LineStartingWith(out, "*  subject: ").find("CN=percore-reloaded"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace percore
