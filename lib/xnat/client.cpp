// xnat/client: the XNAT verbs (login, project check, listings, import) on top of the connection
// pool and the socket-free request layer. See xnat.hpp for the threading and retry contract.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <map>
#include <mutex>

#include "metrics/recorder.hpp"
#include "xnat/request_kind.hpp"
#include "text/text.hpp"
#include "xnat/http_client.hpp"
#include "xnat/requests.hpp"
#include "xnat/xnat.hpp"
#include "xnat/zip_writer.hpp"

namespace p2x::xnat {

using detail::HttpRequest;
using detail::Response;
using std::chrono::seconds;

namespace {

constexpr std::size_t kMaxIdle = 4;

bool plausible_session_id(const std::string& s) {
  return !s.empty() && s.size() <= 256 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

// JSESSIONID value from Set-Cookie headers, "" if none.
std::string cookie_session(const std::vector<std::string>& set_cookies) {
  for (const auto& c : set_cookies) {
    if (c.rfind("JSESSIONID=", 0) != 0) continue;
    auto end = c.find(';');
    return c.substr(11, end == std::string::npos ? std::string::npos : end - 11);
  }
  return "";
}

// The study zip as a request body.
class ZipBody : public detail::BodySource {
 public:
  explicit ZipBody(const detail::ZipPlan& plan) : stream_(plan) {}
  std::uint64_t size() const override { return stream_.size(); }
  void restart() override { stream_.restart(); }
  std::size_t read(char* buf, std::size_t cap) override { return stream_.read(buf, cap); }

 private:
  detail::ZipStream stream_;
};

}  // namespace

struct Client::Impl {
  Settings settings;
  Credentials creds;
  detail::Url url;
  std::unique_ptr<detail::TlsContext> tls;

  std::mutex pool_mu;
  std::vector<std::unique_ptr<detail::Connection>> idle;

  std::mutex auth_mu;  // held during a login, so concurrent 401s cause one login
  std::string session_id;
  std::uint64_t generation = 0;

  std::atomic<std::int64_t> requests{0}, logins{0}, connections{0};

  seconds timeout() const { return seconds(std::max(1, settings.timeout_s)); }

  std::unique_ptr<detail::Connection> take_idle() {
    std::lock_guard lock(pool_mu);
    if (idle.empty()) return nullptr;
    auto c = std::move(idle.back());
    idle.pop_back();
    return c;
  }

  void give_back(std::unique_ptr<detail::Connection> c) {
    if (!c->reusable()) return;
    std::lock_guard lock(pool_mu);
    if (idle.size() < kMaxIdle) idle.push_back(std::move(c));
  }

  std::unique_ptr<detail::Connection> open_connection() {
    ++connections;
    return std::make_unique<detail::Connection>(url, tls.get(), timeout());
  }

  // One request, told to the metrics recorder (if any): its kind, latency and status.
  Response send(const HttpRequest& req, bool reuse) {
    if (!settings.recorder) return send_on_connection(req, reuse);
    const auto started = std::chrono::steady_clock::now();
    const auto seconds_since = [&started] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    };
    const std::string kind = detail::request_kind(req.target);
    try {
      Response r = send_on_connection(req, reuse);
      settings.recorder->xnat_request(kind, seconds_since(), r.status);
      if (req.body_source && r.status / 100 == 2) {
        settings.recorder->uploaded(static_cast<std::int64_t>(req.body_source->size()));
      }
      return r;
    } catch (const XnatError& e) {
      settings.recorder->xnat_request(kind, seconds_since(), e.http_status);
      throw;
    }
  }

  // One request on a pooled (reuse) or fresh connection. A pooled connection the server had
  // already closed is replaced once by a fresh one.
  Response send_on_connection(const HttpRequest& req, bool reuse) {
    auto started = std::chrono::steady_clock::now();
    std::unique_ptr<detail::Connection> c = reuse ? take_idle() : nullptr;
    bool pooled = c != nullptr;
    if (!c) c = open_connection();
    for (;;) {
      ++requests;
      try {
        Response r = c->perform(req);
        give_back(std::move(c));
        spdlog::debug("xnat: {} {} -> {} ({} ms)", req.method, req.target, r.status,
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - started)
                          .count());
        return r;
      } catch (const XnatError&) {
        if (!pooled || !c->dropped_before_answer()) throw;
        pooled = false;
        c = open_connection();
      }
    }
  }

