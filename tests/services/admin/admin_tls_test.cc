// A TLS endpoint through the admin: its handshake figures in GetStats and Prometheus, each
// connection's negotiated version in ListConnections, the endpoint in GetConfig, and
// ReloadCertificates (a new certificate for new connections, a bad file refused with the old one
// kept, refused outright in read-only mode).

#include <openssl/ssl.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "reactor/close_reason.h"
#include "services/admin/prometheus.h"
#include "tests/services/admin/admin_fixture.h"
#include "tests/testing/test_certs.h"
#include "tests/testing/tls_client.h"

namespace percore::testing {
namespace {

using grpc::StatusCode;

const test::TestCertificates& Certs() {
  static const test::TestCertificates* certs = [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    auto made = test::MakeTestCertificates(std::string(tmp != nullptr ? tmp : "/tmp") + "/admin_tls_certs");
    if (!made.ok()) std::abort();
    return new test::TestCertificates(*made);
  }();
  return *certs;
}

void CopyFile(const std::string& from, const std::string& to) {
  std::ifstream in(from);
  std::ofstream(to) << in.rdbuf();
}

class AdminTlsTest : public AdminTest {
 protected:
  // The served certificate is a copy, so a test can replace it before a reload.
  void StartWithTls(bool readonly = false) {
    cert_ = Certs().dir + "/served_cert.pem";
    CopyFile(Certs().cert_file, cert_);
    AdminSetup setup;
    setup.readonly = readonly;
    setup.tls_echo = TlsOptions{cert_, Certs().key_file, {}};
    StartAll(setup);
  }
  std::unique_ptr<test::TlsClient> Handshaken() {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(tls_port_, Soon());
    EXPECT_TRUE(fd.ok());
    auto client = std::make_unique<test::TlsClient>(std::move(*fd), Certs().ca_file);
    EXPECT_TRUE(client->Handshake());
    return client;
  }
  // The common name of the certificate a new connection gets.
  std::string ServedName() {
    auto client = Handshaken();
    X509* cert = SSL_get1_peer_certificate(client->ssl());
    if (cert == nullptr) return "";
    char name[256];
    X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof(name));
    X509_free(cert);
    return name;
  }
  grpc::Status Reload(v1::ReloadCertificatesResponse* reply) {
    return stub_->ReloadCertificates(Context().get(), v1::ReloadCertificatesRequest(), reply);
  }

