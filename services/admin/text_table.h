#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace percore {

// A plain-text table with a header row; columns are as wide as their widest cell, two spaces
// apart. `align` has one letter per column, 'l' (left) or 'r' (right); columns past its end
// are right-aligned (they hold figures), and by default only the first is left-aligned.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header, std::string align = "l")
      : align_(std::move(align)), rows_{std::move(header)} {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::string align_;
  std::vector<std::vector<std::string>> rows_;
};

// Short human forms: "850ns", "12.3us", "4.50ms", "1.20s", "3m05s", "2h03m".
std::string HumanDuration(absl::Duration d);
// "512B", "1.5KiB", "12.0MiB", "3.20GiB".
std::string HumanBytes(double bytes);
// "0", "950", "12.3k", "4.56M", "7.89G": for rates.
std::string HumanCount(double n);

}  // namespace percore
