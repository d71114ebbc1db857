// pipeline/options: per-job options (series filters, strict mode, how sessions that already exist
// in XNAT are treated). Checked completely when a submit arrives (job_options_from), stored with
// the job as JSON (to_json) and decoded again by the pipeline (parse_job_options).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace p2x::pipeline {

struct JobOptions {
  std::string modality;             // only series of this modality (empty: all)
  std::string series_description;   // glob (* ?), case-insensitive (empty: all)
  bool strict = false;              // label inconsistencies fail items instead of warning
  bool skip_existing = false;       // rows whose session exists in XNAT were skipped at submit
  bool append = false;              // append into sessions that already exist in XNAT
  // The project may hold identifiable data: no check for an anonymisation script (recorded on
  // the job, shown by status).
  bool no_anonymisation_check = false;
};

// A job option of the wrong type or out of range; what() names the option and what it must be.
struct OptionError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Whether `key` is one of the job options above (the JSON keys are the member names).
bool is_job_option(std::string_view key);

// The job options among `args` (a submit's arguments or a stored job's options); other keys
// are ignored (the submit command checks for unknown ones). Throws OptionError on the first
// bad value.
JobOptions job_options_from(const nlohmann::json& args);

// The stored form: only the options that differ from their defaults.
nlohmann::json to_json(const JobOptions& options);

// Decodes a job's stored options. A job whose options cannot be used (stored by hand or by an
// older daemon) throws PermanentError (pipeline/steps.hpp) naming the bad option, so its items
// fail with that reason instead of being retried.
JobOptions parse_job_options(const std::string& json_text);

// Case-insensitive glob match with '*' and '?'.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace p2x::pipeline
