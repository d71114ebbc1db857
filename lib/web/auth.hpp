// web/auth: who is logged in at the web door, and how hard a client may try.
//
// - Sessions: random 256-bit ids (OpenSSL's RAND_bytes) kept only in memory, each with the
//   XNAT user, their XNAT session id (to ask XNAT about their rights), a CSRF token and the
//   time of last use; a session unused for the idle limit is gone. The table is bounded: when
//   full, the session unused the longest is dropped. Passwords are never kept.
// - LoginLimiter: failed logins per client address within a window; at the limit the address
//   is refused (before XNAT is asked) until the oldest failure leaves the window. A success
//   does not wipe the count (a valid account must not unlock guessing at others).
// - Cookies: read leniently (a malformed Cookie header yields no session, never an error).
// Thread-safe; time is injected (tests pin it).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace p2x::web {

using Clock = std::function<std::chrono::steady_clock::time_point()>;

// 32 random bytes as 64 lower-case hex digits (OpenSSL RAND_bytes); throws if it has no entropy.
std::string random_token();
// Constant-time comparison of two tokens.
bool same_token(std::string_view a, std::string_view b);
// The value of cookie `name` in a Cookie header, or "" (also for malformed headers).
std::string cookie_value(std::string_view cookie_header, std::string_view name);

// A person's rights in XNAT as last asked: projects they may read, and create data in.
struct Rights {
  std::set<std::string> read, create;
  std::chrono::steady_clock::time_point asked{};
  bool known = false;
};

struct Session {
  std::string id, user, csrf, xnat_session;
  bool admin = false;
  Rights rights;
  std::chrono::steady_clock::time_point last_used{};
};

class Sessions {
 public:
  Sessions(std::chrono::seconds idle, std::size_t max_sessions, Clock clock = {});
  // A new session for `user`; returns it (with its id and CSRF token).
  Session create(const std::string& user, const std::string& xnat_session, bool admin);
  // The session with this id if it exists and has not been idle too long; touches it.
  std::optional<Session> find(const std::string& id);
  void set_rights(const std::string& id, const Rights& rights);
  // Removes it; returns it (for the XNAT logout) if it existed.
  std::optional<Session> remove(const std::string& id);
  std::size_t size() const;

 private:
  void expire_locked();
  std::chrono::seconds idle_;
  std::size_t max_;
  Clock clock_;
  mutable std::mutex mu_;
  std::map<std::string, Session> sessions_;
};

class LoginLimiter {
 public:
  LoginLimiter(int max_failures, std::chrono::seconds window, Clock clock = {});
  // Seconds until `address` may try again, or 0 when it may now.
  int retry_after(const std::string& address);
  void failed(const std::string& address);

 private:
  void forget_old_locked(std::chrono::steady_clock::time_point now);
  int max_;
  std::chrono::seconds window_;
  Clock clock_;
  std::mutex mu_;
  std::map<std::string, std::deque<std::chrono::steady_clock::time_point>> failures_;
};

}  // namespace p2x::web
