#include "services/http/router.h"

#include <algorithm>

#include "absl/strings/string_view.h"

namespace percore {
namespace {

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

void Router::Handle(std::string_view method, std::string_view path, HttpHandlerFn handler) {
  PathRoutes& routes = routes_[ToAbsl(path)];
  auto it = std::find_if(routes.methods.begin(), routes.methods.end(),
                         [&](const auto& entry) { return entry.first == method; });
  if (it != routes.methods.end()) {
    it->second = std::move(handler);
  } else {
    routes.methods.emplace_back(std::string(method), std::move(handler));
  }

  std::vector<std::string> names;
  for (const auto& entry : routes.methods) names.push_back(entry.first);
  if (FindMethod(routes, "GET") != nullptr && FindMethod(routes, "HEAD") == nullptr) {
    names.push_back("HEAD");
  }
  std::sort(names.begin(), names.end());
  routes.allow.clear();
  for (const std::string& name : names) {
    if (!routes.allow.empty()) routes.allow += ", ";
    routes.allow += name;
  }
}

bool Router::HasPath(std::string_view path) const { return routes_.contains(ToAbsl(path)); }

std::vector<std::string> Router::Paths() const {
  std::vector<std::string> paths;
  paths.reserve(routes_.size());
  for (const auto& [path, routes] : routes_) paths.push_back(path);
  std::sort(paths.begin(), paths.end());
  return paths;
}

const HttpHandlerFn* Router::FindMethod(const PathRoutes& routes, std::string_view method) {
  for (const auto& [name, handler] : routes.methods) {
    if (name == method) return &handler;
  }
  return nullptr;
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  Match match;
  auto it = routes_.find(ToAbsl(path));
  if (it == routes_.end()) {
    match.status = 404;
    return match;
  }
  match.handler = FindMethod(it->second, method);
  if (match.handler == nullptr && method == "HEAD") match.handler = FindMethod(it->second, "GET");
  if (match.handler == nullptr) {
    match.status = 405;
    match.allow = it->second.allow;
  }
  return match;
}

}  // namespace percore
