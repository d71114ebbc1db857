// The web door against the real daemon and the XNAT stand-in, which knows each person's project
// roles (owner/member/collaborator) and answers /data/projects?permissions=... as XNAT does:
// login good and bad, who sees which jobs (HTML and JSON), who may act and submit, CSRF and
// cross-site POSTs, the end of an XNAT session, the login rate limit, security headers.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <set>
#include <regex>
#include <thread>

#include "harness.hpp"
#include "standin.hpp"
#include "support/temp_dir.hpp"
#include "web_client.hpp"

using namespace p2x::test;
using nlohmann::json;

namespace {

// Projects: PROJ (alice member, bob collaborator), OTHER (bob owner), SHARED (alice
// collaborator). carol is a web admin with no role anywhere but SHARED. admin is the daemon's
// own account (no roles: a data admin, like a site's service account).
struct WebWorld {
  TempDir dir{"p2x-web-access"};
  XnatStandin xnat{dir.file("xnat"),
                   {"admin:admin", "alice:alice-pw", "bob:bob-pw", "carol:carol-pw"},
                   {"PROJ", "OTHER", "SHARED"},
                   false,
                   {"--role", "alice:PROJ:member", "--role", "alice:SHARED:collaborator", "--role",
                    "bob:OTHER:owner", "--role", "bob:PROJ:collaborator", "--role",
                    "carol:SHARED:collaborator"}};
  std::uint16_t port = free_port();
  Daemon daemon{dir.path(), json{{"xnat", {{"url", xnat.url()}}},
                                 {"web",
                                  {{"listen", "127.0.0.1:" + std::to_string(port)},
                                   {"admins", {"carol"}},
                                   {"permissions_cache_s", 0},
                                   {"login_max_failures", 3},
                                   {"login_window_s", 600}}}}};
  WebWorld() { daemon.start(); }

  // A job queued through the control socket (the CLI), as uid of this test.
  int cli_job(const std::string& project, const std::string& accession) {
    const std::string csv = dir.file("job-" + accession + ".csv");
    write_file(csv, "Accession Number,Subject,Session\n" + accession + ",S" + accession + ",E" +
                        accession + "\n");
    auto r = daemon.cli({"submit", csv, "--project", project, "--pacs", "testpacs", "--json"});
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out)["job"].get<int>();
  }
};

