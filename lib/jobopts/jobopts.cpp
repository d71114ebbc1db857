// jobopts: the table of submit arguments and the checks, encoding and decoding it drives (see
// jobopts.hpp).
#include "jobopts/jobopts.hpp"

#include <algorithm>

namespace p2x::jobopts {

using nlohmann::json;

namespace {

constexpr std::size_t kMaxModality = 16;            // DICOM CS
constexpr std::size_t kMaxSeriesDescription = 128;  // LO is 64 characters; a glob may add a few
constexpr std::size_t kMaxCsvName = 255;            // a file name

void modality_rule(const std::string& m) {
  const bool code_string = std::all_of(m.begin(), m.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == ' ';
  });
  if (!code_string) {
    throw OptionError(OptionError::Value,
                      "\"modality\" \"" + m +
                          "\" is not a DICOM modality (letters, digits, _ and space, e.g. MR)");
  }
}

// Where each argument lives in SubmitArgs (captureless, so they fit the table's pointers).
std::string* project_in(SubmitArgs& a) {
  return &a.project;
}
std::string* pacs_in(SubmitArgs& a) {
  return &a.pacs;
}
std::string* csv_name_in(SubmitArgs& a) {
  return &a.csv_name;
}
std::string* csv_base64_in(SubmitArgs& a) {
  return &a.csv_base64;
}
bool* allow_duplicate_in(SubmitArgs& a) {
  return &a.allow_duplicate;
}
std::string* modality_in(SubmitArgs& a) {
  return &a.options.modality;
}
std::string* series_description_in(SubmitArgs& a) {
  return &a.options.series_description;
}
bool* strict_in(SubmitArgs& a) {
  return &a.options.strict;
}
bool* skip_existing_in(SubmitArgs& a) {
  return &a.options.skip_existing;
}
bool* append_in(SubmitArgs& a) {
  return &a.options.append;
}
bool* no_anonymisation_check_in(SubmitArgs& a) {
  return &a.options.no_anonymisation_check;
}

// {key, cli, help, job_option, required, max_length, printable, flag_in, text_in, check,
//  excludes, excludes_why}
const std::vector<Spec> kSpecs{
    {"project", "--project,-p", "XNAT project ID", false, true, 0, false, nullptr, project_in,
     nullptr, nullptr, nullptr},
    {"pacs", "--pacs", "PACS name from the daemon's configuration", false, true, 0, false, nullptr,
     pacs_in, nullptr, nullptr, nullptr},
    {"csv_name", nullptr, "", false, false, kMaxCsvName, true, nullptr, csv_name_in, nullptr,
     nullptr, nullptr},
    {"csv_base64", nullptr, "", false, true, 0, false, nullptr, csv_base64_in, nullptr, nullptr,
     nullptr},
    {"modality", "--modality", "only series of this modality (e.g. MR)", true, false, kMaxModality,
     true, nullptr, modality_in, modality_rule, nullptr, nullptr},
    {"series_description", "--series-description",
     "only series whose description matches this pattern (* and ? wildcards)", true, false,
     kMaxSeriesDescription, true, nullptr, series_description_in, nullptr, nullptr, nullptr},
    {"strict", "--strict", "label inconsistencies are errors, not warnings", true, false, 0, false,
     strict_in, nullptr, nullptr, nullptr, nullptr},
    {"skip_existing", "--skip-existing", "skip rows whose session label already exists in XNAT",
     true, false, 0, false, skip_existing_in, nullptr, nullptr, nullptr, nullptr},
    {"append", "--append", "append to sessions that already exist in XNAT", true, false, 0, false,
     append_in, nullptr, nullptr, "skip_existing",
     "skip the rows whose session exists in XNAT, or append to those sessions"},
    {"allow_duplicate", "--allow-duplicate",
     "queue the CSV even though a job made from the same file for the same project is still "
     "active",
     false, false, 0, false, allow_duplicate_in, nullptr, nullptr, nullptr, nullptr},
    {"no_anonymisation_check", "--no-anonymisation-check",
     "do not require an enabled anonymisation script in XNAT (for a project meant to hold "
     "identifiable data; recorded on the job)",
     true, false, 0, false, no_anonymisation_check_in, nullptr, nullptr, nullptr, nullptr},
};

std::string type_name(const json& v) {
  return v.is_null() ? "null" : v.type_name();
}

std::string quoted(const char* key) {
  return std::string("\"") + key + "\"";
}

void read_flag(const Spec& spec, const json& v, SubmitArgs& out) {
  if (!v.is_boolean()) {
    throw OptionError(OptionError::Value,
                      quoted(spec.key) + " must be true or false, not " + type_name(v));
  }
  *spec.flag_in(out) = v.get<bool>();
}

void read_text(const Spec& spec, const json& v, SubmitArgs& out) {
  if (!v.is_string()) {
    throw OptionError(OptionError::Value, quoted(spec.key) + " must be text, not " + type_name(v));
  }
  const std::string& s = v.get_ref<const std::string&>();
  if (spec.max_length > 0 && s.size() > spec.max_length) {
    throw OptionError(OptionError::Value, quoted(spec.key) + " is longer than " +
                                              std::to_string(spec.max_length) + " characters");
  }
  const bool printable = std::all_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
  });
  if (spec.printable && !printable) {
    throw OptionError(OptionError::Value, quoted(spec.key) + " holds control characters");
  }
  if (spec.check) spec.check(s);
  *spec.text_in(out) = s;
}

