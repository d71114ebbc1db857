// client/watch: `pacs2xnat watch JOB` - live progress until the job finishes.
// On a terminal: one line redrawn in place (bar, verified/failed/total, MB moved, rate, ETA).
// Otherwise: a plain line whenever the counts change. Exit 0 when every study is verified,
// 1 when some failed or were cancelled, 3 when the daemon goes away.
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

}  // namespace p2x::client
