#include "services/http/builtin_routes.h"

#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace percore {
namespace {

constexpr std::string_view kHelloText = "Hello, World!";
constexpr std::string_view kHelloJson = R"({"message":"Hello, World!"})";

std::string EscapeHtml(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string IndexPage(const Router& router) {
  std::string page =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>percore</title></head>\n"
      "<body><h1>percore</h1>\n<p>HTTP/1.1 service of the percore server framework.</p>\n<ul>\n";
  for (const std::string& path : router.Paths()) {
    if (path == "/" || !router.Find("GET", path).found()) continue;
    const std::string escaped = EscapeHtml(path);
    page += "<li><a href=\"" + escaped + "\">" + escaped + "</a></li>\n";
  }
  page += "</ul>\n</body></html>\n";
  return page;
}

}  // namespace

void AddBuiltinRoutes(const HttpOptions& options, Router& router) {
  if (!router.HasPath("/plaintext")) {
    router.Get("/plaintext", [type = PreparedHeader("Content-Type", "text/plain")](
                                 const HttpRequest&, HttpResponse& response) {
      response.AddHeader(type);
      response.set_body(kHelloText);
    });
  }
  if (!router.HasPath("/json")) {
    router.Get("/json", [type = PreparedHeader("Content-Type", "application/json")](
                            const HttpRequest&, HttpResponse& response) {
      response.AddHeader(type);
      response.set_body(kHelloJson);
    });
  }
  if (options.metrics && !router.HasPath("/metrics")) {
    router.Get("/metrics", [metrics = options.metrics](const HttpRequest&, HttpResponse& response) {
      response.set_content_type("text/plain; version=0.0.4; charset=utf-8");
      response.set_body(metrics());
    });
  }
  if (!router.HasPath("/")) {
    // Built last so that it links to every other path; shared read-only by all loops.
    auto page = std::make_shared<const std::string>(IndexPage(router));
    router.Get("/", [page = std::move(page), type = PreparedHeader("Content-Type", "text/html; charset=utf-8")](
                        const HttpRequest&, HttpResponse& response) {
      response.AddHeader(type);
      response.set_body(*page);
    });
  }
}

}  // namespace percore
