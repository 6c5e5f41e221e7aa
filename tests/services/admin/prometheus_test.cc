// The Prometheus text exposition, parsed line by line, against a real server with traffic.

#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reactor/server.h"
#include "services/admin/prometheus.h"
#include "services/admin/prometheus_writer.h"
#include "services/echo/echo_service.h"
#include "tests/testing/client_socket.h"
#include "tests/testing/deadline.h"

namespace percore::testing {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string labels_text;  // as written, without `le`: identifies a histogram series
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family name -> type
  std::vector<Sample> samples;
};

bool IsNameChar(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

// Parses "name{label="value",...} value" lines and "# TYPE" comments; a malformed line fails
// the test.
Exposition Parse(const std::string& text) {
  Exposition out;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.back(), '\n');
  std::string current_family;
  std::set<std::string> finished_families;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (line.substr(0, 7) == "# TYPE ") {
      std::vector<std::string> parts = absl::StrSplit(line.substr(7), ' ');
      EXPECT_EQ(parts.size(), 2u) << line;
      EXPECT_EQ(out.types.count(parts[0]), 0u) << "family declared twice: " << parts[0];
      out.types[parts[0]] = parts[1];
      if (!current_family.empty()) finished_families.insert(current_family);
      current_family = parts[0];
      continue;
    }
    if (line.substr(0, 7) == "# HELP ") continue;
    EXPECT_NE(line[0], '#') << line;
    Sample s;
    size_t i = 0;
    while (i < line.size() && IsNameChar(line[i], i == 0)) ++i;
    s.name = std::string(line.substr(0, i));
    EXPECT_FALSE(s.name.empty()) << line;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        EXPECT_NE(eq, absl::string_view::npos) << line;
        if (eq == absl::string_view::npos) return out;
        const std::string label(line.substr(i, eq - i));
        EXPECT_EQ(line[eq + 1], '"') << line;
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') ++j;
          value += line[j];
        }
        s.labels[label] = value;
        if (label != "le") s.labels_text += label + "=" + value + ",";
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    EXPECT_EQ(line[i], ' ') << line;
    const absl::string_view value = line.substr(i + 1);
    if (value == "+Inf") {
      s.value = 1e308;
    } else {
      EXPECT_TRUE(absl::SimpleAtod(value, &s.value)) << line;
    }
    // Every sample belongs to the family declared last (families are contiguous).
    EXPECT_EQ(s.name.rfind(current_family, 0), 0u) << s.name << " outside its family " << current_family;
    EXPECT_EQ(finished_families.count(s.name), 0u) << line;
    out.samples.push_back(std::move(s));
  }
  return out;
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.AddService(NewEchoService()).ok());
    absl::StatusOr<ListenerInfo> info = server_.Listen("echo", {"127.0.0.1", 0});
    ASSERT_TRUE(info.ok());
    port_ = info->bound.port();
    ASSERT_TRUE(server_.Start().ok());
  }
  void TearDown() override { server_.Stop(absl::ZeroDuration()); }

  double SumOf(const Exposition& e, const std::string& name) {
    double total = 0;
    for (const Sample& s : e.samples) {
      if (s.name == name) total += s.value;
    }
    return total;
  }

  Server server_{ServerOptions{.loops = 2}};
  uint16_t port_ = 0;
};

