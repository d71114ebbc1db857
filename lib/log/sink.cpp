// log/sink: turns one spdlog message into a Record and writes it to journald or stderr.
#include "log/sink.hpp"

// Without this, sd_journal_sendv() would add CODE_FILE/LINE/FUNC pointing at this file.
#define SD_JOURNAL_SUPPRESS_LOCATION 1
#include <systemd/sd-journal.h>
#include <sys/uio.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <vector>

namespace p2x::log::detail {
namespace {

void put(std::map<std::string, std::string>& fields, const char* key, const std::string& value) {
  if (!value.empty()) fields[key] = redact(value);
}

void put(std::map<std::string, std::string>& fields, const char* key, std::int64_t value) {
  if (value != 0) fields[key] = std::to_string(value);
}

}  // namespace

Level from_spdlog(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return Level::Trace;
    case spdlog::level::debug:
      return Level::Debug;
    case spdlog::level::info:
      return Level::Info;
    case spdlog::level::warn:
      return Level::Warn;
    case spdlog::level::err:
      return Level::Error;
    case spdlog::level::critical:
      return Level::Critical;
    default:
      return Level::Off;
  }
}

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::Trace:
      return spdlog::level::trace;
    case Level::Debug:
      return spdlog::level::debug;
    case Level::Info:
      return spdlog::level::info;
    case Level::Warn:
      return spdlog::level::warn;
    case Level::Error:
      return spdlog::level::err;
    case Level::Critical:
      return spdlog::level::critical;
    case Level::Off:
      break;
  }
  return spdlog::level::off;
}

int syslog_priority(Level level) {
  switch (level) {
    case Level::Trace:
    case Level::Debug:
      return 7;  // LOG_DEBUG
    case Level::Info:
      return 6;  // LOG_INFO
    case Level::Warn:
      return 4;  // LOG_WARNING
    case Level::Error:
      return 3;  // LOG_ERR
    case Level::Critical:
    case Level::Off:
      break;
  }
  return 2;  // LOG_CRIT
}

Record make_record(const spdlog::details::log_msg& msg, const std::string& program) {
  Record r;
  r.level = from_spdlog(msg.level);
  r.message = redact(std::string_view(msg.payload.data(), msg.payload.size()));
  r.fields["MESSAGE"] = r.message;
  r.fields["PRIORITY"] = std::to_string(syslog_priority(r.level));
  r.fields["SYSLOG_IDENTIFIER"] = program;
  Fields f = current_fields();
  put(r.fields, "JOB_ID", f.job_id);
  put(r.fields, "ITEM_ID", f.item_id);
  put(r.fields, "ACCESSION", f.accession);
  put(r.fields, "PACS", f.pacs);
  put(r.fields, "PROJECT", f.project);
  put(r.fields, "SUBJECT", f.subject);
  put(r.fields, "SESSION", f.session);
  put(r.fields, "STATE", f.state);
  if (!msg.source.empty()) {
    r.fields["CODE_FILE"] = msg.source.filename;
    r.fields["CODE_LINE"] = std::to_string(msg.source.line);
    if (msg.source.funcname != nullptr) r.fields["CODE_FUNC"] = msg.source.funcname;
  }
  return r;
}

void Sink::sink_it_(const spdlog::details::log_msg& msg) {
  Record record = make_record(msg, program_);
  if (auto capture = current_capture()) {
    capture(record);
  } else if (journal_) {
    write_journal(record, msg.time);
  } else {
    write_stderr(record, msg.time);
  }
}

void Sink::flush_() {
  std::fflush(stderr);
}

void Sink::write_journal(const Record& record, spdlog::log_clock::time_point time) {
  std::vector<std::string> lines;
  lines.reserve(record.fields.size());
  for (const auto& [key, value] : record.fields) lines.push_back(key + "=" + value);
  std::vector<iovec> iov(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    iov[i].iov_base = lines[i].data();
    iov[i].iov_len = lines[i].size();
  }
  if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) {
    write_stderr(record, time);  // journal gone: keep the record
  }
}

void Sink::write_stderr(const Record& record, spdlog::log_clock::time_point time) {
  auto seconds = spdlog::log_clock::to_time_t(time);
  auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  std::tm local{};
  localtime_r(&seconds, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &local);
  std::string line = stamp;
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03d ", static_cast<int>(millis));
  line += ms;
  line += format_text(record);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace p2x::log::detail