  void login_locked() {
    HttpRequest req;
    req.method = "POST";
    req.target = detail::make_target(url, "/data/JSESSION");
    req.headers = {{"Authorization", detail::basic_auth(creds.user, creds.password)},
                   {"User-Agent", settings.user_agent}};
    req.write_timeout = req.read_timeout = timeout();
    ++logins;
    Response r = send(req, true);
    if (r.status == 401)
      throw XnatError(ErrorKind::Auth, 401, "XNAT refused the credentials for user " + creds.user);
    detail::check("XNAT login as user " + creds.user, r);
    std::string id = text::trim(r.body);
    if (!plausible_session_id(id)) id = cookie_session(r.set_cookies);
    if (!plausible_session_id(id))
      throw XnatError(ErrorKind::Unreadable, r.status,
                      "XNAT login answered without a session id: " + detail::text_extract(r.body));
    session_id = id;
    ++generation;
  }

  // A request with the session cookie; logs in first if needed and once more after a 401.
  Response authed(HttpRequest req, bool reuse) {
    std::uint64_t gen;
    std::string sid;
    {
      std::lock_guard lock(auth_mu);
      if (session_id.empty()) login_locked();
      gen = generation;
      sid = session_id;
    }
    req.headers.emplace_back("User-Agent", settings.user_agent);
    req.headers.emplace_back("Cookie", "JSESSIONID=" + sid);
    Response r = send(req, reuse);
    if (r.status != 401) return r;
    {
      std::lock_guard lock(auth_mu);
      if (generation == gen) {  // nobody renewed the session meanwhile
        spdlog::info("xnat: session expired; logging in again as {}", creds.user);
        login_locked();
      }
      sid = session_id;
    }
    req.headers.back().second = "JSESSIONID=" + sid;
    r = send(req, reuse);
    if (r.status == 401)
      throw XnatError(ErrorKind::Auth, 401, "XNAT refused the credentials for user " + creds.user);
    return r;
  }

  HttpRequest get(const std::string& path, const detail::Query& query) const {
    HttpRequest req;
    req.method = "GET";
    req.target = detail::make_target(url, path, query);
    req.write_timeout = req.read_timeout = timeout();
    return req;
  }
};

Client::Client(Settings settings, Credentials credentials) : impl_(std::make_unique<Impl>()) {
  impl_->url = detail::parse_url(settings.url);
  impl_->settings = std::move(settings);
  impl_->creds = std::move(credentials);
  if (impl_->url.tls)
    impl_->tls =
        std::make_unique<detail::TlsContext>(impl_->settings.verify_tls, impl_->settings.ca_file);
}

Client::~Client() = default;

void Client::login() {
  std::lock_guard lock(impl_->auth_mu);
  impl_->login_locked();
}

void Client::logout() noexcept {
  try {
    std::string sid;
    {
      std::lock_guard lock(impl_->auth_mu);
      sid = impl_->session_id;
      impl_->session_id.clear();
    }
    if (sid.empty()) return;
    HttpRequest req = impl_->get("/data/JSESSION", {});
    req.method = "DELETE";
    req.headers = {{"User-Agent", impl_->settings.user_agent}, {"Cookie", "JSESSIONID=" + sid}};
    impl_->send(req, true);
  } catch (const std::exception& e) {
    spdlog::debug("xnat: logout failed: {}", e.what());
  }
}

bool Client::project_exists(const std::string& project) {
  Response r = impl_->authed(
      impl_->get("/data/projects/" + detail::seg(project), {{"format", "json"}}), true);
  if (r.status == 404) return false;
  detail::check("XNAT project " + project, r);
  return true;
}

std::vector<SessionSummary> Client::sessions(const std::string& project) {
  Response r =
      impl_->authed(impl_->get("/data/projects/" + detail::seg(project) + "/experiments",
                               {{"format", "json"}, {"columns", "ID,label,UID,subject_label"}}),
                    true);
  detail::check("listing the sessions of XNAT project " + project, r);
  return detail::parse_experiments(r.body);
}

