// web/app_actions: what each route of the web door does (see app.hpp for the rules).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "web/app_impl.hpp"

namespace p2x::web {

namespace {

std::int64_t unix_now() {
  return static_cast<std::int64_t>(std::time(nullptr));
}

bool is_control_action(const std::string& a) {
  return a == "cancel" || a == "pause" || a == "resume" || a == "retry";
}

}  // namespace

// The login form carries a token that must match a cookie set with it (double submit), so a
// page of another site cannot log a browser in under someone else's account.
Response App::Impl::login_form(const Request& r, const std::string& message,
                               const std::string& user, int status) {
  std::string token = cookie_value(r.header("cookie"), kLoginCookie);
  if (token.empty()) token = random_token();
  Response out = page(status, login_page(token, message, user));
  out.set("Set-Cookie", cookie(kLoginCookie, token, r.tls));
  return out;
}

Response App::Impl::login(const Request& r) {
  if (cross_site(r)) throw Refusal{403, "cross-site login refused"};
  const auto form = parse_form(r.body);
  const std::string user = form_value(form, "user");
  const std::string token = cookie_value(r.header("cookie"), kLoginCookie);
  if (token.empty() || !same_token(form_value(form, "csrf"), token)) {
    return login_form(r, "The login form had expired; please log in again.", user, 403);
  }
  if (const int wait = limiter.retry_after(r.peer); wait > 0) {
    spdlog::warn("web: login refused for {}: too many failed logins", r.peer);
    Response out = login_form(
        r, "Too many failed logins from your address; try again in " + std::to_string(wait) + " s.",
        user, 429);
    out.set("Retry-After", std::to_string(wait));
    return out;
  }
  const std::string password = form_value(form, "password");
  const bool printable = std::all_of(user.begin(), user.end(), [](unsigned char c) {
    return c >= 0x20 && c != 0x7f;
  });  // the user name goes into the log
  if (user.empty() || password.empty() || user.size() > 255 || password.size() > 1024 ||
      !printable) {
    limiter.failed(r.peer);
    return login_form(r, "Enter your XNAT user name and password.", user, 400);
  }
  std::string xnat_session;
  try {
    xnat_session = d.users.login(user, password);
  } catch (const xnat::XnatError& e) {
    if (e.kind != xnat::ErrorKind::Auth) {
      spdlog::error("web: cannot check a login with XNAT: {}", e.what());
      return login_form(r, std::string("XNAT cannot check logins now: ") + e.what(), user, 503);
    }
    limiter.failed(r.peer);
    spdlog::warn("web: failed login for XNAT user {} from {}", user.substr(0, 64), r.peer);
    return login_form(r, "XNAT refused that user name or password.", user, 401);
  }
  const Session s = sessions.create(user, xnat_session, admins.count(user) > 0);
  spdlog::info("web: XNAT user {} logged in from {}{}", user, r.peer, s.admin ? " (admin)" : "");
  Response out = redirect("/jobs");
  out.set("Set-Cookie", cookie(kSessionCookie, s.id, r.tls));
  out.set("Set-Cookie", cookie(kLoginCookie, "", r.tls, 0));
  return out;
}

Response App::Impl::logout(const Request& r) {
  if (cross_site(r)) throw Refusal{403, "cross-site request refused"};
  const auto s = session_of(r);
  if (s) {
    if (!same_token(form_value(parse_form(r.body), "csrf"), s->csrf)) {
      throw Refusal{403, "missing or wrong CSRF token; reload the page"};
    }
    sessions.remove(s->id);
    d.users.logout(s->xnat_session);
    spdlog::info("web: XNAT user {} logged out", s->user);
  }
  Response out = redirect("/login");
  out.set("Set-Cookie", cookie(kSessionCookie, "", r.tls, 0));
  return out;
}

Response App::Impl::job_list(const Session& s) {
  json jobs = json::array();
  const std::int64_t now = unix_now();
  json listed = result("list", json::object(), s);
  for (auto& j : listed["jobs"]) {
    if (!may_read(s, j.value("project", ""))) continue;
    j.erase("latest_failures");
    add_progress(j, now);
    jobs.push_back(std::move(j));
  }
  return json_response(200, json{{"ok", true}, {"jobs", jobs}, {"now", now}}.dump(
                                -1, ' ', false, json::error_handler_t::replace));
}

// The job's summary and one page of its items (?state=&offset=&limit=).
Response App::Impl::job_detail(const Request& r, const Session& s, std::int64_t id) {
  json job = readable_job(s, id);
  add_progress(job, unix_now());
  const auto q = parse_form(r.query());
  json args{{"job", id}, {"limit", 100}, {"offset", 0}};
  if (const auto state = form_value(q, "state"); !state.empty()) args["state"] = state;
  for (const char* key : {"offset", "limit"}) {
    const std::string v = form_value(q, key);
    if (v.empty()) continue;
    const auto n = parse_id(v);
    if (!n) throw Refusal{400, std::string("\"") + key + "\" must be a number"};
    args[key] = *n;
  }
  const bool may_control =
      s.admin || (!s.user.empty() && job.value("submitted_user", "") == s.user);
  json page_items = result("items", args, s);
  return json_response(200, json{{"ok", true},
                                 {"job", job},
                                 {"items", page_items["items"]},
                                 {"offset", page_items["offset"]},
                                 {"limit", page_items["limit"]},
                                 {"may_control", may_control}}
                                .dump(-1, ' ', false, json::error_handler_t::replace));
}

Response App::Impl::report(const Session& s, std::int64_t id) {
  readable_job(s, id);
  Response out;
  out.content_type = "text/csv; charset=utf-8";
  out.body = result("report", json{{"job", id}}, s)["csv"].get<std::string>();
  out.set("Content-Disposition",
          "attachment; filename=\"job-" + std::to_string(id) + "-report.csv\"");
  return out;
}

// One item's series (expected and received each), if its job's project is readable.
Response App::Impl::series(const Session& s, std::int64_t item) {
  json out;
  try {
    out = result("series", json{{"item", item}}, s);
    readable_job(s, out.value("job", std::int64_t{0}));
  } catch (const Refusal& r) {
    if (r.status == 404) throw Refusal{404, "no item " + std::to_string(item)};
    throw;
  }
  return json_response(200, json{{"ok", true}, {"result", out}}.dump(
                                -1, ' ', false, json::error_handler_t::replace));
}

// Cancel, pause, resume, retry: for the job's submitter and admins, as the CLI does them.
Response App::Impl::control(const Session& s, std::int64_t id, const std::string& action) {
  if (!is_control_action(action)) throw Refusal{404, "no action " + action.substr(0, 32)};
  const json job = readable_job(s, id);
  if (!s.admin && job.value("submitted_user", "") != s.user) {
    throw Refusal{403, "only the person who submitted job " + std::to_string(id) +
                           " and admins may " + action + " it"};
  }
  json out = result(action, json{{"job", id}}, s);
  spdlog::info("web: {} of job {} by XNAT user {}", action, id, s.user);
  return json_response(200, json{{"ok", true}, {"result", out}}.dump());
}

Response App::Impl::submit_form(const Session& s) {
  const Rights r = rights(s);
  std::vector<std::string> pacs;
  for (const auto& p : d.cfg.pacs) pacs.push_back(p.name);
  return page(200, submit_page(s, {r.create.begin(), r.create.end()}, pacs));
}

// check, dry_run, submit: the JSON body holds the socket's arguments (csv_base64, project,
// pacs, options). Dry runs and submits only into projects the person may create data in.
Response App::Impl::csv_operation(const Request& r, const Session& s, const std::string& what) {
  auto args = json_body(r.body);
  if (!args) throw Refusal{400, "the request body must be a JSON object"};
  if (what != "check") {
    const auto project = args->find("project");
    if (project == args->end() || !project->is_string()) throw Refusal{400, "choose a project"};
    if (!rights(s).create.count(project->get<std::string>())) {
      throw Refusal{403, "XNAT does not let you create data in project " +
                             project->get<std::string>().substr(0, 64) +
                             " (you must be a member or owner); nothing was queued"};
    }
  } else {
    for (auto it = args->begin(); it != args->end();) {
      it = it.key() == "csv_base64" ? std::next(it) : args->erase(it);
    }
  }
  json out = result(what, std::move(*args), s);
  return json_response(200, json{{"ok", true}, {"result", out}}.dump(
                                -1, ' ', false, json::error_handler_t::replace));
}

}  // namespace p2x::web
