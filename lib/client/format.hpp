// client/format: human-readable views of daemon responses (tables, summaries). Socket-free:
// every function takes the daemon's JSON answer and returns the text the CLI prints.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace p2x::client {

std::string format_job_line(const nlohmann::json& job);    // one line for `list`
std::string format_job_status(const nlohmann::json& job);  // a block for `status`
std::string format_duration(double seconds);
std::string format_bytes(double bytes);

enum class JobsView { Status, List };
// The whole output of `status` or `list` for their answer {"jobs": [...]}.
std::string format_jobs(const nlohmann::json& result, JobsView view);
// `submit`: the queued job (answer {"job", "items", "warnings"}) from csv_name into project.
std::string format_submitted(const nlohmann::json& result, const std::string& csv_name,
                             const std::string& project);
// `report`: the answer's CSV as it is.
std::string format_report(const nlohmann::json& result);
// `cancel`, `pause`, `resume` or `retry` (what) of job_id.
std::string format_control(const std::string& what, std::int64_t job_id,
                           const nlohmann::json& result);
// `pacs echo NAME`: the answer {"ae_title", "host", "port", "ms"}.
std::string format_echo(const std::string& pacs_name, const nlohmann::json& result);

}  // namespace p2x::client