namespace {

using Counts = std::map<std::string, std::pair<std::int64_t, std::int64_t>>;

// A session's scans with their SeriesInstanceUIDs: the experiment's own JSON carries them all
// (one request); an XNAT that answers it in another shape (Protocol) gets the scan listing and
// one request per scan without a UID. An answer that cannot be read at all is an error.
std::vector<ScanInfo> scans_of(Client::Impl& c, const std::string& id, const std::string& what) {
  const std::string exp = "/data/experiments/" + detail::seg(id);
  Response r = c.authed(c.get(exp, {{"format", "json"}}), true);
  std::vector<ScanInfo> scans;
  bool listed = false;
  if (r.status >= 200 && r.status < 300) {
    try {
      scans = detail::parse_experiment_scans(r.body);
      listed = true;
    } catch (const XnatError& e) {
      if (e.kind != ErrorKind::Protocol) throw;
      spdlog::debug("xnat: {}: {}; listing the scans instead", what, e.what());
    }
  }
  if (!listed) {
    r = c.authed(c.get(exp + "/scans", {{"format", "json"}}), true);
    if (r.status == 404) return {};  // a session without scans
    detail::check("scans of " + what, r);
    scans = detail::parse_scans(r.body);
  }
  for (auto& scan : scans) {
    if (!scan.series_uid.empty() || scan.id.empty()) continue;
    r = c.authed(c.get(exp + "/scans/" + detail::seg(scan.id), {{"format", "json"}}), true);
    detail::check("scan " + scan.id + " of " + what, r);
    detail::parse_scan_item(r.body, scan);
  }
  return scans;
}

// Files per scan: one request to /scans/ALL/resources, else (another shape of answer: Protocol)
// the listing of every file. An answer that cannot be read at all is an error.
Counts counts_of(Client::Impl& c, const std::string& id, const std::string& what) {
  const std::string base = "/data/experiments/" + detail::seg(id) + "/scans/ALL";
  Response r = c.authed(c.get(base + "/resources", {{"format", "json"}}), true);
  if (r.status >= 200 && r.status < 300) {
    try {
      return detail::parse_scan_resources(r.body);
    } catch (const XnatError& e) {
      if (e.kind != ErrorKind::Protocol) throw;
      spdlog::debug("xnat: {}: {}; listing the files instead", what, e.what());
    }
  }
  r = c.authed(c.get(base + "/files", {{"format", "json"}}), true);
  if (r.status == 404) return {};
  detail::check("files of " + what, r);
  return detail::parse_scan_files(r.body);
}

// A prearchive session's scans (url as the prearchive listing gives it: /prearchive/projects/
// P/TS/NAME): IDs and SeriesInstanceUIDs from its session document (its JSON scan listing has
// no UIDs), files per scan from <session>/resources. Two requests; none for a session XNAT has
// no document for yet (404: still building).
std::vector<ScanInfo> prearchive_scans_of(Client::Impl& c, const std::string& url,
                                          const std::string& what) {
  const std::string base = "/data" + url;
  Response r = c.authed(c.get(base, {{"format", "xml"}}), true);
  if (r.status == 404) return {};
  detail::check("session document of XNAT " + what, r);
  const auto uids = detail::parse_session_xml_scan_uids(r.body);
  if (uids.empty()) return {};
  r = c.authed(c.get(base + "/resources", {{"format", "json"}}), true);
  detail::check("files of XNAT " + what, r);
  const Counts counts = detail::parse_scan_resources(r.body);
  std::vector<ScanInfo> scans;
  for (const auto& [id, uid] : uids) {
    ScanInfo s;
    s.id = id;
    s.series_uid = uid;
    if (const auto it = counts.find(id); it != counts.end()) {
      s.files = it->second.first;
      s.bytes = it->second.second;
    }
    scans.push_back(std::move(s));
  }
  return scans;
}

// A session's files and bytes summed over its scans stay within detail::kMaxCount, so no sum a
// caller makes of them (per series, per study) can overflow.
void check_totals(const SessionInfo& s, const std::string& what) {
  std::int64_t files = 0, bytes = 0;
  for (const auto& scan : s.scans) {
    if (scan.files > detail::kMaxCount - files || scan.bytes > detail::kMaxCount - bytes)
      throw XnatError(ErrorKind::Unreadable, 200,
                      "XNAT's file counts or sizes of " + what + " add up to more than " +
                          std::to_string(detail::kMaxCount));
    files += scan.files;
    bytes += scan.bytes;
  }
}

}  // namespace

std::optional<SessionInfo> Client::session(const std::string& project, const std::string& label) {
  const std::string what = "XNAT session " + project + "/" + label;
  Response r = impl_->authed(
      impl_->get("/data/projects/" + detail::seg(project) + "/experiments",
                 {{"format", "json"}, {"columns", "ID,label,UID,subject_label"}, {"label", label}}),
      true);
  detail::check(what, r);
  std::optional<SessionInfo> found;
  for (auto& s : detail::parse_experiments(r.body)) {
    if (s.label != label || s.id.empty()) continue;
    found.emplace();
    found->id = s.id;
    found->label = s.label;
    found->subject_label = s.subject_label;
    found->study_uid = s.study_uid;
    break;
  }
  if (!found) return std::nullopt;
  found->scans = scans_of(*impl_, found->id, what);
  if (found->scans.empty()) return found;
  const Counts counts = counts_of(*impl_, found->id, what);
  for (auto& scan : found->scans) {
    auto it = counts.find(scan.id);
    if (it == counts.end()) continue;
    scan.files = it->second.first;
    scan.bytes = it->second.second;
  }
  check_totals(*found, what);
  return found;
}

