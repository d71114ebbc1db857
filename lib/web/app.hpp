// web/app: the web door's routes as a plain function from Request to Response (no sockets).
//
// Everything a person does here goes through the daemon's own operations (the ipc::Dispatcher
// the control socket serves: submit, check, dry_run, list, status, items, report, cancel,
// pause, resume, retry), with the XNAT user as the peer: one implementation behind both doors.
// What the web door adds is who may do what, decided by XNAT:
// - log in: the credentials are checked by XNAT (POST /data/JSESSION); failed logins are
//   rate-limited per client address; the password is neither kept nor logged;
// - follow: only jobs of projects the person may read in XNAT (admins named in web.admins: all);
//   another project's job is "not found", in HTML and JSON alike;
// - submit and dry-run: only into projects the person may create data in (XNAT member or owner);
// - control (cancel, pause, resume, retry): the job's submitter and admins.
// Every POST needs the session's CSRF token (a form field or the X-CSRF-Token header) and is
// refused when the browser says it comes from another site (Origin, Sec-Fetch-Site).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "ipc/server.hpp"
#include "web/auth.hpp"
#include "web/http.hpp"

namespace p2x::web {

// XNAT as a logging-in person sees it (xnat::UserDirectory in the daemon; tests may fake it).
// Methods throw xnat::XnatError.
class IXnatUsers {
 public:
  virtual ~IXnatUsers() = default;
  virtual std::string login(const std::string& user, const std::string& password) = 0;
  virtual std::vector<std::string> projects(const std::string& xnat_session, bool create) = 0;
  virtual void logout(const std::string& xnat_session) noexcept = 0;
};

struct AppDeps {
  const config::Config& cfg;
  const ipc::Dispatcher& operations;
  IXnatUsers& users;
  std::function<std::string()> metrics;  // the Prometheus text; empty: no /metrics
  std::string metrics_token;             // bearer token for /metrics off loopback ("" = none)
  Clock clock;                           // steady clock (tests pin it); empty: the real one
};

class App {
 public:
  explicit App(AppDeps deps);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Answers one request; never throws (an internal error is a 500 page).
  Response handle(const Request& request);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace p2x::web