std::string b64(const std::string& s) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    const unsigned n = (static_cast<unsigned char>(s[i]) << 16) |
                       (static_cast<unsigned char>(s[i + 1]) << 8) |
                       static_cast<unsigned char>(s[i + 2]);
    out += {t[n >> 18], t[(n >> 12) & 63], t[(n >> 6) & 63], t[n & 63]};
  }
  if (i + 1 == s.size()) {
    const unsigned n = static_cast<unsigned char>(s[i]) << 16;
    out += {t[n >> 18], t[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == s.size()) {
    const unsigned n =
        (static_cast<unsigned char>(s[i]) << 16) | (static_cast<unsigned char>(s[i + 1]) << 8);
    out += {t[n >> 18], t[(n >> 12) & 63], t[(n >> 6) & 63], '='};
  }
  return out;
}

std::set<int> job_ids(WebClient& c) {
  const auto r = c.get("/api/jobs");
  REQUIRE(r.status == 200);
  std::set<int> ids;
  const json answer = json::parse(r.body);
  for (const auto& j : answer["jobs"]) ids.insert(j["job"].get<int>());
  return ids;
}

void check_security_headers(const WebReply& r) {
  CHECK(r.header("content-security-policy").find("script-src 'self'") != std::string::npos);
  CHECK(r.header("content-security-policy").find("frame-ancestors 'none'") != std::string::npos);
  CHECK(r.header("content-security-policy").find("unsafe-inline") == std::string::npos);
  CHECK(r.header("x-frame-options") == "DENY");
  CHECK(r.header("x-content-type-options") == "nosniff");
  CHECK(r.header("referrer-policy") == "same-origin");
}

int jsession_requests(XnatStandin& xnat) {
  int n = 0;
  const json log = xnat.admin("GET", "/_admin/requests");
  for (const auto& r : log["requests"]) {
    if (r["path"] == "/data/JSESSION" && r["method"] == "POST") ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("login is checked by XNAT, the session cookie is HttpOnly and SameSite=Strict", "[web]") {
  WebWorld w;
  WebClient c(w.port);
  const auto bad = c.login("alice", "wrong");
  CHECK(bad.status == 401);
  CHECK(bad.body.find("XNAT refused that user name or password") != std::string::npos);
  CHECK(c.cookie("p2x_session").empty());
  CHECK(c.get("/api/jobs").status == 401);
  CHECK(c.get("/jobs").status == 303);  // to the login page
  CHECK(c.login("alice\nfake log line", "alice-pw").status == 400);
  CHECK(w.daemon.log().find("fake log line") == std::string::npos);

  const auto good = c.login("alice", "alice-pw");
  CHECK(good.status == 303);
  CHECK(good.header("location") == "/jobs");
  bool attributes = false;
  for (const auto& sc : good.set_cookies) {
    if (sc.rfind("p2x_session=", 0) != 0) continue;
    attributes = sc.find("HttpOnly") != std::string::npos &&
                 sc.find("SameSite=Strict") != std::string::npos &&
                 sc.find("Secure") == std::string::npos;  // plain HTTP on loopback
  }
  CHECK(attributes);
  CHECK(c.get("/api/jobs").status == 200);
  // The password is in no log line.
  CHECK(w.daemon.log().find("alice-pw") == std::string::npos);
  // Logout needs the CSRF token, then the session is gone.
  CHECK(c.request("POST", "/logout", "", "application/x-www-form-urlencoded").status == 403);
  CHECK(c.get("/api/jobs").status == 200);  // no token: still logged in
  const std::string token = c.csrf();
  CHECK(c.request("POST", "/logout", form_encode({{"csrf", token}}),
                  "application/x-www-form-urlencoded")
            .status == 303);
  CHECK(c.get("/api/jobs").status == 401);
}

TEST_CASE("a person sees and acts on the jobs of projects XNAT lets them read, nothing else",
          "[web]") {
  WebWorld w;
  const int proj = w.cli_job("PROJ", "A1");
  const int other = w.cli_job("OTHER", "A2");
  WebClient alice(w.port), bob(w.port), carol(w.port);
  REQUIRE(alice.login("alice", "alice-pw").status == 303);
  REQUIRE(bob.login("bob", "bob-pw").status == 303);
  REQUIRE(carol.login("carol", "carol-pw").status == 303);

  CHECK(job_ids(alice) == std::set<int>{proj});
  CHECK(job_ids(bob) == std::set<int>{proj, other});
  CHECK(job_ids(carol) == std::set<int>{proj, other});  // web admin

  const std::string o = std::to_string(other);
  for (const std::string& target :
       std::vector<std::string>{"/api/jobs/" + o, "/jobs/" + o, "/jobs/" + o + "/report.csv"}) {
    const auto r = alice.get(target);
    CHECK(r.status == 404);
    CHECK(r.body.find("OTHER") == std::string::npos);
  }
  CHECK(alice.get("/jobs").body.find("OTHER") == std::string::npos);
  // Items: the OTHER job's only item is item 2.
  CHECK(alice.get("/api/items/2/series").status == 404);
  CHECK(alice.get("/api/items/1/series").status == 200);
  CHECK(bob.get("/api/items/2/series").status == 200);
  CHECK(alice.get("/api/items/99/series").status == 404);
  CHECK(alice.api_post("/api/jobs/" + o + "/cancel").status == 404);
  CHECK(json::parse(w.daemon.cli({"status", o, "--json"}).out)["jobs"][0]["state"] == "active");

  // A job submitted on the command line: only admins may control it from the web.
  const std::string p = std::to_string(proj);
  CHECK(alice.get("/api/jobs/" + p).status == 200);
  CHECK(alice.api_post("/api/jobs/" + p + "/pause").status == 403);
  const auto paused = carol.api_post("/api/jobs/" + p + "/pause");
  CHECK(paused.status == 200);
  CHECK(json::parse(w.daemon.cli({"status", p, "--json"}).out)["jobs"][0]["paused"] == true);
  CHECK(w.daemon.log().find("pause of job " + p + " asked by XNAT user carol on the web") !=
        std::string::npos);
}

TEST_CASE("submit only into projects the person may create data in, the job records them",
          "[web]") {
  WebWorld w;
  WebClient alice(w.port), bob(w.port);
  REQUIRE(alice.login("alice", "alice-pw").status == 303);
  REQUIRE(bob.login("bob", "bob-pw").status == 303);
  const std::string csv = "Accession Number,Subject,Session\nACC9,SUBJ9,SESS9\n";
  const auto args = [&csv](const std::string& project) {
    return json{{"project", project},
                {"pacs", "testpacs"},
                {"csv_name", "web.csv"},
                {"csv_base64", b64(csv)}}
        .dump();
  };
  // The form offers only PROJ (member); SHARED is read-only for alice.
  const auto form = alice.get("/submit");
  CHECK(form.body.find("<option>PROJ</option>") != std::string::npos);
  CHECK(form.body.find("<option>SHARED</option>") == std::string::npos);
  const auto refused = alice.api_post("/api/submit", args("SHARED"));
  CHECK(refused.status == 403);
  CHECK(refused.body.find("member or owner") != std::string::npos);
  CHECK(alice.api_post("/api/dry-run", args("SHARED")).status == 403);
  CHECK(bob.api_post("/api/submit", args("PROJ")).status == 403);  // collaborator
  CHECK(json::parse(w.daemon.cli({"list", "--json"}).out)["jobs"].empty());

  const auto queued = alice.api_post("/api/submit", args("PROJ"));
  REQUIRE(queued.status == 200);
  const int id = json::parse(queued.body)["result"]["job"].get<int>();
  const auto status = json::parse(w.daemon.cli({"status", std::to_string(id), "--json"}).out);
  CHECK(status["jobs"][0]["submitted_user"] == "alice");
  // The submitter may control it; bob, who may read PROJ, may not.
  CHECK(bob.api_post("/api/jobs/" + std::to_string(id) + "/cancel").status == 403);
  CHECK(alice.api_post("/api/jobs/" + std::to_string(id) + "/cancel").status == 200);
  CHECK(
      json::parse(w.daemon.cli({"status", std::to_string(id), "--json"}).out)["jobs"][0]["state"] ==
      "cancelled");
  // The same validation as `pacs2xnat check`, with line and column.
  const auto checked = alice.api_post(
      "/api/check",
      json{{"csv_base64", b64("Accession Number,Subject,Session\nA1,S 1,E1\n")}}.dump());
  REQUIRE(checked.status == 200);
  const auto problems = json::parse(checked.body)["result"]["problems"];
  REQUIRE(problems.size() == 1);
  CHECK(problems[0]["line"] == 2);
  CHECK(problems[0]["column"] == 2);
}

TEST_CASE("POSTs without the CSRF token or from another site are refused", "[web]") {
  WebWorld w;
  const int id = w.cli_job("PROJ", "B1");
  WebClient carol(w.port);
  REQUIRE(carol.login("carol", "carol-pw").status == 303);
  const std::string target = "/api/jobs/" + std::to_string(id) + "/pause";
  const std::string token = carol.csrf();
  CHECK(carol.request("POST", target).status == 403);
  CHECK(carol.request("POST", target, "", "", {{"X-CSRF-Token", std::string(64, '0')}}).status ==
        403);
  CHECK(carol
            .request("POST", target, "", "",
                     {{"X-CSRF-Token", token}, {"Origin", "http://evil.example"}})
            .status == 403);
  CHECK(carol
            .request("POST", target, "", "",
                     {{"X-CSRF-Token", token}, {"Sec-Fetch-Site", "cross-site"}})
            .status == 403);
  CHECK(json::parse(
            w.daemon.cli({"status", std::to_string(id), "--json"}).out)["jobs"][0]["paused"] ==
        false);
  CHECK(carol
            .request(
                "POST", target, "", "",
                {{"X-CSRF-Token", token}, {"Origin", "http://127.0.0.1:" + std::to_string(w.port)}})
            .status == 200);
  // The login form: its token must match the cookie set with it.
  WebClient fresh(w.port);
  const auto forged = fresh.request(
      "POST", "/login",
      form_encode({{"csrf", std::string(64, 'a')}, {"user", "carol"}, {"password", "carol-pw"}}),
      "application/x-www-form-urlencoded");
  CHECK(forged.status == 403);
  CHECK(fresh.cookie("p2x_session").empty());
}

TEST_CASE("when XNAT ends the person's session, so does the web door", "[web]") {
  WebWorld w;
  WebClient alice(w.port);
  REQUIRE(alice.login("alice", "alice-pw").status == 303);
  REQUIRE(alice.get("/api/jobs").status == 200);
  w.xnat.admin("POST", "/_admin/expire_sessions");
  CHECK(alice.get("/api/jobs").status == 401);  // rights asked again (cache 0 s): expired
  CHECK(alice.get("/jobs").status == 303);      // and the web session is gone too
  CHECK(alice.get("/jobs").header("location") == "/login");
}

TEST_CASE("failed logins are rate-limited per address before XNAT is asked", "[web]") {
  WebWorld w;
  WebClient c(w.port);
  for (int i = 0; i < 3; ++i) CHECK(c.login("alice", "guess" + std::to_string(i)).status == 401);
  const int asked = jsession_requests(w.xnat);
  const auto limited = c.login("alice", "alice-pw");
  CHECK(limited.status == 429);
  CHECK(!limited.header("retry-after").empty());
  CHECK(limited.body.find("Too many failed logins") != std::string::npos);
  CHECK(jsession_requests(w.xnat) == asked);
  CHECK(c.cookie("p2x_session").empty());
}

TEST_CASE("every answer carries the security headers", "[web]") {
  WebWorld w;
  WebClient c(w.port);
  check_security_headers(c.get("/login"));
  check_security_headers(c.get("/api/jobs"));
  check_security_headers(c.get("/assets/app.js"));
  check_security_headers(c.get("/no/such/page"));
  REQUIRE(c.login("alice", "alice-pw").status == 303);
  for (const std::string& t :
       std::vector<std::string>{"/jobs", "/submit", "/jobs/999", "/api/jobs"}) {
    check_security_headers(c.get(t));
  }
  const auto page = c.get("/jobs");
  CHECK(page.body.find("<script>") == std::string::npos);
  CHECK(page.body.find("onclick") == std::string::npos);
  CHECK(page.header("cache-control") == "no-store");
}

TEST_CASE("over TLS the cookies are Secure and HSTS is sent", "[web]") {
  TempDir dir("p2x-web-tls");
  // The stand-in's test CA and its certificate for 127.0.0.1 serve the web door too.
  XnatStandin xnat(dir.file("xnat"), {"admin:admin", "alice:alice-pw"}, {"PROJ"}, true,
                   {"--role", "alice:PROJ:member"});
  const std::string certs = dir.file("xnat") + "/certs";
  const std::uint16_t port = free_port();
  Daemon daemon(dir.path(), json{{"xnat", {{"url", xnat.url()}, {"ca_file", xnat.ca_file()}}},
                                 {"web",
                                  {{"listen", "127.0.0.1:" + std::to_string(port)},
                                   {"tls_cert", certs + "/server.pem"},
                                   {"tls_key", certs + "/server.key"}}}});
  daemon.start();
  const std::string url = "https://127.0.0.1:" + std::to_string(port);
  const std::string jar = dir.file("cookies");
  const auto page = run_program(
      {"/usr/bin/curl", "-sS", "--cacert", xnat.ca_file(), "-D", "-", "-c", jar, url + "/login"});
  REQUIRE(page.exit_code == 0);
  std::string headers = page.out.substr(0, page.out.find("\r\n\r\n"));
  for (auto& ch : headers) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  CHECK(headers.find("strict-transport-security: max-age=31536000") != std::string::npos);
  CHECK(page.out.find("p2x_login=") != std::string::npos);
  const std::string token = hidden_value(page.out, "csrf");
  const auto login =
      run_program({"/usr/bin/curl", "-sS", "--cacert", xnat.ca_file(), "-D", "-", "-b", jar, "-H",
                   "Origin: " + url, "--data",
                   form_encode({{"csrf", token}, {"user", "alice"}, {"password", "alice-pw"}}),
                   url + "/login"});
  REQUIRE(login.exit_code == 0);
  CHECK(login.out.find("HTTP/1.1 303") == 0);
  CHECK(login.out.find("; HttpOnly; SameSite=Strict; Secure") != std::string::npos);
  // Plain HTTP on the TLS port gets nothing usable.
  WebClient plain(port);
  CHECK_THROWS(plain.get("/login"));
}
