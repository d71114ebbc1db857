// log: process-wide logging set-up on top of spdlog.
//
// init() installs the default spdlog logger with one sink of ours: under systemd (journald owns
// stderr) it sends each record to the journal with structured fields (JOB_ID, ITEM_ID, ...);
// otherwise it writes readable lines to stderr: "<time> [info] [job 7 item 12 acc=ACC1] text".
// Registered secrets are replaced by "***" in every record, including records logged directly
// through spdlog by other modules.
//
// Fields travel with a record through a thread-local slot: the logging functions below set it
// for the duration of the call, and a ScopedFields guard sets defaults for everything one thread
// logs (spdlog::info() calls included) while it works on one item. The logger is synchronous,
// so the sink runs on the logging thread and sees that slot.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace p2x::log {

enum class Level { Trace, Debug, Info, Warn, Error, Critical, Off };

// "trace", "debug", "info", "warn" (or "warning"), "error", "critical", "off".
// Throws std::invalid_argument for anything else.
Level parse_level(std::string_view name);
const char* level_name(Level level);

// Sets up the default spdlog logger (see above). `program` becomes SYSLOG_IDENTIFIER.
// `force_journal` sends to journald even when stderr is not the journal stream (libsystemd
// drops records silently when journald is not running).
// Throws std::invalid_argument for an unknown level. May be called again (e.g. on SIGHUP).
void init(const std::string& program, const std::string& level, bool force_journal = false);
// Changes the level of the default logger.
void set_level(const std::string& level);
// True when stderr is connected to journald (JOURNAL_STREAM matches stderr's dev:ino).
bool stderr_is_journal();

// Structured context for one log record. Zero ids and empty strings are omitted.
struct Fields {
  std::int64_t job_id = 0, item_id = 0;
  std::string accession, pacs, project, subject, session, state;
};

void trace(const Fields& f, std::string_view message);
void debug(const Fields& f, std::string_view message);
void info(const Fields& f, std::string_view message);
void warn(const Fields& f, std::string_view message);
void error(const Fields& f, std::string_view message);
void write(Level level, const Fields& f, std::string_view message);

// Sets thread-local default fields for everything this thread logs until destroyed (restoring
// the previous ones). Fields given to a logging call override non-empty defaults field by field.
class ScopedFields {
 public:
  explicit ScopedFields(const Fields& fields);
  ~ScopedFields();
  ScopedFields(const ScopedFields&) = delete;
  ScopedFields& operator=(const ScopedFields&) = delete;

 private:
  Fields previous_;
};

// Redacts secrets: any registered secret string is replaced by "***" in every message and
// field value written. Empty strings are ignored.
void add_secret(std::string secret);
std::string redact(std::string_view text);

// One record as the sink emits it. `fields` holds exactly what is (or would be) sent to
// journald: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and the non-empty context fields.
struct Record {
  Level level = Level::Info;
  std::string message;  // redacted
  std::map<std::string, std::string> fields;
};

// Readable one-line form used on stderr (without the timestamp):
// "[warn] [job 7 item 12 acc=ACC1 pacs=main] message".
std::string format_text(const Record& record);

// For tests: while set, every record that passes the level filter goes to `capture` instead of
// journald/stderr. Pass an empty function to restore normal output. Requires init().
void set_capture(std::function<void(const Record&)> capture);

}  // namespace p2x::log
