// client/format: human-readable views of daemon responses (tables, summaries).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace p2x::client {

std::string format_job_line(const nlohmann::json& job);     // one line for `list`
std::string format_job_status(const nlohmann::json& job);   // a block for `status`
std::string format_duration(double seconds);
std::string format_bytes(double bytes);

}  // namespace p2x::client
