// percored's TLS endpoints end to end: the flags (a +tls endpoint without a certificate, an
// unknown endpoint option, files that do not load: each a start-up error that says so), the
// start-up line, and SIGHUP: a good file is taken for new connections, a bad one refused with the
// old certificate kept, and the daemon serves throughout.

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/services/admin/subprocess.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"
#include "tests/testing/test_certs.h"
#include "tests/testing/tls_client.h"

namespace percore {
namespace {

using testing::RunCommand;
using testing::RunResult;
using testing::Subprocess;

std::string Percored() { return absl::StrCat(std::getenv("TEST_SRCDIR"), "/percore/tools/percored"); }

const test::TestCertificates& Certs() {
  static const test::TestCertificates* certs = [] {
    auto made = test::MakeTestCertificates(absl::StrCat(std::getenv("TEST_TMPDIR"), "/daemon_certs"));
    if (!made.ok()) std::abort();
    return new test::TestCertificates(*made);
  }();
  return *certs;
}

void CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from);
  std::ofstream(to) << in.rdbuf();
}

RunResult Start(std::vector<std::string> flags) {
  std::vector<std::string> argv = {Percored(), "--admin_listen=", "--loops=1"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return RunCommand(argv);
}

TEST(TlsDaemonTest, StartUpErrorsSayWhatIsWrong) {
  RunResult r = Start({"--listen=http+tls=127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "http+tls=127.0.0.1:0 needs --tls_cert and --tls_key")) << r.err;

  r = Start({"--listen=http+tsl=127.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "unknown endpoint option '+tsl'")) << r.err;

  r = Start({"--listen=http+tls=127.0.0.1:0", "--tls_cert=" + Certs().expired_cert_file, "--tls_key=" + Certs().key_file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "expired on")) << r.err;

  r = Start({"--listen=http+tls=127.0.0.1:0", "--tls_cert=" + Certs().cert_file, "--tls_key=" + Certs().other_key_file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "does not match")) << r.err;

  r = Start({"--listen=http+tls=127.0.0.1:0", "--tls_cert=/nonexistent.pem", "--tls_key=" + Certs().key_file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "/nonexistent.pem: No such file")) << r.err;
}

class RunningDaemon {
 public:
  explicit RunningDaemon(const std::string& cert) {
    daemon_ = std::make_unique<Subprocess>(std::vector<std::string>{
        Percored(), "--admin_listen=", "--loops=2", "--listen=echo=127.0.0.1:0,echo+tls=127.0.0.1:0",
        "--tls_cert=" + cert, "--tls_key=" + Certs().key_file, "--drain_timeout=1s"});
    const std::string line = daemon_->WaitForLine("(tls)");
    // "percored: echo listening on 127.0.0.1:PORT (tls)"
    const size_t colon = line.rfind(':');
    const size_t space = line.find(' ', colon);
    if (colon != std::string::npos && space != std::string::npos) {
      int port = 0;
      if (absl::SimpleAtoi(line.substr(colon + 1, space - colon - 1), &port)) port_ = static_cast<uint16_t>(port);
    }
  }
  ~RunningDaemon() {
    daemon_->Signal(SIGTERM);
    daemon_->Wait();
  }
  uint16_t port() const { return port_; }
  Subprocess& process() { return *daemon_; }

  // The common name of the certificate a new connection gets; "" if the handshake fails.
  std::string ServedName() {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port_, test::Deadline::In(absl::Seconds(5)));
    if (!fd.ok()) return "";
    test::TlsClient client(std::move(*fd), Certs().ca_file);
    if (!client.Handshake()) return "";
    X509* cert = SSL_get1_peer_certificate(client.ssl());
    if (cert == nullptr) return "";
    char name[256] = "";
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof(name));
    X509_free(cert);
    if (!client.Write("ping") || client.Read(4) != "ping") return "(no echo)";
    return name;
  }

 private:
  std::unique_ptr<Subprocess> daemon_;
  uint16_t port_ = 0;
};

TEST(TlsDaemonTest, SighupReloadsTheCertificateAndRefusesABadOne) {
  const std::string cert = Certs().dir + "/served.pem";
  CopyFile(Certs().cert_file, cert);
  RunningDaemon daemon(cert);
  ASSERT_NE(daemon.port(), 0) << daemon.process().stdout_text() << daemon.process().stderr_text();
  EXPECT_EQ(daemon.ServedName(), "localhost");

  CopyFile(Certs().second_cert_file, cert);
  daemon.process().Signal(SIGHUP);
  EXPECT_FALSE(daemon.process().WaitForLine("percored: SIGHUP: certificates reloaded").empty())
      << daemon.process().stdout_text();
  EXPECT_EQ(daemon.ServedName(), "percore-reloaded");

  CopyFile(Certs().expired_cert_file, cert);
  daemon.process().Signal(SIGHUP);
  const std::string refused = daemon.process().WaitForLine("percored: SIGHUP: certificates not reloaded");
  EXPECT_TRUE(absl::StrContains(refused, "expired")) << daemon.process().stdout_text();
  EXPECT_EQ(daemon.ServedName(), "percore-reloaded");
}

}  // namespace
}  // namespace percore
