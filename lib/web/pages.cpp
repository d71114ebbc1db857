// web/pages: see pages.hpp. The element ids and data- attributes are what app.js looks for.
#include "web/pages.hpp"

#include "web/http.hpp"

namespace p2x::web {

namespace {

const char* const kStates[] = {"queued",     "querying",  "retrieving", "retrieved",
                               "validating", "validated", "pushing",    "pushed",
                               "verifying",  "verified",  "failed",     "cancelled"};

// The frame of every page: head, the navigation with the logout form, then `body`.
std::string frame(const std::string& title, const std::string& page, const std::string& body,
                  const Session* s) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>" +
      html_escape(title) +
      " - pacs2xnat</title>"
      "<link rel=\"stylesheet\" href=\"/assets/style.css\">";
  if (s) h += "<meta name=\"csrf-token\" content=\"" + s->csrf + "\">";
  h += "<script src=\"/assets/app.js\" defer></script></head>\n<body data-page=\"" + page + "\">";
  h += "<header><span class=\"brand\">pacs2xnat</span>";
  if (s) {
    h += "<nav><a href=\"/jobs\">Jobs</a> <a href=\"/submit\">Submit</a></nav>"
         "<form class=\"logout\" method=\"post\" action=\"/logout\"><span id=\"whoami\">" +
         html_escape(s->user) + (s->admin ? " (admin)" : "") +
         "</span> <input type=\"hidden\" name=\"csrf\" value=\"" + s->csrf +
         "\"><button type=\"submit\">Log out</button></form>";
  }
  h += "</header>\n<main>" + body + "</main></body></html>\n";
  return h;
}

}  // namespace

std::string login_page(const std::string& login_csrf, const std::string& message,
                       const std::string& user) {
  std::string body = "<h1>Log in with your XNAT account</h1>";
  if (!message.empty())
    body += "<p class=\"error\" id=\"login-error\">" + html_escape(message) + "</p>";
  body +=
      "<form method=\"post\" action=\"/login\" class=\"login\">"
      "<input type=\"hidden\" name=\"csrf\" value=\"" +
      login_csrf +
      "\">"
      "<label>XNAT user <input name=\"user\" id=\"user\" autocomplete=\"username\" required "
      "value=\"" +
      html_escape(user) +
      "\"></label>"
      "<label>Password <input type=\"password\" name=\"password\" id=\"password\" "
      "autocomplete=\"current-password\" required></label>"
      "<button type=\"submit\" id=\"login\">Log in</button></form>";
  return frame("Log in", "login", body, nullptr);
}

std::string jobs_page(const Session& s) {
  std::string body =
      "<h1>Jobs</h1><p class=\"hint\">" +
      std::string(s.admin ? "As an admin you see every job."
                          : "Jobs of the XNAT projects you may read.") +
      "</p><table id=\"jobs\"><thead><tr><th>Job</th><th>Project</th><th>PACS</th><th>Who</th>"
      "<th>Created</th><th>State</th><th>Progress</th><th>Counts</th><th>Rate</th><th>ETA</th>"
      "</tr></thead><tbody></tbody></table><p id=\"updated\" class=\"hint\"></p>";
  return frame("Jobs", "jobs", body, &s);
}

std::string job_page(const Session& s, std::int64_t id) {
  const std::string n = std::to_string(id);
  std::string filter = "<select id=\"state-filter\"><option value=\"\">every state</option>";
  for (const char* st : kStates) filter += std::string("<option>") + st + "</option>";
  filter += "</select>";
  std::string body =
      "<h1>Job " + n + "</h1><section id=\"summary\" data-job=\"" + n +
      "\"></section>"
      "<p class=\"controls\"><button data-action=\"pause\">Pause</button> "
      "<button data-action=\"resume\">Resume</button> "
      "<button data-action=\"retry\" id=\"retry\">Retry failed</button> "
      "<button data-action=\"cancel\" class=\"danger\">Cancel</button> "
      "<a href=\"/jobs/" +
      n +
      "/report.csv\" id=\"report\" download>Download report (CSV)</a></p>"
      "<p id=\"message\" class=\"message\"></p>"
      "<p>Show " +
      filter +
      " <button id=\"prev\">&lt; previous</button> <span id=\"page\"></span> "
      "<button id=\"next\">next &gt;</button></p>"
      "<table id=\"items\"><thead><tr><th>Row</th><th>Line</th><th>Key</th><th>Subject</th>"
      "<th>Session</th><th>State</th><th>Instances expected / received / verified (click a row: "
      "per series)</th>"
      "<th>Attempts</th><th>Last reason</th><th>Updated</th></tr></thead><tbody></tbody></table>";
  return frame("Job " + n, "job", body, &s);
}

std::string submit_page(const Session& s, const std::vector<std::string>& projects,
                        const std::vector<std::string>& pacs) {
  std::string project_options, pacs_options;
  for (const auto& p : projects) project_options += "<option>" + html_escape(p) + "</option>";
  for (const auto& p : pacs) pacs_options += "<option>" + html_escape(p) + "</option>";
  std::string body =
      "<h1>Submit a CSV</h1>"
      "<p class=\"hint\">Projects you may create data in, as XNAT says (member or owner).</p>"
      "<form id=\"submit-form\"><label>XNAT project <select id=\"project\" required>" +
      project_options + "</select></label><label>PACS <select id=\"pacs\">" + pacs_options +
      "</select></label><label>CSV file <input type=\"file\" id=\"csv\" accept=\".csv,text/csv,"
      "text/plain\" required></label>"
      "<fieldset><legend>Filters and options</legend>"
      "<label>Modality <input id=\"modality\" maxlength=\"16\" placeholder=\"e.g. MR\"></label>"
      "<label>Series description <input id=\"series_description\" placeholder=\"e.g. T1*\"></label>"
      "<label><input type=\"checkbox\" id=\"strict\"> strict labels</label>"
      "<label><input type=\"checkbox\" id=\"skip_existing\"> skip sessions that exist</label>"
      "<label><input type=\"checkbox\" id=\"append\"> append to sessions that exist</label>"
      "<label><input type=\"checkbox\" id=\"no_anonymisation_check\"> no anonymisation check "
      "(identifiable data project)</label>"
      "<label><input type=\"checkbox\" id=\"allow_duplicate\"> allow a duplicate CSV</label>"
      "</fieldset>"
      "<p><button type=\"button\" id=\"check\">1. Check the CSV</button> "
      "<button type=\"button\" id=\"dry-run\" disabled>2. Dry run</button> "
      "<button type=\"button\" id=\"queue\" disabled>3. Queue</button></p></form>"
      "<section id=\"result\"><p id=\"status\" class=\"message\"></p>"
      "<table id=\"problems\" hidden><thead><tr><th>Line</th><th>Column</th><th>Problem</th></tr>"
      "</thead><tbody></tbody></table><pre id=\"details\"></pre></section>";
  return frame("Submit", "submit", body, &s);
}

std::string error_page(int status, const std::string& message, const Session* s) {
  std::string body = "<h1>" + std::to_string(status) + "</h1><p class=\"error\">" +
                     html_escape(message) + "</p><p><a href=\"/jobs\">Jobs</a></p>";
  return frame("Error " + std::to_string(status), "error", body, s);
}

}  // namespace p2x::web