  std::string cert_;
};

TEST_F(AdminTlsTest, HandshakesAndFailuresAreCountedPerEndpointAndLoop) {
  StartWithTls();
  auto first = Handshaken();
  ASSERT_TRUE(first->Write("hello"));
  ASSERT_EQ(first->Read(5), "hello");
  auto second = Handshaken();
  ASSERT_TRUE(second->Write("again"));
  ASSERT_EQ(second->Read(5), "again");
  {
    int fd = Connect(tls_port_);
    ASSERT_TRUE(test::WriteAll(fd, "GET / HTTP/1.1\r\n\r\n", Soon()).ok());
  }
  v1::Stats stats = StatsWhen([](const v1::Stats& s) {
    return s.tls_size() == 1 && s.tls(0).total().handshakes() == 2 && s.tls(0).total().handshake_failures() == 1;
  });
  ASSERT_EQ(stats.tls_size(), 1);
  const v1::TlsEndpointStats& t = stats.tls(0);
  EXPECT_EQ(t.service(), "echo");
  EXPECT_EQ(t.address(), absl::StrCat("127.0.0.1:", tls_port_));
  EXPECT_NE(t.certificate_subject().find("CN=localhost"), std::string::npos) << t.certificate_subject();
  EXPECT_GT(t.certificate_not_after_unix_ns(), absl::ToUnixNanos(absl::Now()));
  EXPECT_EQ(t.reloads(), 0u);
  EXPECT_EQ(t.total().loop(), -1);
  EXPECT_EQ(t.total().handshakes(), 2u);
  EXPECT_EQ(t.total().tls13(), 2u);
  EXPECT_EQ(t.total().tls12(), 0u);
  EXPECT_EQ(t.total().resumptions(), 0u);
  EXPECT_EQ(t.total().handshake_failures(), 1u);
  EXPECT_EQ(t.total().handshake_ns().count(), 2u);
  EXPECT_GT(t.total().handshake_ns().max(), 0u);
  ASSERT_EQ(t.per_loop_size(), 2);
  // Round robin over two loops: one handshake on each.
  EXPECT_EQ(t.per_loop(0).handshakes() + t.per_loop(1).handshakes(), 2u);
  EXPECT_EQ(t.per_loop(0).loop(), 0);
  EXPECT_EQ(t.per_loop(1).loop(), 1);
  // The close reason says it too.
  uint64_t failed = 0;
  for (const v1::LoopStats& l : stats.loops()) {
    for (const v1::CloseCount& c : l.closed()) failed += c.reason() == "tls_handshake_failed" ? c.count() : 0;
  }
  EXPECT_EQ(failed, 1u);

  const std::string text = PrometheusText(*server_);
  const std::string labels = absl::StrCat("service=\"echo\",endpoint=\"127.0.0.1:", tls_port_, "\"");
  EXPECT_NE(text.find("# TYPE percore_tls_handshakes_total counter"), std::string::npos);
  EXPECT_NE(text.find("percore_tls_failures_total{" + labels + ",loop=\""), std::string::npos) << text;
  EXPECT_NE(text.find("percore_tls_handshake_seconds_bucket{" + labels), std::string::npos);
  EXPECT_NE(text.find("percore_tls_certificate_expiry_timestamp_seconds{" + labels + "}"), std::string::npos);
}

TEST_F(AdminTlsTest, ConnectionsShowTheirTlsAndConfigShowsTheEndpoint) {
  StartWithTls();
  auto client = Handshaken();
  ASSERT_TRUE(client->Write("x"));
  ASSERT_EQ(client->Read(1), "x");
  const int plain = Connect(echo_port_);
  Echo(plain, "y");
  v1::ListConnectionsResponse list = List();
  ASSERT_EQ(list.connections_size(), 2);
  int tls_rows = 0;
  for (const v1::ConnectionInfo& c : list.connections()) {
    if (c.tls_version().empty()) continue;
    ++tls_rows;
    EXPECT_EQ(c.tls_version(), "TLSv1.3");
    EXPECT_EQ(c.tls_alpn(), "");  // the echo endpoint names no protocol
    EXPECT_FALSE(c.tls_resumed());
    EXPECT_FALSE(c.tls_ktls());
  }
  EXPECT_EQ(tls_rows, 1);

  v1::Config config;
  ASSERT_TRUE(stub_->GetConfig(Context().get(), v1::GetConfigRequest(), &config).ok());
  ASSERT_EQ(config.endpoints_size(), 3);
  EXPECT_FALSE(config.endpoints(0).tls());
  EXPECT_TRUE(config.endpoints(2).tls());
  EXPECT_EQ(config.connection().tls_handshake_timeout_ns(),
            absl::ToInt64Nanoseconds(ConnectionOptions().tls_handshake_timeout));
}

TEST_F(AdminTlsTest, ReloadGivesNewConnectionsTheNewCertificateAndRefusesABadOne) {
  StartWithTls();
  EXPECT_EQ(ServedName(), "localhost");
  auto before = Handshaken();  // open across both reloads

  CopyFile(Certs().second_cert_file, cert_);
  v1::ReloadCertificatesResponse reply;
  grpc::Status status = Reload(&reply);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reply.endpoints(), 1);
  EXPECT_EQ(ServedName(), "percore-reloaded");

  CopyFile(Certs().expired_cert_file, cert_);
  status = Reload(&reply);
  EXPECT_EQ(status.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("expired"), std::string::npos) << status.error_message();
  EXPECT_NE(status.error_message().find(absl::StrCat("127.0.0.1:", tls_port_)), std::string::npos)
      << status.error_message();
  EXPECT_EQ(ServedName(), "percore-reloaded");  // the previous one stays

  v1::Stats stats = GetStats();
  ASSERT_EQ(stats.tls_size(), 1);
  EXPECT_EQ(stats.tls(0).reloads(), 1u);
  EXPECT_NE(stats.tls(0).certificate_subject().find("CN=percore-reloaded"), std::string::npos);
  // The connection opened before any reload still works.
  ASSERT_TRUE(before->Write("still"));
  EXPECT_EQ(before->Read(5), "still");
}

TEST_F(AdminTlsTest, ReloadIsAControlVerb) {
  StartWithTls(/*readonly=*/true);
  v1::ReloadCertificatesResponse reply;
  EXPECT_EQ(Reload(&reply).error_code(), StatusCode::PERMISSION_DENIED);
}

TEST_F(AdminTest, ReloadWithoutTlsEndpointsSaysSo) {
  StartAll();
  v1::ReloadCertificatesResponse reply;
  grpc::Status status = stub_->ReloadCertificates(Context().get(), v1::ReloadCertificatesRequest(), &reply);
  EXPECT_EQ(status.error_code(), StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("no TLS endpoint"), std::string::npos) << status.error_message();
}

}  // namespace
}  // namespace percore::testing
