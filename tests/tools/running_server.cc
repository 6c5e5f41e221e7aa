#include "tests/tools/running_server.h"

#include <cstdlib>
#include <cstdio>
#include <string>
#include <utility>

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

RunningServer::~RunningServer() { server_.Stop(0); }

template <typename Fn>
uint64_t RunningServer::Sum(Fn field) {
  uint64_t total = 0;
  for (int i = 0; i < server_.loop_count(); ++i) total += field(server_.loop(i).stats());
  return total;
}

uint64_t RunningServer::requests() {
  return Sum([](const LoopStats& s) { return s.services.empty() ? uint64_t{0} : s.services[0]->requests.Get(); });
}

uint64_t RunningServer::request_errors() {
  return Sum([](const LoopStats& s) { return s.services.empty() ? uint64_t{0} : s.services[0]->errors.Get(); });
}

uint64_t RunningServer::bytes_in() {
  return Sum([](const LoopStats& s) { return s.bytes_in.Get(); });
}

uint64_t RunningServer::handed_in() {
  return Sum([](const LoopStats& s) { return s.conns_handed_in.Get(); });
}

}  // namespace percore::test
