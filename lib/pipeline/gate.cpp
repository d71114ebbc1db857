#include "pipeline/gate.hpp"

#include <algorithm>
#include <cstdio>

namespace p2x::pipeline {

namespace {

bool day_matches(const config::Window& w, int wday) {
  return w.days.empty() || std::find(w.days.begin(), w.days.end(), wday) != w.days.end();
}

std::string hhmm(std::time_t t) {
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%a %H:%M", &tm);
  return buf;
}

}  // namespace

WindowState window_state(const config::PacsNode& node, std::time_t when) {
  if (node.windows.empty()) return {node.max_associations, 0};
  auto limit_at = [&](std::time_t t) {
    std::tm tm{};
    localtime_r(&t, &tm);
    int minute = tm.tm_hour * 60 + tm.tm_min;
    for (const auto& w : node.windows) {
      if (day_matches(w, tm.tm_wday) && minute >= w.start_min && minute < w.end_min) {
        return std::min(w.max_associations, node.max_associations);
      }
    }
    return 0;  // outside every window: closed
  };
  WindowState s{limit_at(when), 0};
  // Find the next minute at which the limit changes (scan up to a week ahead).
  std::time_t t = when - (when % 60) + 60;
  for (int i = 0; i < 7 * 24 * 60; ++i, t += 60) {
    if (limit_at(t) != s.limit) {
      s.until = t;
      break;
    }
  }
  return s;
}

Gate::Gate(const config::Config& cfg) {
  reload(cfg);
}

void Gate::reload(const config::Config& cfg) {
  std::lock_guard<std::mutex> lock(mu_);
  circuit_failures_ = std::max(1, cfg.limits.circuit_failures);
  probe_s_ = std::max(1, cfg.limits.circuit_probe_s);
  for (const auto& p : cfg.pacs) nodes_[p.name].cfg = p;
}

bool Gate::try_acquire(const std::string& pacs, std::time_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(pacs);
  if (it == nodes_.end()) return false;
  Node& n = it->second;
  if (n.open) return false;
  if (n.in_use >= window_state(n.cfg, now).limit) return false;
  ++n.in_use;
  n.peak = std::max(n.peak, n.in_use);
  return true;
}

void Gate::release(const std::string& pacs) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(pacs);
  if (it != nodes_.end() && it->second.in_use > 0) --it->second.in_use;
}

void Gate::on_success(const std::string& pacs) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(pacs);
  if (it == nodes_.end()) return;
  it->second.consecutive_failures = 0;
  it->second.open = false;
}

bool Gate::on_connect_failure(const std::string& pacs, const std::string& error, std::time_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(pacs);
  if (it == nodes_.end()) return false;
  Node& n = it->second;
  n.last_error = error;
  if (++n.consecutive_failures >= circuit_failures_ && !n.open) {
    n.open = true;
    n.opened_at = now;
    n.last_probe = now;
    return true;
  }
  return false;
}

std::vector<std::string> Gate::probes_due(std::time_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (auto& [name, n] : nodes_) {
    if (n.open && now - n.last_probe >= probe_s_) {
      n.last_probe = now;
      out.push_back(name);
    }
  }
  return out;
}

void Gate::probe_result(const std::string& pacs, bool answered, std::time_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(pacs);
  if (it == nodes_.end()) return;
  it->second.last_probe = now;
  if (answered) {
    it->second.open = false;
    it->second.consecutive_failures = 0;
  }
}

int Gate::in_use(const std::string& pacs) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(pacs);
  return it == nodes_.end() ? 0 : it->second.in_use;
}

int Gate::limit(const std::string& pacs, std::time_t now) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(pacs);
  return it == nodes_.end() ? 0 : window_state(it->second.cfg, now).limit;
}

int Gate::peak(const std::string& pacs) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(pacs);
  return it == nodes_.end() ? 0 : it->second.peak;
}

std::string Gate::wait_reason(const std::string& pacs, std::time_t now) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(pacs);
  if (it == nodes_.end()) return "PACS " + pacs + " is not in the configuration";
  const Node& n = it->second;
  if (n.open) {
    return "PACS " + pacs + " unreachable (" + n.last_error + "); circuit breaker open since " +
           hhmm(n.opened_at) + ", probing with C-ECHO every " + std::to_string(probe_s_) + " s";
  }
  WindowState w = window_state(n.cfg, now);
  if (w.limit == 0) {
    return "PACS " + pacs + " is outside its availability window" +
           (w.until ? " until " + hhmm(w.until) : std::string());
  }
  return {};
}

}  // namespace p2x::pipeline
