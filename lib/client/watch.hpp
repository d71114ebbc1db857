// client/watch: `pacs2xnat watch JOB` - live progress until the job finishes.
// On a terminal: one line redrawn in place (bar, verified/failed/total, MB moved, rate, ETA).
// Otherwise: a plain line whenever the counts change. Exit 0 when every study is verified,
// 1 when some failed or were cancelled, 3 when the daemon goes away.
// WatchView turns the successive status answers into that output without a socket or a clock.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

namespace p2x::client {

int watch_job(const std::string& socket, std::int64_t job_id, bool as_json, std::ostream& out,
              std::ostream& err, double interval_s = 1.0);

// One progress line for a job summary; `rate_bps` and `eta_s` < 0 when unknown.
std::string progress_line(const nlohmann::json& job, double rate_bps, double eta_s, int width);

// The output of `watch`, fed one job summary (a status answer's jobs[0]) at a time.
class WatchView {
 public:
  enum class Mode {
    Json,      // one JSON object per answer
    Terminal,  // one line redrawn in place, with a bar, the rate and the ETA
    Lines,     // a plain line whenever it changes
  };
  explicit WatchView(Mode mode) : mode_(mode) {}
  // The text to print for `job`, seen `elapsed_s` seconds after the first answer ("" when
  // nothing changed).
  std::string update(const nlohmann::json& job, double elapsed_s);
  bool finished() const { return finished_; }
  // Once finished: kOk when every study was verified, kRefused when some failed or were cancelled.
  int exit_code() const { return exit_code_; }

 private:
  Mode mode_;
  double start_bytes_ = -1;
  std::int64_t start_done_ = -1;
  std::string last_;
  bool finished_ = false;
  int exit_code_ = 0;
};

}  // namespace p2x::client
