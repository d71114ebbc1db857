// log/sink: internal — the spdlog sink that adds context fields, redacts secrets and writes to
// journald, stderr or a test capture.
#pragma once

#include "log/log.hpp"

#include <spdlog/sinks/base_sink.h>

#include <mutex>
#include <string>

namespace p2x::log::detail {

// The context fields of the record being logged on this thread (scoped defaults merged with the
// fields of the current call).
Fields current_fields();
// Copy of the capture function, empty when not capturing.
std::function<void(const Record&)> current_capture();

Level from_spdlog(spdlog::level::level_enum level);
spdlog::level::level_enum to_spdlog(Level level);
int syslog_priority(Level level);

// Builds the record (journald field set) for one spdlog message.
Record make_record(const spdlog::details::log_msg& msg, const std::string& program);

class Sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  Sink(std::string program, bool journal) : program_(std::move(program)), journal_(journal) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;

 private:
  void write_journal(const Record& record, spdlog::log_clock::time_point time);
  void write_stderr(const Record& record, spdlog::log_clock::time_point time);

  std::string program_;
  bool journal_;
};

}  // namespace p2x::log::detail
