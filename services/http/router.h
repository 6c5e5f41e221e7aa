#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "services/http/http_request.h"
#include "services/http/http_responder.h"
#include "services/http/http_response.h"

namespace percore {

// Fills `response` for `request`. Runs on the connection's loop thread; the same function runs
// on every loop at once, so whatever it shares must be thread-safe. It must not block.
using HttpHandlerFn = std::function<void(const HttpRequest& request, HttpResponse& response)>;

// Starts answering `request` and hands the answer over through `responder`, now or later
// (HttpResponder says how). Runs like an HttpHandlerFn: on the connection's loop thread, on
// every loop at once, never blocking. The request's views are valid during the call only: copy
// what the answer needs.
using HttpAsyncHandlerFn = std::function<void(const HttpRequest& request, HttpResponder responder)>;

// Exact-match routing from (method, path) to a handler. Methods are case-sensitive tokens
// ("GET"), paths are compared byte for byte without the query and without percent-decoding.
// A GET route also answers HEAD (the server drops the body) unless HEAD has its own route.
// Configure before the server starts; lookups are then read-only and safe from every loop.
class Router {
 public:
  // Registers (or replaces, whichever kind it was) the handler for `method` on `path`.
  void Handle(std::string_view method, std::string_view path, HttpHandlerFn handler);
  void HandleAsync(std::string_view method, std::string_view path, HttpAsyncHandlerFn handler);
  void Get(std::string_view path, HttpHandlerFn handler) { Handle("GET", path, std::move(handler)); }
  void Post(std::string_view path, HttpHandlerFn handler) { Handle("POST", path, std::move(handler)); }
  void GetAsync(std::string_view path, HttpAsyncHandlerFn handler) {
    HandleAsync("GET", path, std::move(handler));
  }
  void PostAsync(std::string_view path, HttpAsyncHandlerFn handler) {
    HandleAsync("POST", path, std::move(handler));
  }

  bool HasPath(std::string_view path) const;
  // Every registered path, sorted.
  std::vector<std::string> Paths() const;

  struct Match {
    const HttpHandlerFn* handler = nullptr;             // a synchronous route, when found
    const HttpAsyncHandlerFn* async_handler = nullptr;  // an asynchronous route, when found
    int status = 0;                                     // 404 or 405 when not found
    std::string_view allow;                             // for 405: the Allow field value
    bool found() const { return handler != nullptr || async_handler != nullptr; }
  };
  Match Find(std::string_view method, std::string_view path) const;

  // What a caller's last lookup found. Each caller keeps its own (one router serves every
  // loop; the HTTP service keeps one in each request state of a loop): requests mostly repeat
  // the method and path of the one before, which two short comparisons then confirm without a
  // search. Valid while the routes stay as they are, as
  // they do once the server runs.
  class Hint {
   private:
    friend class Router;
    const void* entry_ = nullptr;  // a PathEntry of the router that filled it: the last path found
    // The last route found under the request's own method, as the router spells it.
    std::string_view path_;
    std::string_view method_;
    Match match_;
  };
  // Inline: the repeated request is answered here, without a call.
  Match Find(std::string_view method, std::string_view path, Hint& hint) const {
    if (hint.match_.found() && SameText(hint.path_, path) && SameText(hint.method_, method)) return hint.match_;
    return FindAndRemember(method, path, hint);
  }

 private:
  struct Route {
    std::string method;
    HttpHandlerFn handler;              // exactly one of the two is set
    HttpAsyncHandlerFn async_handler;
  };
  struct PathRoutes {
    std::vector<Route> methods;
    std::string allow;  // "GET, HEAD, POST": methods this path answers, for 405
  };
  struct PathEntry {
    std::string path;
    PathRoutes routes;
  };
  // The route for `method`, created empty if there is none yet.
  Route& Slot(std::string_view method, std::string_view path);
  const PathEntry* FindPath(std::string_view path) const;
  static const Route* FindMethod(const PathRoutes& routes, std::string_view method);
  static Match MatchIn(const PathEntry* entry, std::string_view method);
  Match FindAndRemember(std::string_view method, std::string_view path, Hint& hint) const;

  template <typename Word>
  static Word LoadWord(const char* p) {
    Word w;
    std::memcpy(&w, p, sizeof(w));
    return w;
  }
  // Equality of two byte strings of length `n` in a few word comparisons (the last words
  // overlap the ones before them instead of leaving single bytes): paths and methods are
  // short, and a memcmp call costs more than comparing them.
  static bool SameBytes(const char* a, const char* b, size_t n) {
    if (n >= 8) {
      for (size_t i = 0; i + 8 < n; i += 8) {
        if (LoadWord<uint64_t>(a + i) != LoadWord<uint64_t>(b + i)) return false;
      }
      return LoadWord<uint64_t>(a + n - 8) == LoadWord<uint64_t>(b + n - 8);
    }
    if (n >= 4) {
      return LoadWord<uint32_t>(a) == LoadWord<uint32_t>(b) &&
             LoadWord<uint32_t>(a + n - 4) == LoadWord<uint32_t>(b + n - 4);
    }
    if (n >= 2) {
      return LoadWord<uint16_t>(a) == LoadWord<uint16_t>(b) &&
             LoadWord<uint16_t>(a + n - 2) == LoadWord<uint16_t>(b + n - 2);
    }
    return n == 0 || *a == *b;
  }
  static bool SameText(std::string_view a, std::string_view b) {
    return a.size() == b.size() && SameBytes(a.data(), b.data(), a.size());
  }

  // Sorted by length, then by bytes: a lookup's binary search mostly compares lengths, with
  // no hash of the path to compute. The table is small and fixed before the server starts.
  std::vector<PathEntry> paths_;
};

}  // namespace percore
