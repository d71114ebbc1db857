// pipeline/options: a stored job's options decoded for the pipeline, and the glob (see
// options.hpp).
#include "pipeline/options.hpp"

#include "pipeline/steps.hpp"
#include "text/text.hpp"

namespace p2x::pipeline {

using nlohmann::json;

JobOptions parse_job_options(const std::string& json_text) {
  const json j = json::parse(json_text.empty() ? "{}" : json_text, nullptr, false);
  if (j.is_discarded()) {
    throw PermanentError(
        "the job's stored options are not JSON; cancel the job and submit "
        "its CSV again");
  }
  try {
    return job_options_from(j);
  } catch (const OptionError& e) {
    throw PermanentError(std::string("the job's stored options cannot be used: ") + e.what() +
                         "; cancel the job and submit its CSV again");
  }
}

bool glob_match(std::string_view p, std::string_view t) {
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  auto eq = [](char a, char b) { return text::to_lower(a) == text::to_lower(b); };
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || (p[pi] != '*' && eq(p[pi], t[ti])))) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace p2x::pipeline
