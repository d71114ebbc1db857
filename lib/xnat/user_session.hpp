// xnat/user_session: XNAT as a logged-in person sees it, for the web door (lib/web).
//
// The daemon's own Client acts with the daemon's account; a person at the web door must only
// see and do what XNAT lets *them* do. UserDirectory checks their password by logging in with
// it (POST /data/JSESSION, Basic auth: XNAT's answer is the judge), then asks XNAT with their
// own JSESSIONID which projects they may read, or create data in:
//   GET /data/projects?format=json&permissions=read|create&dataType=xnat:subjectData
// (ProjectListResource -> GroupsAndPermissionsCache: owners all actions, members read/create/
// edit, collaborators read; data admins every project). Never `accessible=true`: that list also
// holds protected projects whose data the person cannot read.
//
// Requests go over the same HTTP layer as the Client (http_client.hpp), on a fresh connection
// each (logins and permission checks are rare: lib/web caches the answers). The password is
// only ever placed in the Authorization header of the login request; it is in no message.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "xnat/xnat.hpp"

namespace p2x::xnat {

enum class Permission { Read, Create };
const char* to_string(Permission p);  // "read", "create": XNAT's action names

class UserDirectory {
 public:
  // settings.url, verify_tls, ca_file, timeout_s and user_agent are used. Throws
  // std::invalid_argument for a malformed URL, XnatError(Tls) for an unreadable CA file.
  explicit UserDirectory(Settings settings);
  ~UserDirectory();
  UserDirectory(const UserDirectory&) = delete;
  UserDirectory& operator=(const UserDirectory&) = delete;

  // Logs `user` in with `password`; returns their XNAT session id. Throws XnatError Auth when
  // XNAT refuses the credentials (401), Transient when it cannot be reached or fails (5xx).
  std::string login(const std::string& user, const std::string& password);
  // IDs of the projects on which the session's user holds `permission` for subject data.
  // Throws XnatError Auth when the session is no longer valid (401).
  std::vector<std::string> projects(const std::string& session_id, Permission permission);
  // DELETE /data/JSESSION (best effort; never throws).
  void logout(const std::string& session_id) noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

namespace detail {
// The ID column of a {"ResultSet":{"Result":[...]}} project listing. Throws XnatError Protocol.
std::vector<std::string> parse_project_ids(const std::string& json);
}  // namespace detail

}  // namespace p2x::xnat