bool is_set(const Spec& spec, SubmitArgs& a) {
  return spec.flag_in ? *spec.flag_in(a) : !spec.text_in(a)->empty();
}

// Reads the arguments the table names (the job options only, or all); checks exclusions.
void read(const json& args, bool job_options_only, SubmitArgs& out) {
  for (const Spec& spec : kSpecs) {
    if (job_options_only && !spec.job_option) continue;
    if (!args.contains(spec.key)) {
      if (spec.required)
        throw OptionError(OptionError::Missing, "submit needs " + quoted(spec.key));
      continue;
    }
    const json& v = args.at(spec.key);
    spec.flag_in ? read_flag(spec, v, out) : read_text(spec, v, out);
  }
  for (const Spec& spec : kSpecs) {
    if (!spec.excludes || !is_set(spec, out)) continue;
    const auto other = std::find_if(kSpecs.begin(), kSpecs.end(), [&](const Spec& s) {
      return std::string_view(s.key) == spec.excludes;
    });
    if (other != kSpecs.end() && is_set(*other, out)) {
      throw OptionError(OptionError::Value, quoted(other->key) + " and " + quoted(spec.key) +
                                                " exclude each other (" + spec.excludes_why + ")");
    }
  }
}

json encode(const SubmitArgs& args, bool job_options_only) {
  // The table's accessors serve reading and writing; here they only read (and a CSV's base64
  // text is not copied once more).
  SubmitArgs& a = const_cast<SubmitArgs&>(args);
  json out = json::object();
  for (const Spec& spec : kSpecs) {
    if (job_options_only && !spec.job_option) continue;
    if (spec.flag_in) {
      if (*spec.flag_in(a)) out[spec.key] = true;
    } else if (spec.required || !spec.text_in(a)->empty()) {
      out[spec.key] = *spec.text_in(a);
    }
  }
  return out;
}

}  // namespace

const std::vector<Spec>& specs() {
  return kSpecs;
}

bool is_job_option(std::string_view key) {
  return std::any_of(kSpecs.begin(), kSpecs.end(),
                     [&](const Spec& s) { return s.job_option && key == s.key; });
}

JobOptions job_options_from(const json& args) {
  if (!args.is_object()) {
    throw OptionError(OptionError::Value, "the job options must be a JSON object");
  }
  SubmitArgs a;
  read(args, true, a);
  return a.options;
}

SubmitArgs submit_args_from(const json& args) {
  if (!args.is_object()) {
    throw OptionError(OptionError::Value, "the submit arguments must be a JSON object");
  }
  for (const auto& [key, value] : args.items()) {
    const bool known =
        std::any_of(kSpecs.begin(), kSpecs.end(), [&](const Spec& s) { return key == s.key; });
    if (!known) {
      throw OptionError(OptionError::Unknown, "unknown submit option \"" + key.substr(0, 64) +
                                                  "\" (is the CLI newer than the daemon?)");
    }
  }
  SubmitArgs a;
  read(args, false, a);
  return a;
}

json to_json(const JobOptions& options) {
  SubmitArgs a;
  a.options = options;
  return encode(a, true);
}

json to_json(const SubmitArgs& args) {
  return encode(args, false);
}

}  // namespace p2x::jobopts
