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

std::string WatchView::update(const json& job, double elapsed_s) {
  const json& c = job.at("counts");
  const std::int64_t total = job.value("total", 0);
  const std::int64_t failed_or_cancelled = c.value("failed", 0) + c.value("cancelled", 0);
  const std::int64_t done = c.value("verified", 0) + failed_or_cancelled;
  const double bytes = job.value("bytes", 0.0);
  if (start_bytes_ < 0) {
    start_bytes_ = bytes;
    start_done_ = done;
  }
  finished_ = job.value("state", "") != "active";
  exit_code_ = failed_or_cancelled > 0 ? kRefused : kOk;
  if (mode_ == Mode::Json) return job.dump() + "\n";
  if (mode_ == Mode::Lines) {
    std::string line = progress_line(job, -1, -1, 0);
    if (line == last_) return "";
    last_ = line;
    return line + "\n";
  }
  const double rate = elapsed_s > 1 ? (bytes - start_bytes_) / elapsed_s : -1;
  const double eta =
      (elapsed_s > 1 && done > start_done_)
          ? elapsed_s / static_cast<double>(done - start_done_) * static_cast<double>(total - done)
          : -1;
  return "\r\033[K" + progress_line(job, rate, eta, 30) + (finished_ ? "\n" : "");
}

int watch_job(const std::string& socket, std::int64_t job_id, bool as_json, std::ostream& out,
              std::ostream& err, double interval_s) {
  const bool tty = !as_json && &out == &std::cout && isatty(STDOUT_FILENO);
  WatchView view(as_json ? WatchView::Mode::Json
                 : tty   ? WatchView::Mode::Terminal
                         : WatchView::Mode::Lines);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    json response, result;
    try {
      response = ipc::call(socket, "status", json{{"job", job_id}}, 30);
    } catch (const std::exception& e) {
      err << "\npacs2xnat: " << e.what() << "\n";
      return kUnreachable;
    }
    if (int rc = read_answer(response, result, err)) return rc;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out << view.update(result.at("jobs").at(0), elapsed) << std::flush;
    if (view.finished()) return view.exit_code();
    std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
  }
}

}  // namespace p2x::client
