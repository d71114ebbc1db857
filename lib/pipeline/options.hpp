// pipeline/options: a job's options as the pipeline reads them. The options themselves (keys,
// types, defaults, limits) are defined once in jobopts/jobopts.hpp, shared with the CLI and the
// daemon; here the pipeline's decoding of a stored job's options, and the series-description
// glob.
#pragma once

#include <string>
#include <string_view>

#include "jobopts/jobopts.hpp"

namespace p2x::pipeline {

using JobOptions = jobopts::JobOptions;
using jobopts::is_job_option;
using jobopts::job_options_from;
using jobopts::OptionError;
using jobopts::to_json;

// Decodes a job's stored options. A job whose options cannot be used (stored by hand or by an
// older daemon) throws PermanentError (pipeline/steps.hpp) naming the bad option, so its items
// fail with that reason instead of being retried.
JobOptions parse_job_options(const std::string& json_text);

// Case-insensitive glob match with '*' and '?'.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace p2x::pipeline
