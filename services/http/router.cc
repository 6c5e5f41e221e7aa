#include "services/http/router.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>

namespace percore {
namespace {

// Three-way comparison of two byte strings of the same length, as memcmp orders them, eight
// bytes at a time: paths and methods are short, and a memcmp call costs more than comparing them.
inline int CompareSameLength(const char* a, const char* b, size_t n) {
  for (; n >= 8; a += 8, b += 8, n -= 8) {
    uint64_t x;
    uint64_t y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) {
      if constexpr (std::endian::native == std::endian::little) {
        x = __builtin_bswap64(x);
        y = __builtin_bswap64(y);
      }
      return x < y ? -1 : 1;  // the first differing byte decides, as unsigned
    }
  }
  for (; n > 0; ++a, ++b, --n) {
    if (*a != *b) return static_cast<unsigned char>(*a) < static_cast<unsigned char>(*b) ? -1 : 1;
  }
  return 0;
}

// The order of paths_: by length, then by bytes.
int ComparePaths(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return CompareSameLength(a.data(), b.data(), a.size());
}

bool PathBefore(std::string_view a, std::string_view b) { return ComparePaths(a, b) < 0; }

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
  auto entry = std::lower_bound(paths_.begin(), paths_.end(), path,
                                [](const PathEntry& e, std::string_view p) { return PathBefore(e.path, p); });
  if (entry == paths_.end() || entry->path != path) {
    entry = paths_.insert(entry, PathEntry{std::string(path), PathRoutes()});
  }
  PathRoutes& routes = entry->routes;
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

const Router::PathEntry* Router::FindPath(std::string_view path) const {
  size_t low = 0;
  size_t high = paths_.size();
  while (low < high) {
    const size_t middle = low + (high - low) / 2;
    const int order = ComparePaths(paths_[middle].path, path);
    if (order == 0) return &paths_[middle];
    if (order < 0) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return nullptr;
}

bool Router::HasPath(std::string_view path) const { return FindPath(path) != nullptr; }

std::vector<std::string> Router::Paths() const {
  std::vector<std::string> paths;
  paths.reserve(paths_.size());
  for (const PathEntry& entry : paths_) paths.push_back(entry.path);
  std::sort(paths.begin(), paths.end());
  return paths;
}

inline const Router::Route* Router::FindMethod(const PathRoutes& routes, std::string_view method) {
  for (const Route& route : routes.methods) {
    if (SameText(route.method, method)) return &route;
  }
  return nullptr;
}

inline Router::Match Router::MatchIn(const PathEntry* entry, std::string_view method) {
  Match match;
  if (entry == nullptr) {
    match.status = 404;
    return match;
  }
  const Route* route = FindMethod(entry->routes, method);
  if (route == nullptr && SameText(method, "HEAD")) route = FindMethod(entry->routes, "GET");
  if (route == nullptr) {
    match.status = 405;
    match.allow = entry->routes.allow;
    return match;
  }
  if (route->async_handler) {
    match.async_handler = &route->async_handler;
  } else {
    match.handler = &route->handler;
  }
  return match;
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  return MatchIn(FindPath(path), method);
}

Router::Match Router::FindAndRemember(std::string_view method, std::string_view path, Hint& hint) const {
  const auto* last = static_cast<const PathEntry*>(hint.entry_);
  const PathEntry* entry = last != nullptr && SameText(last->path, path) ? last : FindPath(path);
  if (entry == nullptr) return MatchIn(nullptr, method);
  hint.entry_ = entry;
  const Match match = MatchIn(entry, method);
  // Remembered only for a route of the method asked for: HEAD answered by GET's route, 404 and
  // 405 take the longer way each time.
  const Route* route = FindMethod(entry->routes, method);
  if (route != nullptr) {
    hint.path_ = entry->path;
    hint.method_ = route->method;
    hint.match_ = match;
  } else {
    hint.match_ = Match();
  }
  return match;
}

}  // namespace percore
