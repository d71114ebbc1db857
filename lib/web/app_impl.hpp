// web/app_impl: the inside of web::App, shared by app.cpp (routing, access) and
// app_actions.cpp (what each route does). Not a public header.
#pragma once

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "web/app.hpp"
#include "web/pages.hpp"
#include "xnat/xnat.hpp"

namespace p2x::web {

using nlohmann::json;

namespace detail {

inline constexpr const char* kSessionCookie = "p2x_session";
inline constexpr const char* kLoginCookie = "p2x_login";
inline constexpr std::size_t kMaxSessions = 10000;
inline constexpr std::size_t kMaxJsonDepth = 8;

// An answer to a person, as a page or (for /api/) as JSON {"ok":false,"error":{..}}.
struct Refusal {
  int status;
  std::string message;
};

inline bool is_api(const Request& r) {
  return r.path().rfind("/api/", 0) == 0;
}

inline std::optional<std::int64_t> parse_id(std::string_view s) {
  if (s.empty() || s.size() > 15 ||
      !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; })) {
    return std::nullopt;
  }
  return std::stoll(std::string(s));
}

inline int status_of(const std::string& code) {
  if (code == ipc::code::bad_request) return 400;
  if (code == ipc::code::not_found) return 404;
  if (code == ipc::code::too_large) return 413;
  if (code == ipc::code::refused) return 422;
  if (code == ipc::code::busy) return 503;
  return 500;
}

// The cookie attributes of this door: HttpOnly, SameSite=Strict, Secure over TLS.
inline std::string cookie(const std::string& name, const std::string& value, bool tls,
                          int max_age = -1) {
  std::string c = name + "=" + value + "; Path=/; HttpOnly; SameSite=Strict";
  if (tls) c += "; Secure";
  if (max_age >= 0) c += "; Max-Age=" + std::to_string(max_age);
  return c;
}

inline Response page(int status, std::string html) {
  Response r;
  r.status = status;
  r.body = std::move(html);
  return r;
}

// A request body as a JSON object, or nullopt (not JSON, not an object, nested too deep).
inline std::optional<json> json_body(const std::string& body) {
  bool too_deep = false;
  json j = json::parse(
      body,
      [&too_deep](int depth, json::parse_event_t, json&) {
        if (static_cast<std::size_t>(depth) > kMaxJsonDepth) too_deep = true;
        return !too_deep;
      },
      false);
  if (too_deep || !j.is_object()) return std::nullopt;
  return j;
}

// Rate and ETA of a job from its counts: items finished per hour since it was created.
inline void add_progress(json& j, std::int64_t now) {
  const auto& c = j["counts"];
  const std::int64_t total = j.value("total", std::int64_t{0});
  const std::int64_t done = c.value("verified", std::int64_t{0}) +
                            c.value("failed", std::int64_t{0}) +
                            c.value("cancelled", std::int64_t{0});
  const std::int64_t elapsed = std::max<std::int64_t>(1, now - j.value("created_at", now));
  j["done"] = done;
  j["progress"] = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const double per_s = static_cast<double>(done) / static_cast<double>(elapsed);
  j["rate_per_hour"] = per_s * 3600.0;
  j["eta_s"] = done < total && per_s > 0 && j.value("state", "") == "active"
                   ? json(static_cast<std::int64_t>(static_cast<double>(total - done) / per_s))
                   : json(nullptr);
  const std::string user = j.value("submitted_user", "");
  j["who"] =
      user.empty() ? "uid " + std::to_string(j.value("submitted_by", 0)) + " (command line)" : user;
}

}  // namespace detail

using namespace detail;

struct App::Impl {
  AppDeps d;
  Sessions sessions;
  LoginLimiter limiter;
  std::set<std::string> admins;

  explicit Impl(AppDeps deps)
      : d(std::move(deps)),
        sessions(std::chrono::minutes(d.cfg.web.session_idle_minutes), kMaxSessions, d.clock),
        limiter(d.cfg.web.login_max_failures, std::chrono::seconds(d.cfg.web.login_window_s),
                d.clock),
        admins(d.cfg.web.admins.begin(), d.cfg.web.admins.end()) {}

