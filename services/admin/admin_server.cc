#include "services/admin/admin_server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace percore {
namespace {

constexpr auto kShutdownGrace = std::chrono::seconds(1);

// A process-wide switch of gRPC that must be set before a server is built.
void InitGrpcPlugins() {
  static std::once_flag once;
  std::call_once(once, [] { grpc::reflection::InitProtoReflectionServerBuilderPlugin(); });
}

}  // namespace

AdminServer::AdminServer(Server& server, AdminOptions options)
    : server_(server), service_(server, std::move(options)) {}

AdminServer::~AdminServer() { Shutdown(); }

absl::StatusOr<std::string> AdminServer::Start(std::string_view address_view) {
  if (grpc_server_ != nullptr) return absl::FailedPreconditionError("the admin server is already started");
  const std::string address(address_view);
  if (address.empty()) return absl::InvalidArgumentError("empty admin address");
  const bool is_unix = absl::StartsWith(address, "unix:");
  if (is_unix) {
    unix_path_ = address.substr(5);
    if (absl::StartsWith(unix_path_, "//")) unix_path_ = unix_path_.substr(2);  // unix:///abs/path
    if (unix_path_.empty()) return absl::InvalidArgumentError("unix: address without a path");
  } else if (address.rfind(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("admin address '", address, "' is not HOST:PORT or unix:/path"));
  }

  InitGrpcPlugins();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), is_unix ? nullptr : &port);
  builder.RegisterService(&service_);
  builder.RegisterService(&health_);
  // gRPC sets SO_REUSEPORT by default, which would let a second daemon share the port silently.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // The socket file must never be reachable by other users, not even between bind and chmod.
  const mode_t old_umask = is_unix ? umask(0177) : 0;
  grpc_server_ = builder.BuildAndStart();
  if (is_unix) umask(old_umask);
  if (grpc_server_ == nullptr || (!is_unix && port == 0)) {
    if (grpc_server_ != nullptr) grpc_server_->Shutdown();
    grpc_server_.reset();
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  }
  if (is_unix) {
    if (chmod(unix_path_.c_str(), 0600) != 0) {
      Shutdown();
      return absl::PermissionDeniedError(absl::StrCat("cannot make ", unix_path_, " owner-only"));
    }
    address_ = address;
  } else {
    address_ = absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
  }
  SetServing(server_.running());
  return address_;
}

void AdminServer::SetServing(bool serving) {
  service_.SetServing(serving);
  health_.SetServing(serving);
}

void AdminServer::Shutdown() {
  if (grpc_server_ == nullptr) return;
  service_.EndStreams();
  health_.EndStreams();
  grpc_server_->Shutdown(std::chrono::system_clock::now() + kShutdownGrace);
  grpc_server_->Wait();
  grpc_server_.reset();
  if (!unix_path_.empty()) unlink(unix_path_.c_str());
}

}  // namespace percore
