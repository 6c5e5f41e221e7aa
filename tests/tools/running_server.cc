#include "tests/tools/running_server.h"

#include <cstdlib>
#include <cstdio>
#include <string>
#include <utility>

#include "absl/time/time.h"

namespace percore::test {
namespace {

ServerOptions Options(int loops) {
  ServerOptions o;
  o.loops = loops;
  return o;
}

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "RunningServer: %s: %s\n", what, std::string(s.message()).c_str());
    std::abort();
  }
}

}  // namespace

RunningServer::RunningServer(std::shared_ptr<Service> service, int loops) : server_(Options(loops)) {
  const std::string name(service->name());
  Check(server_.AddService(std::move(service)), "AddService");
  absl::StatusOr<ListenerInfo> info = server_.Listen(name, HostPort{"127.0.0.1", 0});
  Check(info.status(), "Listen");
  port_ = info->bound.port();
  Check(server_.Start(), "Start");
}

RunningServer::~RunningServer() { server_.Stop(absl::ZeroDuration()); }

uint64_t RunningServer::requests() {
  const ServerTotals totals = server_.Totals();
  return totals.services.empty() ? 0 : totals.services[0].requests;
}

uint64_t RunningServer::request_errors() {
  const ServerTotals totals = server_.Totals();
  return totals.services.empty() ? 0 : totals.services[0].errors;
}

uint64_t RunningServer::bytes_in() { return server_.Totals().bytes_in; }

uint64_t RunningServer::handed_in() { return server_.Totals().conns_handed_in; }

}  // namespace percore::test
