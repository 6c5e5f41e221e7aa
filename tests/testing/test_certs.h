#pragma once

// Certificates for the TLS tests, made at test time (nothing is committed): a root CA, an
// intermediate it signs, and leaf certificates for "localhost" / 127.0.0.1 the intermediate
// signs. Clients trust ca_file only, so a server must send the intermediate from its chain file.

#include <string>

#include "absl/status/statusor.h"

namespace percore::test {

struct TestCertificates {
  std::string dir;
  std::string ca_file;           // the root, for clients' --cacert
  std::string cert_file;         // ECDSA P-256 leaf, then the intermediate (a chain)
  std::string key_file;          // its key
  std::string rsa_cert_file;     // RSA-2048 leaf, then the intermediate
  std::string rsa_key_file;
  std::string other_key_file;    // a P-256 key matching no certificate here
  std::string expired_cert_file; // a leaf (key_file's key) that expired yesterday, with the chain
  std::string future_cert_file;  // a leaf (key_file's key) valid only from tomorrow
  std::string second_cert_file;  // another valid leaf for key_file's key (subject CN=percore-reloaded)
};

// Writes the files into `dir` (created if missing). Each call makes fresh keys.
absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir);

}  // namespace percore::test