  // --- who asks ------------------------------------------------------------------------------
  std::optional<Session> session_of(const Request& r) {
    const std::string id = cookie_value(r.header("cookie"), kSessionCookie);
    return id.empty() ? std::nullopt : sessions.find(id);
  }

  // A POST the browser says comes from another site (Origin or Sec-Fetch-Site).
  static bool cross_site(const Request& r) {
    const std::string_view origin = r.header("origin");
    if (!origin.empty() && origin != "null") {
      const std::string expected =
          std::string(r.tls ? "https://" : "http://") + std::string(r.header("host"));
      if (origin != expected) return true;
    } else if (origin == "null") {
      return true;
    }
    const std::string_view site = r.header("sec-fetch-site");
    return !site.empty() && site != "same-origin" && site != "none";
  }

  // The person's rights, asked of XNAT with their own session unless asked recently. Throws
  // Refusal: 401 when XNAT no longer knows the session (logged out here too), 503 when XNAT
  // cannot answer.
  Rights rights(const Session& s) {
    const auto now = d.clock ? d.clock() : std::chrono::steady_clock::now();
    if (s.rights.known &&
        now - s.rights.asked < std::chrono::seconds(d.cfg.web.permissions_cache_s)) {
      return s.rights;
    }
    Rights r;
    try {
      for (auto& p : d.users.projects(s.xnat_session, false)) r.read.insert(std::move(p));
      for (auto& p : d.users.projects(s.xnat_session, true)) r.create.insert(std::move(p));
    } catch (const xnat::XnatError& e) {
      if (e.kind == xnat::ErrorKind::Auth) {
        sessions.remove(s.id);
        throw Refusal{401, "your XNAT session has ended; log in again"};
      }
      throw Refusal{503, std::string("cannot ask XNAT about your projects: ") + e.what()};
    }
    r.asked = now;
    r.known = true;
    sessions.set_rights(s.id, r);
    return r;
  }

  bool may_read(const Session& s, const std::string& project) {
    return s.admin || rights(s).read.count(project) > 0;
  }

  // --- the daemon's operations -----------------------------------------------------------------
  json run(const std::string& cmd, json args, const Session& s) {
    ipc::Peer peer;
    peer.uid = static_cast<uid_t>(-1);
    peer.web_user = s.user;
    return d.operations.run(ipc::Request{cmd, std::move(args), ipc::Lane::Local}, peer);
  }

  // The result of an operation, or throws Refusal with its message.
  json result(const std::string& cmd, json args, const Session& s) {
    json answer = run(cmd, std::move(args), s);
    if (answer.value("ok", false)) return answer["result"];
    const auto& e = answer["error"];
    throw Refusal{status_of(e.value("code", "")), e.value("message", cmd + " failed")};
  }

  // The job's summary if the person may read its project; "not found" otherwise.
  json readable_job(const Session& s, std::int64_t id) {
    json jobs = result("status", json{{"job", id}}, s)["jobs"];
    if (jobs.empty() || !may_read(s, jobs[0].value("project", ""))) {
      throw Refusal{404, "no job " + std::to_string(id)};
    }
    return jobs[0];
  }

  Response handle(const Request& r);
  Response route(const Request& r);
  Response route_session(const Request& r, const Session& s);
  Response route_api(const Request& r, const Session& s);
  Response asset(const Request& r);
  Response metrics(const Request& r);
  Response login_form(const Request& r, const std::string& message, const std::string& user,
                      int status);
  Response login(const Request& r);
  Response logout(const Request& r);
  Response job_list(const Session& s);
  Response job_detail(const Request& r, const Session& s, std::int64_t id);
  Response report(const Session& s, std::int64_t id);
  Response series(const Session& s, std::int64_t item);
  Response control(const Session& s, std::int64_t id, const std::string& action);
  Response submit_form(const Session& s);
  Response csv_operation(const Request& r, const Session& s, const std::string& what);
};

}  // namespace p2x::web
