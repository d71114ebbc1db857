// web/auth: sessions, login rate limit, cookies (see auth.hpp).
#include "web/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

namespace p2x::web {

namespace {

constexpr std::size_t kMaxTrackedAddresses = 100000;

Clock or_steady(Clock clock) {
  return clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); });
}

bool is_token(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string random_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no random bytes for a token");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 15]);
  }
  return out;
}

bool same_token(std::string_view a, std::string_view b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const auto end = header.find(';');
    const std::string_view part = trim(header.substr(0, end));
    const auto eq = part.find('=');
    if (eq != std::string_view::npos && trim(part.substr(0, eq)) == name) {
      std::string_view value = trim(part.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      return is_token(value) ? std::string(value) : std::string();
    }
    if (end == std::string_view::npos) break;
    header.remove_prefix(end + 1);
  }
  return {};
}

Sessions::Sessions(std::chrono::seconds idle, std::size_t max_sessions, Clock clock)
    : idle_(idle),
      max_(std::max<std::size_t>(1, max_sessions)),
      clock_(or_steady(std::move(clock))) {}

void Sessions::expire_locked() {
  const auto now = clock_();
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = now - it->second.last_used > idle_ ? sessions_.erase(it) : std::next(it);
  }
  while (sessions_.size() >= max_) {
    auto oldest = std::min_element(
        sessions_.begin(), sessions_.end(),
        [](const auto& a, const auto& b) { return a.second.last_used < b.second.last_used; });
    sessions_.erase(oldest);
  }
}

Session Sessions::create(const std::string& user, const std::string& xnat_session, bool admin) {
  Session s;
  s.id = random_token();
  s.csrf = random_token();
  s.user = user;
  s.xnat_session = xnat_session;
  s.admin = admin;
  std::lock_guard lock(mu_);
  expire_locked();
  s.last_used = clock_();
  sessions_[s.id] = s;
  return s;
}

std::optional<Session> Sessions::find(const std::string& id) {
  if (!is_token(id)) return std::nullopt;
  std::lock_guard lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  const auto now = clock_();
  if (now - it->second.last_used > idle_) {
    sessions_.erase(it);
    return std::nullopt;
  }
  it->second.last_used = now;
  return it->second;
}

void Sessions::set_rights(const std::string& id, const Rights& rights) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(id);
  if (it != sessions_.end()) it->second.rights = rights;
}

std::optional<Session> Sessions::remove(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  Session s = std::move(it->second);
  sessions_.erase(it);
  return s;
}

std::size_t Sessions::size() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

LoginLimiter::LoginLimiter(int max_failures, std::chrono::seconds window, Clock clock)
    : max_(std::max(1, max_failures)), window_(window), clock_(or_steady(std::move(clock))) {}

void LoginLimiter::forget_old_locked(std::chrono::steady_clock::time_point now) {
  for (auto it = failures_.begin(); it != failures_.end();) {
    auto& times = it->second;
    while (!times.empty() && now - times.front() >= window_) times.pop_front();
    it = times.empty() ? failures_.erase(it) : std::next(it);
  }
}

int LoginLimiter::retry_after(const std::string& address) {
  std::lock_guard lock(mu_);
  const auto now = clock_();
  auto it = failures_.find(address);
  if (it == failures_.end()) return 0;
  auto& times = it->second;
  while (!times.empty() && now - times.front() >= window_) times.pop_front();
  if (static_cast<int>(times.size()) < max_) return 0;
  const auto wait = std::chrono::ceil<std::chrono::seconds>(times.front() + window_ - now);
  return std::max<int>(1, static_cast<int>(wait.count()));
}

void LoginLimiter::failed(const std::string& address) {
  std::lock_guard lock(mu_);
  const auto now = clock_();
  if (failures_.size() >= kMaxTrackedAddresses) forget_old_locked(now);
  auto& times = failures_[address];
  times.push_back(now);
  while (static_cast<int>(times.size()) > max_) times.pop_front();
}

}  // namespace p2x::web
