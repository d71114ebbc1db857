// web/app: routes, sessions and access rules (see app.hpp).
#include "web/app.hpp"

#include <spdlog/spdlog.h>

#include "web/app_impl.hpp"
#include "web/assets.hpp"

namespace p2x::web {

App::App(AppDeps deps) : impl_(std::make_unique<Impl>(std::move(deps))) {}
App::~App() = default;

Response App::handle(const Request& r) {
  Response out;
  try {
    out = impl_->handle(r);
  } catch (const std::exception& e) {
    spdlog::error("web: {} {} failed: {}", r.method, std::string(r.path()).substr(0, 200),
                  e.what());
    out = is_api(r)
              ? json_response(500,
                              json{{"ok", false},
                                   {"error", {{"code", "internal"}, {"message", "internal error"}}}}
                                  .dump())
              : page(500, error_page(500, "internal error", nullptr));
  }
  return out;
}

Response App::Impl::handle(const Request& r) {
  try {
    return route(r);
  } catch (const Refusal& e) {
    if (is_api(r)) {
      return json_response(
          e.status, json{{"ok", false},
                         {"error", {{"code", std::to_string(e.status)}, {"message", e.message}}}}
                        .dump(-1, ' ', false, json::error_handler_t::replace));
    }
    if (e.status == 401) return redirect("/login");
    const auto s = session_of(r);
    return page(e.status, error_page(e.status, e.message, s ? &*s : nullptr));
  }
}

Response App::Impl::route(const Request& r) {
  const std::string_view path = r.path();
  const bool get = r.method == "GET" || r.method == "HEAD";
  if (path.rfind("/assets/", 0) == 0 && get) return asset(r);
  if (path == "/metrics" && get) return metrics(r);
  if (path == "/login") {
    if (get) return login_form(r, "", "", 200);
    if (r.method == "POST") return login(r);
  }
  if (path == "/logout" && r.method == "POST") return logout(r);
  if (r.method != "GET" && r.method != "HEAD" && r.method != "POST") {
    throw Refusal{405, "method " + r.method.substr(0, 16) + " is not allowed here"};
  }
  const auto s = session_of(r);
  if (!s) {
    if (is_api(r)) throw Refusal{401, "log in first"};
    return redirect("/login");
  }
  if (r.method == "POST") {
    if (cross_site(r)) throw Refusal{403, "cross-site request refused"};
    if (!same_token(r.header("x-csrf-token"), s->csrf)) {
      throw Refusal{403, "missing or wrong CSRF token; reload the page"};
    }
  }
  rights(*s);  // asked again once the cache is stale: an ended XNAT session ends this one
  return route_session(r, *s);
}

Response App::Impl::route_session(const Request& r, const Session& s) {
  const std::string_view path = r.path();
  if (path.rfind("/api/", 0) == 0) return route_api(r, s);
  if (r.method == "POST") throw Refusal{405, "POST is not allowed here"};
  if (path == "/") return redirect("/jobs");
  if (path == "/jobs") return page(200, jobs_page(s));
  if (path == "/submit") return submit_form(s);
  if (path.rfind("/jobs/", 0) == 0) {
    std::string_view rest = path.substr(6);
    const auto slash = rest.find('/');
    const auto id = parse_id(rest.substr(0, slash));
    if (id && slash == std::string_view::npos) {
      readable_job(s, *id);
      return page(200, job_page(s, *id));
    }
    if (id && rest.substr(slash) == "/report.csv") return report(s, *id);
  }
  throw Refusal{404, "nothing at " + std::string(path.substr(0, 200))};
}

Response App::Impl::route_api(const Request& r, const Session& s) {
  const std::string_view path = r.path();
  const bool post = r.method == "POST";
  if (path == "/api/jobs" && !post) return job_list(s);
  if (path == "/api/check" && post) return csv_operation(r, s, "check");
  if (path == "/api/dry-run" && post) return csv_operation(r, s, "dry_run");
  if (path == "/api/submit" && post) return csv_operation(r, s, "submit");
  if (path.rfind("/api/items/", 0) == 0 && !post) {
    std::string_view rest = path.substr(11);
    const auto slash = rest.find('/');
    const auto id = parse_id(rest.substr(0, slash));
    if (id && slash != std::string_view::npos && rest.substr(slash) == "/series") {
      return series(s, *id);
    }
  }
  if (path.rfind("/api/jobs/", 0) == 0) {
    std::string_view rest = path.substr(10);
    const auto slash = rest.find('/');
    const auto id = parse_id(rest.substr(0, slash));
    if (id && slash == std::string_view::npos && !post) return job_detail(r, s, *id);
    if (id && slash != std::string_view::npos && post) {
      return control(s, *id, std::string(rest.substr(slash + 1)));
    }
  }
  throw Refusal{404, "no API at " + std::string(path.substr(0, 200))};
}

Response App::Impl::asset(const Request& r) {
  const Asset* a = find_asset(r.path().substr(8));
  if (!a) throw Refusal{404, "no such asset"};
  Response out;
  out.content_type = std::string(a->content_type);
  out.body = std::string(a->body);
  out.cacheable = true;
  return out;
}

// Prometheus: from a loopback address, or with the bearer token of web.metrics_token_file.
Response App::Impl::metrics(const Request& r) {
  if (!d.metrics) throw Refusal{404, "metrics are not enabled"};
  const std::string_view auth = r.header("authorization");
  const bool token_ok = !d.metrics_token.empty() && auth.rfind("Bearer ", 0) == 0 &&
                        same_token(auth.substr(7), d.metrics_token);
  if (!r.loopback && !token_ok) {
    Response out = text_response(401, "metrics: connect from loopback or send the bearer token");
    out.set("WWW-Authenticate", "Bearer");
    return out;
  }
  Response out = text_response(200, d.metrics());
  out.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return out;
}

}  // namespace p2x::web
