// xnat/user_session: see user_session.hpp.
#include "xnat/user_session.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "text/text.hpp"
#include "xnat/http_client.hpp"
#include "xnat/requests.hpp"

namespace p2x::xnat {

using detail::HttpRequest;
using detail::Response;

const char* to_string(Permission p) {
  return p == Permission::Read ? "read" : "create";
}

namespace detail {

std::vector<std::string> parse_project_ids(const std::string& body) {
  const auto j = nlohmann::json::parse(body, nullptr, false);
  const auto bad = [] {
    return XnatError(ErrorKind::Protocol, 200,
                     "XNAT answered the project listing without ResultSet.Result");
  };
  if (!j.is_object() || !j.contains("ResultSet") || !j["ResultSet"].is_object()) throw bad();
  const auto& rs = j["ResultSet"];
  if (!rs.contains("Result") || !rs["Result"].is_array()) throw bad();
  std::vector<std::string> ids;
  for (const auto& row : rs["Result"]) {
    if (!row.is_object()) continue;
    const auto id = row.find("ID");
    if (id != row.end() && id->is_string() && !id->get_ref<const std::string&>().empty()) {
      ids.push_back(id->get<std::string>());
    }
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace detail

namespace {

bool plausible_session_id(const std::string& s) {
  return !s.empty() && s.size() <= 256 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.';
  });
}

std::string cookie_session(const std::vector<std::string>& set_cookies) {
  for (const auto& c : set_cookies) {
    if (c.rfind("JSESSIONID=", 0) != 0) continue;
    const auto end = c.find(';');
    return c.substr(11, end == std::string::npos ? std::string::npos : end - 11);
  }
  return "";
}

}  // namespace

struct UserDirectory::Impl {
  Settings settings;
  detail::Url url;
  std::unique_ptr<detail::TlsContext> tls;

  std::chrono::seconds timeout() const {
    return std::chrono::seconds(std::max(1, settings.timeout_s));
  }

  Response send(HttpRequest req) {
    req.headers.emplace_back("User-Agent", settings.user_agent);
    req.write_timeout = req.read_timeout = timeout();
    detail::Connection connection(url, tls.get(), timeout());
    return connection.perform(req);
  }
};

UserDirectory::UserDirectory(Settings settings) : impl_(std::make_unique<Impl>()) {
  impl_->settings = std::move(settings);
  impl_->url = detail::parse_url(impl_->settings.url);
  if (impl_->url.tls) {
    impl_->tls =
        std::make_unique<detail::TlsContext>(impl_->settings.verify_tls, impl_->settings.ca_file);
  }
}

UserDirectory::~UserDirectory() = default;

std::string UserDirectory::login(const std::string& user, const std::string& password) {
  HttpRequest req;
  req.method = "POST";
  req.target = detail::make_target(impl_->url, "/data/JSESSION");
  req.headers = {{"Authorization", detail::basic_auth(user, password)}};
  const Response r = impl_->send(std::move(req));
  if (r.status == 401 || r.status == 403) {
    throw XnatError(ErrorKind::Auth, r.status, "XNAT refused the user name or password");
  }
  detail::check("XNAT login", r);
  std::string id = text::trim(r.body);
  if (!plausible_session_id(id)) id = cookie_session(r.set_cookies);
  if (!plausible_session_id(id)) {
    throw XnatError(ErrorKind::Protocol, r.status, "XNAT's login answer holds no session id");
  }
  return id;
}

std::vector<std::string> UserDirectory::projects(const std::string& session_id,
                                                 Permission permission) {
  HttpRequest req;
  req.method = "GET";
  req.target = detail::make_target(impl_->url, "/data/projects",
                                   {{"format", "json"},
                                    {"permissions", to_string(permission)},
                                    {"dataType", "xnat:subjectData"}});
  req.headers = {{"Cookie", "JSESSIONID=" + session_id}};
  const Response r = impl_->send(std::move(req));
  if (r.status == 401) {
    throw XnatError(ErrorKind::Auth, 401, "the XNAT session has expired; log in again");
  }
  detail::check(std::string("XNAT projects with ") + to_string(permission) + " permission", r);
  return detail::parse_project_ids(r.body);
}

void UserDirectory::logout(const std::string& session_id) noexcept {
  try {
    HttpRequest req;
    req.method = "DELETE";
    req.target = detail::make_target(impl_->url, "/data/JSESSION");
    req.headers = {{"Cookie", "JSESSIONID=" + session_id}};
    impl_->send(std::move(req));
  } catch (...) {
    // best effort: XNAT expires the session by itself
  }
}

}  // namespace p2x::xnat