TEST_F(PrometheusTest, ExpositionParsesAndAddsUp) {
  const test::Deadline deadline = test::Deadline::In(absl::Seconds(5));
  std::vector<test::ScopedFd> fds;
  const std::string message(250, 'p');
  for (int c = 0; c < 4; ++c) {
    absl::StatusOr<test::ScopedFd> fd = test::ConnectToLoopback(port_, deadline);
    ASSERT_TRUE(fd.ok()) << fd.status();
    for (int m = 0; m < 10; ++m) {
      ASSERT_TRUE(test::WriteAll(fd->get(), message, deadline).ok());
      ASSERT_TRUE(test::ReadExactly(fd->get(), message.size(), deadline).ok());
    }
    fds.push_back(std::move(*fd));
  }
  // bytes_out is counted after the write returns: wait until the text shows all of it.
  Exposition e;
  test::WaitUntil(
      [&] {
        e = Parse(PrometheusText(server_));
        return SumOf(e, "percore_loop_sent_bytes_total") >= 10'000;
      },
      test::Deadline::In(absl::Seconds(5)));
  fds.clear();

  EXPECT_EQ(SumOf(e, "percore_loop_received_bytes_total"), 10'000);
  EXPECT_EQ(SumOf(e, "percore_loop_sent_bytes_total"), 10'000);
  EXPECT_EQ(SumOf(e, "percore_accepted_total"), 4);
  EXPECT_EQ(SumOf(e, "percore_handed_total"), 4);
  EXPECT_EQ(SumOf(e, "percore_loop_connections_handed_in_total"), 4);
  EXPECT_EQ(SumOf(e, "percore_loops"), 2);
  EXPECT_GE(SumOf(e, "percore_service_requests_total"), 40);
  EXPECT_GT(SumOf(e, "percore_process_resident_memory_bytes"), 0);
  // The load signal: every loop's thread has used some CPU; loads are fractions; nothing is
  // waiting to be taken in; round_robin makes no least_loaded placements.
  EXPECT_GT(SumOf(e, "percore_loop_cpu_seconds_total"), 0);
  EXPECT_LE(SumOf(e, "percore_loop_load_ratio"), 2.0);
  EXPECT_EQ(SumOf(e, "percore_handoffs_pending"), 0);
  EXPECT_EQ(SumOf(e, "percore_least_loaded_placements_total"), 0);
  EXPECT_EQ(SumOf(e, "percore_loop_migrations_in_total"), 0);
  EXPECT_EQ(SumOf(e, "percore_loop_migrations_out_total"), 0);

  // Counters end in _total; every family has a known type; per-loop families carry `loop`.
  for (const auto& [name, type] : e.types) {
    EXPECT_EQ(name.rfind("percore_", 0), 0u) << name;
    if (type == "counter") {
      EXPECT_TRUE(absl::EndsWith(name, "_total")) << name;
    } else {
      EXPECT_TRUE(type == "gauge" || type == "histogram") << name << " " << type;
    }
  }
  std::set<std::string> loops;
  std::set<std::string> reasons;
  for (const Sample& s : e.samples) {
    if (s.name == "percore_loop_iterations_total") loops.insert(s.labels.at("loop"));
    if (s.name == "percore_loop_connections_closed_total") reasons.insert(s.labels.at("reason"));
    if (s.name.rfind("percore_service_", 0) == 0) {
      EXPECT_EQ(s.labels.count("service"), 1u) << s.name;
    }
  }
  EXPECT_EQ(loops, (std::set<std::string>{"0", "1"}));
  EXPECT_EQ(reasons.size(), static_cast<size_t>(kCloseReasonCount));
  EXPECT_EQ(reasons.count("admin_close"), 1u);

  // Histograms: per series, ascending le, cumulative counts, +Inf last and equal to _count.
  int histogram_series = 0;
  for (const auto& [family, type] : e.types) {
    if (type != "histogram") continue;
    std::map<std::string, std::vector<const Sample*>> buckets;
    std::map<std::string, double> counts;
    std::map<std::string, double> sums;
    for (const Sample& s : e.samples) {
      if (s.name == family + "_bucket") buckets[s.labels_text].push_back(&s);
      if (s.name == family + "_count") counts[s.labels_text] = s.value;
      if (s.name == family + "_sum") sums[s.labels_text] = s.value;
    }
    EXPECT_FALSE(buckets.empty()) << family;
    for (const auto& [series, list] : buckets) {
      SCOPED_TRACE(family + "{" + series + "}");
      ++histogram_series;
      ASSERT_GE(list.size(), 2u);
      EXPECT_EQ(list.back()->labels.at("le"), "+Inf");
      double previous_le = -1;
      double previous_count = 0;
      for (const Sample* b : list) {
        double le = 1e308;
        if (b->labels.at("le") != "+Inf") {
          ASSERT_TRUE(absl::SimpleAtod(b->labels.at("le"), &le));
        }
        EXPECT_GT(le, previous_le);
        EXPECT_GE(b->value, previous_count);
        previous_le = le;
        previous_count = b->value;
      }
      ASSERT_EQ(counts.count(series), 1u);
      EXPECT_EQ(list.back()->value, counts[series]);
      ASSERT_EQ(sums.count(series), 1u);
      EXPECT_GE(sums[series], 0);
    }
  }
  // Two loops x (iteration, handler) + two loops x echo latency.
  EXPECT_EQ(histogram_series, 6);
  double iterations = 0;
  for (const Sample& s : e.samples) {
    if (s.name == "percore_loop_iteration_seconds_count") iterations += s.value;
  }
  EXPECT_GT(iterations, 0);
}

TEST_F(PrometheusTest, WorksBeforeTrafficAndAfterStop) {
  const Exposition fresh = Parse(PrometheusText(server_));
  EXPECT_EQ(SumOf(fresh, "percore_accepted_total"), 0);
  server_.Stop(absl::ZeroDuration());
  const Exposition stopped = Parse(PrometheusText(server_));
  EXPECT_EQ(SumOf(stopped, "percore_loops"), 2);
}

TEST(PrometheusWriterTest, SecondsAreExactDecimals) {
  EXPECT_EQ(NanosAsSeconds(0), "0");
  EXPECT_EQ(NanosAsSeconds(1), "0.000000001");
  EXPECT_EQ(NanosAsSeconds(1'000), "0.000001");
  EXPECT_EQ(NanosAsSeconds(2'500'000), "0.0025");
  EXPECT_EQ(NanosAsSeconds(1'500'000'000), "1.5");
  EXPECT_EQ(NanosAsSeconds(10'000'000'000), "10");
  EXPECT_EQ(NanosAsSeconds(18'446'744'073'709'551'615u), "18446744073.709551615");
}

TEST(PrometheusWriterTest, ThousandthsAreExactDecimals) {
  PrometheusWriter w;
  w.SampleThousandths("r", {}, 0);
  w.SampleThousandths("r", {}, 250);
  w.SampleThousandths("r", {}, 1000);
  w.SampleThousandths("r", {}, 7);
  EXPECT_EQ(w.Take(), "r 0\nr 0.25\nr 1\nr 0.007\n");
}

TEST(PrometheusWriterTest, EscapesLabelValuesAndHelp) {
  PrometheusWriter w;
  w.Family("m", "gauge", "line one\nback\\slash \"quoted\"");
  w.Sample("m", {{"a", "q\"uote"}, {"b", "back\\slash\nnl"}}, 7);
  w.Sample("m", {}, 8);
  EXPECT_EQ(w.Take(),
            "# HELP m line one\\nback\\\\slash \"quoted\"\n"
            "# TYPE m gauge\n"
            "m{a=\"q\\\"uote\",b=\"back\\\\slash\\nnl\"} 7\n"
            "m 8\n");
}

TEST(PrometheusWriterTest, HistogramBucketsAreCumulativeInSeconds) {
  Histogram h;
  h.Record(500);            // <= 1us
  h.Record(900);            // <= 1us
  h.Record(3'000'000);      // <= 5ms
  h.Record(20'000'000'000); // > 10s: only +Inf
  PrometheusWriter w;
  w.HistogramSeconds("h", {{"loop", "0"}}, h.Snapshot());
  const std::string text = w.Take();
  EXPECT_NE(text.find("h_bucket{loop=\"0\",le=\"0.000001\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{loop=\"0\",le=\"0.0025\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{loop=\"0\",le=\"0.005\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{loop=\"0\",le=\"10\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_bucket{loop=\"0\",le=\"+Inf\"} 4\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_sum{loop=\"0\"} 20.0030014\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_count{loop=\"0\"} 4\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace percore::testing