std::optional<SessionInfo> Client::prearchive_session(const std::string& project,
                                                      const std::string& label,
                                                      const std::string& study_uid) {
  const std::string what = "prearchive session " + project + "/" + label;
  Response r = impl_->authed(
      impl_->get("/data/prearchive/projects/" + detail::seg(project), {{"format", "json"}}), true);
  if (r.status == 404) return std::nullopt;
  detail::check("XNAT " + what, r);
  std::optional<SessionInfo> found;
  std::map<std::string, ScanInfo> best;  // per SeriesInstanceUID: the fullest copy
  for (const auto& e : detail::parse_prearchive(r.body)) {
    if (e.name != label && e.folder != label) continue;
    if (!study_uid.empty() && !e.tag.empty() && e.tag != study_uid) continue;
    if (!found) {
      found.emplace();
      found->id = e.url;
      found->label = label;
      found->subject_label = e.subject;
      found->study_uid = e.tag;
    }
    if (!text::iequals(e.status, "READY")) continue;  // still building, in conflict or error
    for (auto& scan : prearchive_scans_of(*impl_, e.url, what)) {
      auto& b = best[scan.series_uid];
      if (scan.files >= b.files) b = std::move(scan);
    }
  }
  if (found) {
    for (auto& [uid, scan] : best) found->scans.push_back(std::move(scan));
    check_totals(*found, what);
  }
  return found;
}

AnonymisationSettings Client::anonymisation(const std::string& project) {
  AnonymisationSettings out;
  auto ask = [this](const std::string& path, Answer& answer, std::string& note) {
    Response r = impl_->authed(impl_->get(path, {}), true);
    if (r.status >= 400 && r.status < 500 &&
        detail::classify_status(r.status) != ErrorKind::Transient) {
      note = path + " answered " + detail::failure_message("HTTP", r).substr(6);
      return;
    }
    detail::check("XNAT " + path, r);
    const auto v = detail::parse_enabled(r.body);
    if (!v)
      throw XnatError(ErrorKind::Unreadable, r.status,
                      "XNAT " + path + " answered '" + detail::text_extract(r.body, 40) +
                          "', not true or false");
    answer = *v ? Answer::Yes : Answer::No;
  };
  ask("/xapi/anonymize/projects/" + detail::seg(project) + "/enabled", out.project,
      out.project_note);
  ask("/xapi/anonymize/site/enabled", out.site, out.site_note);
  return out;
}

std::optional<int> Client::prearchive_code(const std::string& project, std::string* note) {
  const std::string path = "/data/projects/" + detail::seg(project) + "/prearchive_code";
  Response r = impl_->authed(impl_->get(path, {}), true);
  std::string why;
  std::optional<int> code;
  if (r.status >= 200 && r.status < 300) {
    code = detail::parse_prearchive_code(r.body);
    if (!code)
      throw XnatError(
          ErrorKind::Unreadable, r.status,
          "XNAT " + path + " answered '" + detail::text_extract(r.body, 40) + "', not a number");
  } else if (r.status >= 400 && r.status < 500 &&
             detail::classify_status(r.status) != ErrorKind::Transient) {
    why = path + " answered " + detail::failure_message("HTTP", r).substr(6);
  } else {
    detail::check("XNAT " + path, r);
  }
  if (note) *note = why;
  return code;
}

