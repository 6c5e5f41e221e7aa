#include "services/admin/prometheus_writer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace percore {
namespace {

absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Label values escape backslash, double quote and newline; HELP text backslash and newline.
void AppendEscaped(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

}  // namespace

std::string NanosAsSeconds(uint64_t ns) {
  std::string text = absl::StrCat(ns / 1'000'000'000);
  uint64_t fraction = ns % 1'000'000'000;
  if (fraction == 0) return text;
  std::string digits = absl::StrCat(fraction);
  digits.insert(0, 9 - digits.size(), '0');
  while (digits.back() == '0') digits.pop_back();
  absl::StrAppend(&text, ".", digits);
  return text;
}

void PrometheusWriter::Family(std::string_view name, std::string_view type, std::string_view help) {
  absl::StrAppend(&out_, "# HELP ", AbslView(name), " ");
  AppendEscaped(out_, help, /*quote=*/false);
  absl::StrAppend(&out_, "\n# TYPE ", AbslView(name), " ", AbslView(type), "\n");
}

void PrometheusWriter::Begin(std::string_view name, std::string_view suffix, Labels labels,
                             std::string_view extra_label, std::string_view extra_value) {
  absl::StrAppend(&out_, AbslView(name), AbslView(suffix));
  if (labels.size() == 0 && extra_label.empty()) {
    out_ += ' ';
    return;
  }
  out_ += '{';
  bool first = true;
  auto append = [&](std::string_view label, std::string_view value) {
    if (!first) out_ += ',';
    first = false;
    absl::StrAppend(&out_, AbslView(label), "=\"");
    AppendEscaped(out_, value, /*quote=*/true);
    out_ += '"';
  };
  for (const auto& [label, value] : labels) append(label, value);
  if (!extra_label.empty()) append(extra_label, extra_value);
  out_ += "} ";
}

void PrometheusWriter::Sample(std::string_view name, Labels labels, uint64_t value) {
  Begin(name, "", labels, "", "");
  absl::StrAppend(&out_, value, "\n");
}

void PrometheusWriter::SampleSigned(std::string_view name, Labels labels, int64_t value) {
  Begin(name, "", labels, "", "");
  absl::StrAppend(&out_, value, "\n");
}

void PrometheusWriter::SampleSeconds(std::string_view name, Labels labels, uint64_t ns) {
  Begin(name, "", labels, "", "");
  absl::StrAppend(&out_, NanosAsSeconds(ns), "\n");
}

void PrometheusWriter::SampleThousandths(std::string_view name, Labels labels, uint64_t thousandths) {
  SampleSeconds(name, labels, thousandths * 1'000'000);  // the same exact decimal, scaled
}

void PrometheusWriter::HistogramSeconds(std::string_view name, Labels labels, const HistogramSnapshot& h) {
  // A fine bucket counts under `le` only when its whole range is <= le, so a bound that falls
  // inside a fine bucket undercounts by that bucket (at most 3.125% of the bound in width).
  uint64_t cumulative = 0;
  int fine = 0;
  for (uint64_t bound : kBucketBoundsNs) {
    while (fine < kHistogramBuckets && Histogram::BucketUpperBound(fine) <= bound) cumulative += h.counts[fine++];
    Begin(name, "_bucket", labels, "le", NanosAsSeconds(bound));
    absl::StrAppend(&out_, cumulative, "\n");
  }
  // `count` is the sum of the fine buckets, so +Inf and _count agree even mid-update.
  Begin(name, "_bucket", labels, "le", "+Inf");
  absl::StrAppend(&out_, h.count, "\n");
  Begin(name, "_sum", labels, "", "");
  absl::StrAppend(&out_, NanosAsSeconds(h.sum), "\n");
  Begin(name, "_count", labels, "", "");
  absl::StrAppend(&out_, h.count, "\n");
}

}  // namespace percore
