// service/commands: the daemon's IPC commands (submit, status, list, cancel, pause, resume,
// retry, report) as handlers on an ipc::Dispatcher. Socket-free: tests call them directly.
#pragma once

#include <functional>
#include <string>

#include "config/config.hpp"
#include "ipc/server.hpp"
#include "store/store.hpp"

namespace p2x::service {

// Hooks into the running pipeline; empty functions are skipped.
struct PipelineHooks {
  std::function<void()> wake;  // new or re-queued work: wake idle workers now
  // Extra status lines: why items of a job wait (PACS window closed, breaker open, disk guard).
  std::function<nlohmann::json(std::int64_t job_id)> job_notes;
  // Pre-flight of a submit before anything is queued; throws ipc::CommandError to refuse.
  // Returns {"skip_rows": [row numbers to record as skipped], "warnings": [text]}.
  std::function<nlohmann::json(const nlohmann::json& args,
                               const std::vector<store::NewItem>& items)>
      preflight;
};

struct Context {
  const config::Config& cfg;
  store::Store& store;
  PipelineHooks hooks;
};

void register_commands(ipc::Dispatcher& dispatcher, Context& ctx);

// What `status` and `report` say of a verified session in a project that reviews sessions in
// the prearchive (prearchive_code 0): it is in XNAT, complete, and waits for a person.
inline constexpr const char* kAwaitingReview = "awaiting review in the prearchive";

// JSON views shared by commands (and by tests).
nlohmann::json job_summary_json(const store::JobSummary& s);
// One CSV line per input row (header first).
std::string report_csv(const store::Job& job, const std::vector<store::Item>& items);

}  // namespace p2x::service
