// jobopts: the one schema of what a submit carries — the job options (series filters, strict
// mode, how sessions that already exist in XNAT are treated) and the submit's envelope (project,
// PACS, the CSV) — with each argument's key, type, default (false / empty), limits, command-line
// flag and help written once, in the table in jobopts.cpp.
//
// The CLI adds its submit flags from the table and sends to_json(SubmitArgs); the daemon checks
// a submit completely with submit_args_from, stores to_json(JobOptions) with the job, and the
// pipeline decodes that again (job_options_from, through pipeline/options.hpp). Tests build
// their requests with the same functions.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace p2x::jobopts {

struct JobOptions {
  std::string modality;            // only series of this modality (empty: all)
  std::string series_description;  // glob (* ?), case-insensitive (empty: all)
  bool strict = false;             // label inconsistencies fail items instead of warning
  bool skip_existing = false;      // rows whose session exists in XNAT were skipped at submit
  bool append = false;             // append into sessions that already exist in XNAT
  // The project may hold identifiable data: no check for an anonymisation script (recorded on
  // the job, shown by status).
  bool no_anonymisation_check = false;
};

// What a submit (or a dry run) sends: the envelope and the job options.
struct SubmitArgs {
  std::string project;           // XNAT project ID
  std::string pacs;              // PACS name from the daemon's configuration
  std::string csv_name;          // the CSV's file name as the job records it (empty: "stdin")
  std::string csv_base64;        // the CSV's bytes, base64 (ipc::bytes_value)
  bool allow_duplicate = false;  // queue it although the same CSV's job is still active
  JobOptions options;
};

// One argument of a submit. Exactly one of flag_in / text_in is set.
struct Spec {
  const char* key;                // the JSON key (submit arguments, a job's stored options)
  const char* cli;                // the command-line flag(s), e.g. "--project,-p"; nullptr: none
  const char* help;               // the flag's help
  bool job_option;                // stored with the job (else part of the envelope only)
  bool required;                  // a submit without it is refused
  std::size_t max_length;         // text: at most this many bytes (0: no limit of its own)
  bool printable;                 // text: no control characters
  bool* (*flag_in)(SubmitArgs&);  // a true/false argument (default false)
  std::string* (*text_in)(SubmitArgs&);     // a text argument (default empty)
  void (*check)(const std::string& value);  // text: a further rule (throws OptionError)
  const char* excludes;                     // key of an argument this one cannot be combined with
  const char* excludes_why;                 // why, for the message (in parentheses)
};

// Every submit argument, in the order the CLI lists them.
const std::vector<Spec>& specs();

// An argument of the wrong type or out of range (Value: what() names it and what it must be,
// e.g. "\"strict\" must be true or false, not string"), a required one missing (Missing:
// "submit needs \"project\""), or a key no version of the schema knows (Unknown).
struct OptionError : std::invalid_argument {
  enum Kind { Value, Missing, Unknown };
  OptionError(Kind kind, const std::string& what) : std::invalid_argument(what), kind(kind) {}
  Kind kind;
};

// Whether `key` is one of the job options (the JSON keys are the JobOptions member names).
bool is_job_option(std::string_view key);

// The job options among `args` (a submit's arguments or a stored job's options); other keys
// are ignored. Throws OptionError on the first bad value or a pair that excludes each other.
JobOptions job_options_from(const nlohmann::json& args);

// A whole submit: no unknown keys, the required ones present, every value of its type and
// within its limits. Throws OptionError.
SubmitArgs submit_args_from(const nlohmann::json& args);

// The stored form: only the options that differ from their defaults.
nlohmann::json to_json(const JobOptions& options);
// The request form: the envelope, and the options that differ from their defaults.
nlohmann::json to_json(const SubmitArgs& args);

}  // namespace p2x::jobopts
