#include "client/format.hpp"

#include <cstdio>
#include <ctime>
#include <sstream>

namespace p2x::client {

using nlohmann::json;

namespace {

std::int64_t count(const json& job, const char* state) {
  return job.at("counts").value(state, std::int64_t{0});
}

std::string local_time(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  localtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

}  // namespace

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600,
                  (static_cast<int>(s) % 3600) / 60);
  }
  return buf;
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

std::string format_job_line(const json& job) {
  std::ostringstream o;
  std::string state = job.value("state", "");
  if (job.value("paused", false) && state == "active") state = "paused";
  o << "job " << job.value("job", 0) << "  " << state << "  project " << job.value("project", "")
    << "  pacs " << job.value("pacs", "") << "  " << count(job, "verified") << "/"
    << job.value("total", 0) << " verified";
  if (auto f = count(job, "failed")) o << ", " << f << " failed";
  if (auto c = count(job, "cancelled")) o << ", " << c << " cancelled";
  o << "  (" << job.value("csv_name", "") << ", " << local_time(job.value("created_at", 0)) << ")";
  return o.str();
}

std::string format_job_status(const json& job) {
  std::ostringstream o;
  o << format_job_line(job) << "\n";
  o << "  states:";
  bool any = false;
  for (const auto& [state, n] : job.at("counts").items()) {
    if (n.get<std::int64_t>() == 0) continue;
    o << "  " << state << " " << n.get<std::int64_t>();
    any = true;
  }
  if (!any) o << "  (no items)";
  o << "\n";
  const json& inst = job.at("instances");
  if (inst.value("expected", 0) > 0) {
    o << "  instances: " << inst.value("received", 0) << "/" << inst.value("expected", 0)
      << " received, " << inst.value("verified", 0) << " verified in XNAT, "
      << format_bytes(job.value("bytes", 0.0)) << " moved\n";
  }
  const std::string destination = job.value("destination", "");
  if (!destination.empty()) o << "  XNAT destination: " << destination << "\n";
  if (job.value("anonymisation_check", "required") != "required") {
    o << "  anonymisation check: " << job.value("anonymisation_check", "") << "\n";
  }
  if (!job.value("review", "").empty()) o << "  " << job.value("review", "") << "\n";
  if (job.contains("notes") && job["notes"].is_array()) {
    for (const auto& n : job["notes"]) o << "  waiting: " << n.get<std::string>() << "\n";
  }
  const json& failures = job.at("latest_failures");
  if (!failures.empty()) {
    o << "  latest failures:\n";
    for (const auto& f : failures) {
      const std::string accession = f.value("accession", "");
      const std::string key = accession.empty()
                                  ? f.value("patient_id", "") + " " + f.value("study_date", "")
                                  : accession;
      o << "    row " << f.value("row", 0) << " (line " << f.value("line", 0) << ", " << key
        << "): " << f.value("last_error", "") << "\n";
    }
  }
  return o.str();
}

std::string format_jobs(const json& result, JobsView view) {
  const bool status = view == JobsView::Status;
  const json& jobs = result.at("jobs");
  std::string o;
  if (jobs.empty()) o = status ? "no active jobs (see `pacs2xnat list`)\n" : "no jobs\n";
  for (const auto& j : jobs) o += status ? format_job_status(j) : format_job_line(j) + "\n";
  return o;
}

std::string format_submitted(const json& result, const std::string& csv_name,
                             const std::string& project) {
  std::ostringstream o;
  const json job = result.value("job", json());
  o << "job " << job << " queued: " << result.value("items", json()) << " studies from " << csv_name
    << " into project " << project << " (follow it with `pacs2xnat watch " << job << "`)\n";
  for (const auto& c : result.value("checks", json::array())) {
    o << "XNAT " << c.get<std::string>() << "\n";
  }
  for (const auto& w : result.value("warnings", json::array())) {
    o << "warning: " << w.get<std::string>() << "\n";
  }
  return o.str();
}

std::string format_report(const json& result) {
  return result.value("csv", std::string());
}

std::string format_control(const std::string& what, std::int64_t job_id, const json& result) {
  std::ostringstream o;
  o << "job " << job_id;
  if (what == "cancel") {
    o << ": " << result.value("cancelled", 0) << " studies cancelled\n";
  } else if (what == "retry") {
    o << ": " << result.value("requeued", 0) << " failed studies re-queued\n";
  } else {
    o << " " << (what == "pause" ? "paused" : "resumed") << "\n";
  }
  return o.str();
}

std::string format_echo(const std::string& pacs_name, const json& result) {
  std::ostringstream o;
  o << "C-ECHO " << pacs_name << " (" << result.value("ae_title", "") << "@"
    << result.value("host", "") << ":" << result.value("port", 0) << "): ok in "
    << result.value("ms", 0.0) << " ms\n";
  return o.str();
}

}  // namespace p2x::client