namespace {

// Why XNAT refused to archive an upload: DICOM-zip answers every archive failure with the same
// 400 "unable to archive for the Prearchive session" (DicomZipImporter.xmlBuild) and writes the
// real reason ("Session already exists with matching files.", "Invalid modification of session
// subject ...") into the log of the prearchive session the upload left behind (PrearcUtils.log;
// read as <session>/logs/last, PrearcSessionResource). Best effort: "" when it cannot be found.
std::string archive_failure_reason(Client::Impl& c, const std::string& project,
                                   const std::string& session) {
  try {
    Response r = c.authed(
        c.get("/data/prearchive/projects/" + detail::seg(project), {{"format", "json"}}), true);
    if (r.status < 200 || r.status >= 300) return {};
    std::string newest;  // /prearchive/projects/P/<timestamp>/<name>: the latest sorts last
    for (const auto& e : detail::parse_prearchive(r.body)) {
      const bool failed = text::iequals(e.status, "CONFLICT") || text::iequals(e.status, "ERROR");
      if (failed && (e.name == session || e.folder == session) && e.url > newest) newest = e.url;
    }
    if (newest.empty()) return {};
    r = c.authed(c.get("/data" + newest + "/logs/last", {}), true);
    if (r.status < 200 || r.status >= 300) return {};
    return detail::text_extract(r.body, 300);
  } catch (const std::exception& e) {
    spdlog::debug("xnat: no prearchive log for {}/{}: {}", project, session, e.what());
    return {};
  }
}

// POSTs the plan's zip to the import service; returns the session URI XNAT reports.
std::string send_zip(Client::Impl& c, const detail::ZipPlan& plan, const std::string& project,
                     const std::string& subject, const std::string& session,
                     const ImportOptions& options, double plan_s) {
  const bool pre = options.prearchive.value_or(c.settings.prearchive);
  const std::string what = "XNAT import of " + project + "/" + subject + "/" + session;
  ZipBody body(plan);
  HttpRequest req;
  req.method = "POST";
  req.target = detail::make_target(c.url, "/data/services/import",
                                   detail::import_query(project, subject, session, pre,
                                                        options.append, options.overwrite_files));
  req.content_type = "application/zip";
  req.body_source = &body;
  const auto zip_size = static_cast<std::int64_t>(plan.zip_size);
  auto extra = seconds(zip_size / std::max<std::int64_t>(1, c.settings.upload_min_bytes_per_s));
  req.write_timeout = req.read_timeout = c.timeout() + extra;
  const auto t0 = std::chrono::steady_clock::now();
  Response r;
  try {
    r = c.authed(req, false);
  } catch (const detail::ZipSourceChanged& e) {
    throw StudyFileChanged(e.path, what + " aborted before the upload was complete: " + e.what() +
                                       "; that file was not sent");
  }
  const double up = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.status == 400 && text::to_lower(r.body).find("unable to archive") != std::string::npos) {
    const std::string why = archive_failure_reason(c, project, session);
    if (!why.empty())
      throw XnatError(detail::classify(r), r.status,
                      detail::failure_message(what, r) + " (XNAT's prearchive log: " + why + ")");
  }
  detail::check(what, r);
  std::string uri = detail::check_import_uris(r.body, project, pre);
  if (uri.empty()) {
    spdlog::warn(
        "xnat: {}: XNAT answered 200 but filed none of the {} file(s) (a series import "
        "filter?)",
        what, plan.entries.size());
    uri = "XNAT, which filed none of the " + std::to_string(plan.entries.size()) +
          " file(s) (its answer named no session)";
  }
  spdlog::info(
      "xnat: imported {} files ({:.1f} MB) as {}/{}/{} -> {} (plan {:.2f} s, upload "
      "{:.2f} s, {:.1f} MB/s)",
      plan.entries.size(), zip_size / 1e6, project, subject, session, uri, plan_s, up,
      up > 0 ? zip_size / 1e6 / up : 0.0);
  return uri;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string Client::import_study(const std::string& project, const std::string& subject,
                                 const std::string& session, const std::string& study_dir,
                                 bool append, std::optional<bool> prearchive) {
  const auto t0 = std::chrono::steady_clock::now();
  const detail::ZipPlan plan = detail::plan_zip(study_dir);
  ImportOptions options;
  options.append = append;
  options.prearchive = prearchive;
  return send_zip(*impl_, plan, project, subject, session, options, seconds_since(t0));
}

std::string Client::import_files(const std::string& project, const std::string& subject,
                                 const std::string& session, const std::vector<StudyFile>& files,
                                 const ImportOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<detail::ZipEntry> entries;
  entries.reserve(files.size());
  for (const auto& f : files) {
    detail::ZipEntry e;
    e.path = f.path;
    e.name = f.name;
    e.size = f.size;
    e.crc = f.crc;
    entries.push_back(std::move(e));
  }
  detail::ZipPlan plan;
  try {
    plan = detail::plan_zip_known(std::move(entries));
  } catch (const detail::ZipSourceChanged& e) {
    throw StudyFileChanged(e.path, "XNAT import of " + project + "/" + subject + "/" + session +
                                       " not sent: " + e.what());
  }
  return send_zip(*impl_, plan, project, subject, session, options, seconds_since(t0));
}

std::int64_t Client::requests_made() const noexcept {
  return impl_->requests;
}
std::int64_t Client::logins_made() const noexcept {
  return impl_->logins;
}
std::int64_t Client::connections_opened() const noexcept {
  return impl_->connections;
}

}  // namespace p2x::xnat
