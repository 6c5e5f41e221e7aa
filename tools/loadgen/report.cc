#include "tools/loadgen/report.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/loadgen/codec.h"

namespace percore::loadgen {
namespace {

constexpr double kPercentiles[] = {50, 90, 99, 99.9};

double Micros(uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

std::string Mode(const LoadOptions& o) {
  if (o.connect_per_request) return "one request per connection";
  if (o.rate > 0) return absl::StrFormat("open loop at %.0f req/s", o.rate);
  return absl::StrCat("closed loop, depth ", o.depth);
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

}  // namespace

std::string FormatText(const Report& r) {
  const LoadOptions& o = r.options;
  std::string out = absl::StrFormat("%s %s: %d connections over %d threads, %s, %.2f s\n",
                                    ProtocolName(o.workload.protocol), o.server.ToString(), o.connections,
                                    r.threads, Mode(o), r.elapsed_s);
  if (r.idle_connections > 0) absl::StrAppendFormat(&out, "  idle connections held: %d\n", r.idle_connections);
  if (r.preloaded > 0) absl::StrAppendFormat(&out, "  preloaded %d keys in %.2f s\n", r.preloaded, r.preload_s);
  absl::StrAppendFormat(&out, "  requests  %d  (%.1f/s)", r.requests(), r.requests_per_s());
  if (o.workload.protocol == Protocol::kMemcache || o.workload.protocol == Protocol::kResp) {
    absl::StrAppendFormat(&out, "  hits %d  misses %d", r.ok, r.misses);
  }
  absl::StrAppendFormat(&out, "  errors %d\n", r.errors);
  if (o.connect_per_request) {
    absl::StrAppendFormat(&out, "  connections  %d  (%.1f/s)\n", r.connects, r.connects_per_s());
  }
  absl::StrAppendFormat(&out, "  latency us  p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n",
                        Micros(r.latency_ns.Percentile(50)), Micros(r.latency_ns.Percentile(90)),
                        Micros(r.latency_ns.Percentile(99)), Micros(r.latency_ns.Percentile(99.9)),
                        Micros(r.latency_ns.max), r.latency_ns.Mean() / 1000.0);
  absl::StrAppendFormat(&out, "  bytes  out %d  in %d\n", r.bytes_out, r.bytes_in);
  for (const std::string& e : r.error_samples) absl::StrAppend(&out, "  error: ", e, "\n");
  return out;
}

std::string FormatJson(const Report& r) {
  const LoadOptions& o = r.options;
  std::string out = "{";
  auto field = [&out](std::string_view name, const std::string& value) {
    if (out.size() > 1) out += ", ";
    absl::StrAppend(&out, "\"", absl::string_view(name.data(), name.size()), "\": ", value);
  };
  field("protocol", JsonString(ProtocolName(o.workload.protocol)));
  field("server", JsonString(o.server.ToString()));
  field("connections", absl::StrCat(o.connections));
  field("threads", absl::StrCat(r.threads));
  field("depth", absl::StrCat(o.depth));
  field("rate", absl::StrFormat("%.3f", o.rate));
  field("connect_per_request", o.connect_per_request ? "true" : "false");
  field("idle_connections", absl::StrCat(r.idle_connections));
  field("preloaded", absl::StrCat(r.preloaded));
  field("elapsed_s", absl::StrFormat("%.6f", r.elapsed_s));
  field("requests", absl::StrCat(r.requests()));
  field("requests_per_s", absl::StrFormat("%.1f", r.requests_per_s()));
  field("hits", absl::StrCat(r.ok));
  field("misses", absl::StrCat(r.misses));
  field("errors", absl::StrCat(r.errors));
  field("issued", absl::StrCat(r.issued));
  field("reissued", absl::StrCat(r.reissued));
  field("connects", absl::StrCat(r.connects));
  field("connects_per_s", absl::StrFormat("%.1f", r.connects_per_s()));
  field("connect_failures", absl::StrCat(r.connect_failures));
  field("bytes_out", absl::StrCat(r.bytes_out));
  field("bytes_in", absl::StrCat(r.bytes_in));
  std::string latency = "{";
  for (double p : kPercentiles) {
    absl::StrAppendFormat(&latency, "\"p%s\": %.3f, ", absl::StrCat(p), Micros(r.latency_ns.Percentile(p)));
  }
  absl::StrAppendFormat(&latency, "\"max\": %.3f, \"mean\": %.3f}", Micros(r.latency_ns.max),
                        r.latency_ns.Mean() / 1000.0);
  field("latency_us", latency);
  std::string samples = "[";
  for (size_t i = 0; i < r.error_samples.size(); ++i) {
    absl::StrAppend(&samples, i ? ", " : "", JsonString(r.error_samples[i]));
  }
  field("error_samples", samples + "]");
  return out + "}\n";
}

}  // namespace percore::loadgen
