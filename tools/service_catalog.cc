#include "tools/service_catalog.h"

#include <functional>
#include <memory>
#include <set>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "services/admin/prometheus.h"
#include "services/echo/echo_service.h"
#include "services/http/http_service.h"
#include "services/memcache/memcache_service.h"
#include "services/resp/resp_service.h"

ABSL_FLAG(int64_t, http_max_body_bytes, 1 << 20, "http: largest request body accepted; larger gets 413.");
ABSL_FLAG(absl::Duration, http_header_timeout, absl::Seconds(30),
          "http: a request whose headers are not complete this long after its first byte gets 408 "
          "and the connection closes (slow clients, slowloris). 0 disables.");
ABSL_FLAG(int64_t, memcache_memory_mb, 64,
          "memcache: memory for items in MiB, like memcached -m; least recently used items are evicted beyond it.");
ABSL_FLAG(int64_t, memcache_max_item_bytes, 1 << 20,
          "memcache: largest item (key + value + header), like memcached -I.");
ABSL_FLAG(int64_t, resp_max_bulk_bytes, int64_t{512} << 20,
          "resp: largest bulk string in a request or value, like Redis's proto-max-bulk-len.");

namespace percore {
namespace {

struct CatalogEntry {
  const char* name;
  std::function<std::shared_ptr<Service>(Server& server)> make;
};

const std::vector<CatalogEntry>& Catalog() {
  static const auto* catalog = new std::vector<CatalogEntry>{
      {"echo", [](Server&) { return NewEchoService(); }},
      {"http",
       [](Server& server) {
         HttpOptions options;
         options.max_body_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_http_max_body_bytes));
         options.header_timeout = absl::GetFlag(FLAGS_http_header_timeout);
         // The server outlives its services, so the reference stays valid for their lifetime.
         options.metrics = [&server] { return PrometheusText(server); };
         return NewHttpService(std::move(options));
       }},
      {"memcache",
       [](Server&) {
         MemcacheOptions options;
         options.memory_limit = static_cast<size_t>(absl::GetFlag(FLAGS_memcache_memory_mb)) << 20;
         options.max_item_size = static_cast<size_t>(absl::GetFlag(FLAGS_memcache_max_item_bytes));
         return NewMemcacheService(std::move(options));
       }},
      {"resp",
       [](Server&) {
         RespOptions options;
         options.max_bulk_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_resp_max_bulk_bytes));
         return NewRespService(options);
       }},
  };
  return *catalog;
}

}  // namespace

absl::StatusOr<std::vector<Endpoint>> ParseListen(std::string_view text_in) {
  const absl::string_view text(text_in.data(), text_in.size());
  std::vector<Endpoint> out;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    const size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", item, "' is not SERVICE=HOST:PORT"));
    }
    Endpoint e;
    e.service = std::string(item.substr(0, eq));
    if (const size_t plus = e.service.find('+'); plus != std::string::npos) {
      const std::string option = e.service.substr(plus + 1);
      e.service.resize(plus);
      if (option != "tls") {
        return absl::InvalidArgumentError(absl::StrCat("'", item, "': unknown endpoint option '+", option,
                                                       "' (the one there is: +tls)"));
      }
      e.tls = true;
    }
    bool known = false;
    for (const CatalogEntry& c : Catalog()) known |= e.service == c.name;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat("unknown service '", e.service, "' (known: ", ServiceNames(), ")"));
    }
    const absl::string_view address = item.substr(eq + 1);
    absl::StatusOr<HostPort> hp = ParseHostPort(std::string_view(address.data(), address.size()));
    if (!hp.ok()) return hp.status();
    e.address = *hp;
    out.push_back(std::move(e));
  }
  if (out.empty()) return absl::InvalidArgumentError("no endpoint given");
  return out;
}

std::string ServiceNames() {
  std::vector<std::string> names;
  for (const CatalogEntry& c : Catalog()) names.push_back(c.name);
  return absl::StrJoin(names, ", ");
}

absl::Status AddServices(Server& server, const std::vector<Endpoint>& endpoints) {
  std::set<std::string> added;
  for (const Endpoint& e : endpoints) {
    if (!added.insert(e.service).second) continue;
    for (const CatalogEntry& c : Catalog()) {
      if (e.service == c.name) {
        if (absl::Status s = server.AddService(c.make(server)); !s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace percore
