#include "client/watch.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include "client/cli.hpp"
#include "client/format.hpp"
#include "ipc/client.hpp"

namespace p2x::client {

using nlohmann::json;

std::string progress_line(const json& job, double rate_bps, double eta_s, int width) {
  const json& c = job.at("counts");
  std::int64_t total = job.value("total", 0);
  std::int64_t verified = c.value("verified", 0), failed = c.value("failed", 0),
               cancelled = c.value("cancelled", 0);
  std::int64_t done = verified + failed + cancelled;
  std::ostringstream o;
  o << "job " << job.value("job", 0) << " ";
  if (width > 0) {
    int filled = total > 0 ? static_cast<int>(width * done / total) : 0;
    o << "[" << std::string(filled, '#') << std::string(width - filled, '.') << "] ";
  }
  o << verified << "/" << total << " verified";
  if (failed) o << ", " << failed << " failed";
  if (cancelled) o << ", " << cancelled << " cancelled";
  o << ", " << format_bytes(job.value("bytes", 0.0)) << " moved";
  if (rate_bps >= 0) o << ", " << format_bytes(rate_bps) << "/s";
  if (eta_s >= 0) o << ", ETA " << format_duration(eta_s);
  if (job.value("paused", false)) o << " (paused)";
  return o.str();
}

int watch_job(const std::string& socket, std::int64_t job_id, bool as_json, std::ostream& out,
              std::ostream& err, double interval_s) {
  const bool tty = !as_json && &out == &std::cout && isatty(STDOUT_FILENO);
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  double start_bytes = -1;
  std::int64_t start_done = -1;
  std::string last;
  for (;;) {
    json response;
    try {
      response = ipc::call(socket, "status", json{{"job", job_id}}, 30);
    } catch (const std::exception& e) {
      err << "\npacs2xnat: " << e.what() << "\n";
      return kUnreachable;
    }
    if (!response.value("ok", false)) {
      err << "pacs2xnat: " << response["error"].value("message", std::string("refused")) << "\n";
      return kRefused;
    }
    const json& job = response["result"]["jobs"].at(0);
    const json& c = job.at("counts");
    std::int64_t total = job.value("total", 0);
    std::int64_t done = c.value("verified", 0) + c.value("failed", 0) + c.value("cancelled", 0);
    double bytes = job.value("bytes", 0.0);
    double elapsed = std::chrono::duration<double>(clock::now() - start).count();
    if (start_bytes < 0) {
      start_bytes = bytes;
      start_done = done;
    }
    double rate = elapsed > 1 ? (bytes - start_bytes) / elapsed : -1;
    double eta = (elapsed > 1 && done > start_done)
                     ? elapsed / static_cast<double>(done - start_done) * static_cast<double>(total - done)
                     : -1;
    bool finished = job.value("state", "") != "active";
    if (as_json) {
      out << job.dump() << std::endl;
    } else {
      std::string line = progress_line(job, tty ? rate : -1, tty ? eta : -1, tty ? 30 : 0);
      if (tty) {
        out << "\r\033[K" << line << std::flush;
      } else if (line != last) {
        out << line << std::endl;
      }
      last = line;
    }
    if (finished) {
      if (tty) out << "\n";
      return (c.value("failed", 0) + c.value("cancelled", 0)) > 0 ? kRefused : kOk;
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
  }
}

}  // namespace p2x::client
