// log: logger set-up, context fields, secret redaction and test capture.
#include "log/log.hpp"
#include "log/sink.hpp"
#include "text/text.hpp"

#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <vector>

namespace p2x::log {
namespace {

struct Secrets {
  std::shared_mutex mutex;
  std::vector<std::string> values;  // longest first, so a secret containing another goes first
};

Secrets& secrets() {
  static Secrets s;
  return s;
}

struct Capture {
  std::mutex mutex;
  std::function<void(const Record&)> function;
};

Capture& capture_state() {
  static Capture c;
  return c;
}

thread_local Fields t_scoped;
thread_local const Fields* t_call = nullptr;

// Points t_call at the fields of the logging call for its duration.
class CallFields {
 public:
  explicit CallFields(const Fields& f) : previous_(t_call) { t_call = &f; }
  ~CallFields() { t_call = previous_; }
  CallFields(const CallFields&) = delete;
  CallFields& operator=(const CallFields&) = delete;

 private:
  const Fields* previous_;
};

void override_with(Fields& base, const Fields& f) {
  if (f.job_id != 0) base.job_id = f.job_id;
  if (f.item_id != 0) base.item_id = f.item_id;
  if (!f.accession.empty()) base.accession = f.accession;
  if (!f.pacs.empty()) base.pacs = f.pacs;
  if (!f.project.empty()) base.project = f.project;
  if (!f.subject.empty()) base.subject = f.subject;
  if (!f.session.empty()) base.session = f.session;
  if (!f.state.empty()) base.state = f.state;
}

}  // namespace

namespace detail {

Fields current_fields() {
  Fields f = t_scoped;
  if (t_call != nullptr) override_with(f, *t_call);
  return f;
}

std::function<void(const Record&)> current_capture() {
  Capture& c = capture_state();
  std::lock_guard lock(c.mutex);
  return c.function;
}

}  // namespace detail

Level parse_level(std::string_view name) {
  const std::string lower = text::to_lower(name);
  if (lower == "trace") return Level::Trace;
  if (lower == "debug") return Level::Debug;
  if (lower == "info") return Level::Info;
  if (lower == "warn" || lower == "warning") return Level::Warn;
  if (lower == "error") return Level::Error;
  if (lower == "critical") return Level::Critical;
  if (lower == "off") return Level::Off;
  throw std::invalid_argument("unknown log level \"" + std::string(name) +
                              "\" (expected trace, debug, info, warn, error, critical or off)");
}

const char* level_name(Level level) {
  switch (level) {
    case Level::Trace:
      return "trace";
    case Level::Debug:
      return "debug";
    case Level::Info:
      return "info";
    case Level::Warn:
      return "warn";
    case Level::Error:
      return "error";
    case Level::Critical:
      return "critical";
    case Level::Off:
      break;
  }
  return "off";
}

bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  char* end = nullptr;
  unsigned long long dev = std::strtoull(env, &end, 10);
  if (end == env || *end != ':') return false;
  const char* ino_text = end + 1;
  unsigned long long ino = std::strtoull(ino_text, &end, 10);
  if (end == ino_text || *end != '\0') return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

void init(const std::string& program, const std::string& level, bool force_journal) {
  Level parsed = parse_level(level);
  bool journal = force_journal || stderr_is_journal();
  auto sink = std::make_shared<detail::Sink>(program, journal);
  sink->set_level(spdlog::level::trace);
  auto logger = std::make_shared<spdlog::logger>("p2x", std::move(sink));
  logger->set_level(detail::to_spdlog(parsed));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

void set_level(const std::string& level) {
  spdlog::default_logger_raw()->set_level(detail::to_spdlog(parse_level(level)));
}

void write(Level level, const Fields& f, std::string_view message) {
  if (level == Level::Off) return;
  spdlog::logger* logger = spdlog::default_logger_raw();
  auto spd_level = detail::to_spdlog(level);
  if (!logger->should_log(spd_level)) return;
  CallFields scope(f);
  logger->log(spd_level, spdlog::string_view_t(message.data(), message.size()));
}

void trace(const Fields& f, std::string_view message) {
  write(Level::Trace, f, message);
}
void debug(const Fields& f, std::string_view message) {
  write(Level::Debug, f, message);
}
void info(const Fields& f, std::string_view message) {
  write(Level::Info, f, message);
}
void warn(const Fields& f, std::string_view message) {
  write(Level::Warn, f, message);
}
void error(const Fields& f, std::string_view message) {
  write(Level::Error, f, message);
}

ScopedFields::ScopedFields(const Fields& fields) : previous_(t_scoped) {
  t_scoped = fields;
}
ScopedFields::~ScopedFields() {
  t_scoped = std::move(previous_);
}

void add_secret(std::string secret) {
  if (secret.empty()) return;
  Secrets& s = secrets();
  std::unique_lock lock(s.mutex);
  if (std::find(s.values.begin(), s.values.end(), secret) != s.values.end()) return;
  auto at = std::find_if(s.values.begin(), s.values.end(),
                         [&](const std::string& v) { return v.size() < secret.size(); });
  s.values.insert(at, std::move(secret));
}

std::string redact(std::string_view text) {
  std::string out(text);
  Secrets& s = secrets();
  std::shared_lock lock(s.mutex);
  for (const auto& secret : s.values) {
    for (std::size_t pos = out.find(secret); pos != std::string::npos;
         pos = out.find(secret, pos + 3)) {
      out.replace(pos, secret.size(), "***");
    }
  }
  return out;
}

std::string format_text(const Record& record) {
  static const std::pair<const char*, const char*> kShown[] = {
      {"JOB_ID", "job "},      {"ITEM_ID", "item "},    {"ACCESSION", "acc="},
      {"PACS", "pacs="},       {"PROJECT", "project="}, {"SUBJECT", "subject="},
      {"SESSION", "session="}, {"STATE", "state="}};
  std::string context;
  for (const auto& [key, label] : kShown) {
    auto it = record.fields.find(key);
    if (it == record.fields.end()) continue;
    if (!context.empty()) context += ' ';
    context += label;
    bool quote = it->second.find_first_of(" ]\"") != std::string::npos;
    context += quote ? "\"" + it->second + "\"" : it->second;
  }
  std::string line = "[";
  line += level_name(record.level);
  line += "] ";
  if (!context.empty()) line += "[" + context + "] ";
  line += record.message;
  return line;
}

void set_capture(std::function<void(const Record&)> capture) {
  Capture& c = capture_state();
  std::lock_guard lock(c.mutex);
  c.function = std::move(capture);
}

}  // namespace p2x::log
