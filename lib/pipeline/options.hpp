// pipeline/options: per-job options (filters, strict mode) decoded from the job's JSON.
#pragma once

#include <string>
#include <string_view>

namespace p2x::pipeline {

struct JobOptions {
  std::string modality;             // only series of this modality (empty: all)
  std::string series_description;   // glob (* ?), case-insensitive (empty: all)
  bool strict = false;              // label inconsistencies fail items instead of warning
  bool append = false;              // append into sessions that already exist in XNAT
};

JobOptions parse_job_options(const std::string& json_text);

// Case-insensitive glob match with '*' and '?'.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace p2x::pipeline
