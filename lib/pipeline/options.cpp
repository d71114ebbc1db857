// pipeline/options: per-job options checked, stored and decoded (see options.hpp).
#include "pipeline/options.hpp"

#include <algorithm>
#include <array>

#include "pipeline/steps.hpp"
#include "text/text.hpp"

namespace p2x::pipeline {

using nlohmann::json;

namespace {

constexpr std::array<std::string_view, 6> kOptionKeys{"modality", "series_description", "strict",
                                                       "skip_existing", "append",
                                                       "no_anonymisation_check"};
constexpr std::size_t kMaxModality = 16;            // DICOM CS
constexpr std::size_t kMaxSeriesDescription = 128;  // LO is 64 characters; a glob may add a few

std::string type_name(const json& v) { return v.is_null() ? "null" : v.type_name(); }

bool flag(const json& args, const char* key) {
  if (!args.contains(key)) return false;
  const json& v = args.at(key);
  if (!v.is_boolean()) {
    throw OptionError(std::string("\"") + key + "\" must be true or false, not " + type_name(v));
  }
  return v.get<bool>();
}

std::string text_option(const json& args, const char* key, std::size_t max_length) {
  if (!args.contains(key)) return {};
  const json& v = args.at(key);
  if (!v.is_string()) {
    throw OptionError(std::string("\"") + key + "\" must be text, not " + type_name(v));
  }
  const std::string& s = v.get_ref<const std::string&>();
  if (s.size() > max_length) {
    throw OptionError(std::string("\"") + key + "\" is longer than " + std::to_string(max_length) +
                      " characters");
  }
  const bool printable = std::all_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  });
  if (!printable) throw OptionError(std::string("\"") + key + "\" holds control characters");
  return s;
}

std::string modality_option(const json& args) {
  std::string m = text_option(args, "modality", kMaxModality);
  const bool code_string = std::all_of(m.begin(), m.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == ' ';
  });
  if (!code_string) {
    throw OptionError("\"modality\" \"" + m +
                      "\" is not a DICOM modality (letters, digits, _ and space, e.g. MR)");
  }
  return m;
}

}  // namespace

bool is_job_option(std::string_view key) {
  return std::find(kOptionKeys.begin(), kOptionKeys.end(), key) != kOptionKeys.end();
}

JobOptions job_options_from(const json& args) {
  if (!args.is_object()) throw OptionError("the job options must be a JSON object");
  JobOptions o;
  o.modality = modality_option(args);
  o.series_description = text_option(args, "series_description", kMaxSeriesDescription);
  o.strict = flag(args, "strict");
  o.skip_existing = flag(args, "skip_existing");
  o.append = flag(args, "append");
  o.no_anonymisation_check = flag(args, "no_anonymisation_check");
  if (o.skip_existing && o.append) {
    throw OptionError("\"skip_existing\" and \"append\" exclude each other (skip the rows whose "
                      "session exists in XNAT, or append to those sessions)");
  }
  return o;
}

json to_json(const JobOptions& o) {
  json out = json::object();
  if (!o.modality.empty()) out["modality"] = o.modality;
  if (!o.series_description.empty()) out["series_description"] = o.series_description;
  if (o.strict) out["strict"] = true;
  if (o.skip_existing) out["skip_existing"] = true;
  if (o.append) out["append"] = true;
  if (o.no_anonymisation_check) out["no_anonymisation_check"] = true;
  return out;
}

JobOptions parse_job_options(const std::string& json_text) {
  const json j = json::parse(json_text.empty() ? "{}" : json_text, nullptr, false);
  if (j.is_discarded()) {
    throw PermanentError("the job's stored options are not JSON; cancel the job and submit "
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
