#include "services/admin/text_table.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace percore {

std::string TextTable::Render() const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows_) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      if (c > 0) line += "  ";
      const std::string pad(widths[c] - row[c].size(), ' ');
      line += c < align_.size() && align_[c] == 'l' ? row[c] + pad : pad + row[c];
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) return absl::StrCat("-", HumanDuration(-d));
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  if (ns < 1'000) return absl::StrCat(ns, "ns");
  if (ns < 1'000'000) return absl::StrFormat("%.1fus", static_cast<double>(ns) / 1e3);
  if (ns < 1'000'000'000) return absl::StrFormat("%.2fms", static_cast<double>(ns) / 1e6);
  if (ns < 60'000'000'000) return absl::StrFormat("%.2fs", static_cast<double>(ns) / 1e9);
  const int64_t s = ns / 1'000'000'000;
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
}

std::string HumanBytes(double bytes) {
  if (bytes < 1024) return absl::StrFormat("%.0fB", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  int u = -1;
  while (bytes >= 1024 && u < 3) {
    bytes /= 1024;
    ++u;
  }
  return absl::StrFormat(bytes < 10 ? "%.2f%s" : bytes < 100 ? "%.1f%s" : "%.0f%s", bytes, units[u]);
}

std::string HumanCount(double n) {
  if (n < 1000) return absl::StrFormat(n < 10 && n != static_cast<int64_t>(n) ? "%.1f" : "%.0f", n);
  const char* units[] = {"k", "M", "G", "T"};
  int u = -1;
  while (n >= 1000 && u < 3) {
    n /= 1000;
    ++u;
  }
  return absl::StrFormat(n < 10 ? "%.2f%s" : n < 100 ? "%.1f%s" : "%.0f%s", n, units[u]);
}

}  // namespace percore
