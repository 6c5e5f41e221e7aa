#include "tools/service_catalog.h"

#include <functional>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/echo/echo_service.h"

namespace percore {
namespace {

struct CatalogEntry {
  const char* name;
  std::function<std::shared_ptr<Service>()> make;
};

const std::vector<CatalogEntry>& Catalog() {
  static const auto* catalog = new std::vector<CatalogEntry>{
      {"echo", [] { return NewEchoService(); }},
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
        if (absl::Status s = server.AddService(c.make()); !s.ok()) return s;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace percore
