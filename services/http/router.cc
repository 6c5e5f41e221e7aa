#include "services/http/router.h"

#include <algorithm>

#include "absl/strings/string_view.h"

namespace percore {
namespace {

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

void Router::Handle(std::string_view method, std::string_view path, HttpHandlerFn handler) {
  Route& route = Slot(method, path);
  route.handler = std::move(handler);
  route.async_handler = nullptr;
}

void Router::HandleAsync(std::string_view method, std::string_view path, HttpAsyncHandlerFn handler) {
  Route& route = Slot(method, path);
  route.async_handler = std::move(handler);
  route.handler = nullptr;
}

Router::Route& Router::Slot(std::string_view method, std::string_view path) {
  PathRoutes& routes = routes_[ToAbsl(path)];
  auto it = std::find_if(routes.methods.begin(), routes.methods.end(),
                         [&](const Route& route) { return route.method == method; });
  if (it != routes.methods.end()) return *it;

  routes.methods.push_back(Route{std::string(method), nullptr, nullptr});
  std::vector<std::string> names;
  for (const Route& route : routes.methods) names.push_back(route.method);
  if (FindMethod(routes, "GET") != nullptr && FindMethod(routes, "HEAD") == nullptr) {
    names.push_back("HEAD");
  }
  std::sort(names.begin(), names.end());
  routes.allow.clear();
  for (const std::string& name : names) {
    if (!routes.allow.empty()) routes.allow += ", ";
    routes.allow += name;
  }
  return routes.methods.back();
}

bool Router::HasPath(std::string_view path) const { return routes_.contains(ToAbsl(path)); }

std::vector<std::string> Router::Paths() const {
  std::vector<std::string> paths;
  paths.reserve(routes_.size());
  for (const auto& [path, routes] : routes_) paths.push_back(path);
  std::sort(paths.begin(), paths.end());
  return paths;
}

const Router::Route* Router::FindMethod(const PathRoutes& routes, std::string_view method) {
  for (const Route& route : routes.methods) {
    if (route.method == method) return &route;
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
  const Route* route = FindMethod(it->second, method);
  if (route == nullptr && method == "HEAD") route = FindMethod(it->second, "GET");
  if (route == nullptr) {
    match.status = 405;
    match.allow = it->second.allow;
    return match;
  }
  if (route->async_handler) {
    match.async_handler = &route->async_handler;
  } else {
    match.handler = &route->handler;
  }
  return match;
}

}  // namespace percore
