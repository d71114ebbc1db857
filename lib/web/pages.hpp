// web/pages: the HTML of the web door's pages. Each is a small server-rendered shell (all text
// escaped); the live parts (tables, progress) are filled by /assets/app.js from the JSON API, so
// the pages hold no inline script and the CSP can forbid it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "web/auth.hpp"

namespace p2x::web {

std::string login_page(const std::string& login_csrf, const std::string& message,
                       const std::string& user);
std::string jobs_page(const Session& session);
std::string job_page(const Session& session, std::int64_t job_id);
std::string submit_page(const Session& session, const std::vector<std::string>& projects,
                        const std::vector<std::string>& pacs);
std::string error_page(int status, const std::string& message, const Session* session);

}  // namespace p2x::web
