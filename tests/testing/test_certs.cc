#include "tests/testing/test_certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace percore::test {
namespace {

struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertFree {
  void operator()(X509* cert) const { X509_free(cert); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext != nullptr) {
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
}

// A certificate for `key` named `cn`, valid from `from_s` to `to_s` seconds from now, signed by
// `issuer_key` (issuer `issuer`, or itself when null).
Cert MakeCert(EVP_PKEY* key, const char* cn, long from_s, long to_s, X509* issuer, EVP_PKEY* issuer_key, bool ca,
              long serial) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), from_s);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), to_s);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("percore tests"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  if (ca) {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), signer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    AddExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
  }
  AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash");
  X509_sign(cert.get(), issuer_key, EVP_sha256());
  return cert;
}

absl::Status WritePem(const std::string& path, const std::vector<X509*>& certs, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return absl::InternalError(absl::StrCat("cannot write ", path));
  bool ok = true;
  for (X509* cert : certs) ok = ok && PEM_write_X509(f, cert) == 1;
  if (key != nullptr) ok = ok && PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(f);
  return ok ? absl::OkStatus() : absl::InternalError(absl::StrCat("PEM write failed: ", path));
}

}  // namespace

absl::StatusOr<TestCertificates> MakeTestCertificates(const std::string& dir) {
  ::mkdir(dir.c_str(), 0700);
  constexpr long kDay = 24 * 3600;
  Key ca_key(EVP_EC_gen("P-256"));
  Key mid_key(EVP_EC_gen("P-256"));
  Key leaf_key(EVP_EC_gen("P-256"));
  Key other_key(EVP_EC_gen("P-256"));
  Key rsa_key(EVP_RSA_gen(2048));
  if (!ca_key || !mid_key || !leaf_key || !other_key || !rsa_key) return absl::InternalError("key generation failed");

  Cert ca = MakeCert(ca_key.get(), "percore test root", -kDay, 30 * kDay, nullptr, ca_key.get(), true, 1);
  Cert mid = MakeCert(mid_key.get(), "percore test intermediate", -kDay, 30 * kDay, ca.get(), ca_key.get(), true, 2);
  Cert leaf = MakeCert(leaf_key.get(), "localhost", -kDay, 30 * kDay, mid.get(), mid_key.get(), false, 3);
  Cert rsa = MakeCert(rsa_key.get(), "localhost", -kDay, 30 * kDay, mid.get(), mid_key.get(), false, 4);
  Cert expired = MakeCert(leaf_key.get(), "localhost", -2 * kDay, -kDay, mid.get(), mid_key.get(), false, 5);
  Cert future = MakeCert(leaf_key.get(), "localhost", kDay, 30 * kDay, mid.get(), mid_key.get(), false, 6);
  Cert second = MakeCert(leaf_key.get(), "percore-reloaded", -kDay, 30 * kDay, mid.get(), mid_key.get(), false, 7);

  TestCertificates out;
  out.dir = dir;
  out.ca_file = dir + "/ca.pem";
  out.cert_file = dir + "/cert.pem";
  out.key_file = dir + "/key.pem";
  out.rsa_cert_file = dir + "/rsa_cert.pem";
  out.rsa_key_file = dir + "/rsa_key.pem";
  out.other_key_file = dir + "/other_key.pem";
  out.expired_cert_file = dir + "/expired_cert.pem";
  out.future_cert_file = dir + "/future_cert.pem";
  out.second_cert_file = dir + "/second_cert.pem";
  for (const absl::Status& s : {
           WritePem(out.ca_file, {ca.get()}, nullptr),
           WritePem(out.cert_file, {leaf.get(), mid.get()}, nullptr),
           WritePem(out.key_file, {}, leaf_key.get()),
           WritePem(out.rsa_cert_file, {rsa.get(), mid.get()}, nullptr),
           WritePem(out.rsa_key_file, {}, rsa_key.get()),
           WritePem(out.other_key_file, {}, other_key.get()),
           WritePem(out.expired_cert_file, {expired.get(), mid.get()}, nullptr),
           WritePem(out.future_cert_file, {future.get(), mid.get()}, nullptr),
           WritePem(out.second_cert_file, {second.get(), mid.get()}, nullptr),
       }) {
    if (!s.ok()) return s;
  }
  return out;
}

}  // namespace percore::test
