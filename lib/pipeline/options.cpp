#include "pipeline/options.hpp"
#include "text/text.hpp"

#include <cctype>

#include <nlohmann/json.hpp>

namespace p2x::pipeline {

JobOptions parse_job_options(const std::string& json_text) {
  JobOptions o;
  auto j = nlohmann::json::parse(json_text.empty() ? "{}" : json_text, nullptr, false);
  if (!j.is_object()) return o;
  o.modality = j.value("modality", std::string());
  o.series_description = j.value("series_description", std::string());
  o.strict = j.value("strict", false);
  o.append = j.value("append", false);
  return o;
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
