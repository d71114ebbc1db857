// The web door's parts without sockets or servers: sessions and their idle expiry, the login
// limiter, cookie and form parsing, the routes on fake operations and a fake XNAT (expiry,
// metrics token, asset names), and the "web" configuration section.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <fstream>

#include "config/config.hpp"
#include "service/web_door.hpp"
#include "support/temp_dir.hpp"
#include "ipc/server.hpp"
#include "web/app.hpp"
#include "web/auth.hpp"
#include "web/http.hpp"
#include "web/web.hpp"
#include "xnat/user_session.hpp"
#include "xnat/xnat.hpp"

using namespace p2x;
using nlohmann::json;

namespace {

struct FakeTime {
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now();
  web::Clock clock() {
    return [this] { return now; };
  }
};

class FakeXnat : public web::IXnatUsers {
 public:
  std::string login(const std::string& user, const std::string& password) override {
    if (password != user + "-pw") throw xnat::XnatError(xnat::ErrorKind::Auth, 401, "refused");
    return "XS-" + user;
  }
  std::vector<std::string> projects(const std::string&, bool create) override {
    return create ? std::vector<std::string>{"P"} : std::vector<std::string>{"P", "R"};
  }
  void logout(const std::string&) noexcept override {}
};

config::Config web_config(const std::string& web_json) {
  return config::parse(R"({"pacs":[{"name":"p","ae_title":"P","host":"h","port":104}],
    "xnat":{"url":"http://x","credentials_file":"/c"},"web":)" +
                       web_json + "}");
}

web::Request get(const std::string& target, const std::string& cookie = "") {
  web::Request r;
  r.method = "GET";
  r.target = target;
  r.peer = "127.0.0.1";
  r.loopback = true;
  if (!cookie.empty()) r.headers.emplace_back("cookie", cookie);
  return r;
}

std::string session_cookie(const web::Response& r) {
  for (const auto& [k, v] : r.headers) {
    if (k == "Set-Cookie" && v.rfind("p2x_session=", 0) == 0) return v.substr(0, v.find(';'));
  }
  return "";
}

// The App on a Dispatcher with a fake "list" and a fake XNAT.
struct Door {
  FakeTime time;
  FakeXnat xnat;
  config::Config cfg = web_config(R"({"listen":"127.0.0.1:1","session_idle_minutes":5})");
  ipc::Dispatcher ops;
  web::App app{web::AppDeps{cfg, ops, xnat, [] { return std::string("p2x_up 1\n"); },
                            "0123456789abcdef-token", time.clock()}};
  Door() {
    ops.add("list", [](const json&, const ipc::Peer&) {
      return json{{"jobs", json::array({json{{"job", 1},
                                             {"project", "P"},
                                             {"counts", json::object()},
                                             {"total", 0},
                                             {"created_at", 0}},
                                        json{{"job", 2},
                                             {"project", "Q"},
                                             {"counts", json::object()},
                                             {"total", 0},
                                             {"created_at", 0}}})}};
    });
  }
  std::string login(const std::string& user) {
    const auto form = app.handle(get("/login"));
    std::string token;
    for (const auto& [k, v] : form.headers) {
      if (k == "Set-Cookie" && v.rfind("p2x_login=", 0) == 0) token = v.substr(10, 64);
    }
    web::Request post = get("/login", "p2x_login=" + token);
    post.method = "POST";
    post.body = "csrf=" + token + "&user=" + user + "&password=" + user + "-pw";
    return session_cookie(app.handle(post));
  }
};

}  // namespace

TEST_CASE("sessions expire after the idle limit, every use renews them", "[web]") {
  FakeTime t;
  web::Sessions sessions(std::chrono::seconds(60), 3, t.clock());
  const auto s = sessions.create("alice", "X", false);
  CHECK(s.id.size() == 64);
  CHECK(s.csrf != s.id);
  t.now += std::chrono::seconds(50);
  CHECK(sessions.find(s.id));
  t.now += std::chrono::seconds(50);
  CHECK(sessions.find(s.id));  // renewed 50 s ago
  t.now += std::chrono::seconds(61);
  CHECK_FALSE(sessions.find(s.id));
  // Bounded: the session unused the longest goes first.
  const auto a = sessions.create("a", "", false);
  t.now += std::chrono::seconds(1);
  const auto b = sessions.create("b", "", false);
  const auto c = sessions.create("c", "", false);
  const auto d = sessions.create("d", "", false);
  CHECK(sessions.size() == 3);
  CHECK_FALSE(sessions.find(a.id));
  CHECK(sessions.find(d.id));
}

TEST_CASE("the login limiter refuses an address at the limit until the window passes", "[web]") {
  FakeTime t;
  web::LoginLimiter limiter(3, std::chrono::seconds(100), t.clock());
  for (int i = 0; i < 3; ++i) {
    CHECK(limiter.retry_after("10.0.0.1") == 0);
    limiter.failed("10.0.0.1");
    t.now += std::chrono::seconds(10);
  }
  CHECK(limiter.retry_after("10.0.0.1") == 70);  // the first failure leaves the window then
  CHECK(limiter.retry_after("10.0.0.2") == 0);
  t.now += std::chrono::seconds(70);
  CHECK(limiter.retry_after("10.0.0.1") == 0);
}

TEST_CASE("malformed cookies and forms yield nothing, never an error", "[web]") {
  const std::string id(64, 'a');
  CHECK(web::cookie_value("p2x_session=" + id, "p2x_session") == id);
  CHECK(web::cookie_value("x=1; p2x_session=\"" + id + "\"; y", "p2x_session") == id);
  for (const std::string& bad : std::vector<std::string>{
           "", ";;;", "p2x_session", "p2x_session=", "p2x_session=zz", "p2x_session=" + id + "x",
           "=;=;p2x_session==" + id, std::string(10000, ';'), std::string("p2x_session=\0a", 14)}) {
    CHECK(web::cookie_value(bad, "p2x_session").empty());
  }
  const auto form = web::parse_form("user=al%20ice&password=a+b%26c&empty=&flag");
  CHECK(web::form_value(form, "user") == "al ice");
  CHECK(web::form_value(form, "password") == "a b&c");
  CHECK(web::form_value(form, "flag").empty());
  CHECK(web::parse_form("a=%zz").empty());
}

TEST_CASE("the door on fake operations: idle expiry, hidden projects, metrics token, assets",
          "[web]") {
  Door door;
  const std::string cookie = door.login("alice");
  REQUIRE(!cookie.empty());
  const auto jobs = door.app.handle(get("/api/jobs", cookie));
  REQUIRE(jobs.status == 200);
  const auto listed = json::parse(jobs.body)["jobs"];
  REQUIRE(listed.size() == 1);  // Q is not readable
  CHECK(listed[0]["job"] == 1);
  door.time.now += std::chrono::minutes(4);
  CHECK(door.app.handle(get("/api/jobs", cookie)).status == 200);
  door.time.now += std::chrono::minutes(6);
  CHECK(door.app.handle(get("/api/jobs", cookie)).status == 401);
  CHECK(door.app.handle(get("/jobs", cookie)).status == 303);

  web::Request remote = get("/metrics");
  remote.loopback = false;
  remote.peer = "192.0.2.7";
  CHECK(door.app.handle(remote).status == 401);
  remote.headers.emplace_back("authorization", "Bearer wrong");
  CHECK(door.app.handle(remote).status == 401);
  remote.headers.back().second = "Bearer 0123456789abcdef-token";
  CHECK(door.app.handle(remote).body == "p2x_up 1\n");
  CHECK(door.app.handle(get("/metrics")).status == 200);  // loopback

  CHECK(door.app.handle(get("/assets/app.js")).status == 200);
  for (const std::string& t :
       std::vector<std::string>{"/assets/../CMakeLists.txt", "/assets/%2e%2e/app.js", "/assets/",
                                "/assets//etc/passwd", "/assets/app.js/", "/assets/APP.JS"}) {
    CHECK(door.app.handle(get(t)).status == 404);
  }
}

TEST_CASE("body limits: the CSV routes take the upload limit as base64, others 64 KiB", "[web]") {
  CHECK(web::body_limit_for("POST", "/api/submit", 3000) == 4000 + 64 * 1024);
  CHECK(web::body_limit_for("POST", "/api/check?x=1", 3000) == 4000 + 64 * 1024);
  CHECK(web::body_limit_for("POST", "/login", 3000) == 64 * 1024);
  CHECK(web::body_limit_for("GET", "/api/submit", 3000) == 64 * 1024);
}

TEST_CASE("the web section: TLS off loopback, both TLS files, a usable address", "[web][config]") {
  CHECK_FALSE(web_config("{}").web.enabled());
  const auto c = web_config(R"({"listen":"[::1]:8443","admins":["root"]})");
  CHECK(c.web.listen_host == "::1");
  CHECK(c.web.listen_port == 8443);
  CHECK(c.web.admins == std::vector<std::string>{"root"});
  CHECK_THROWS_WITH(web_config(R"({"listen":"0.0.0.0:8080"})"),
                    Catch::Contains("web.listen") && Catch::Contains("needs TLS"));
  CHECK_NOTHROW(web_config(R"({"listen":"0.0.0.0:8080","tls_cert":"/c.pem","tls_key":"/k.pem"})"));
  CHECK_THROWS_WITH(web_config(R"({"listen":"127.0.0.1:8080","tls_cert":"/c.pem"})"),
                    Catch::Contains("web.tls_key"));
  CHECK_THROWS_WITH(web_config(R"({"listen":"127.0.0.1"})"), Catch::Contains("web.listen"));
  CHECK_THROWS_WITH(web_config(R"({"listen":"127.0.0.1:0"})"), Catch::Contains("web.listen"));
  CHECK_THROWS_WITH(web_config(R"({"listen":"example.org:80"})"), Catch::Contains("web.listen"));
  CHECK_THROWS_WITH(web_config(R"({"lisen":"127.0.0.1:80"})"),
                    Catch::Contains("did you mean listen"));
  CHECK_THROWS_WITH(web_config(R"({"admins":[""]})"), Catch::Contains("web.admins[0]"));
}

TEST_CASE("XNAT's permission listing: the ID column, duplicates removed", "[web][xnat]") {
  CHECK(xnat::detail::parse_project_ids(
            R"({"ResultSet":{"Result":[{"ID":"B"},{"ID":"A"},{"ID":"B"},{"name":"x"}]}})") ==
        std::vector<std::string>{"A", "B"});
  CHECK_THROWS_AS(xnat::detail::parse_project_ids("<html>"), xnat::XnatError);
}

TEST_CASE("the metrics token file must be private and hold a real token", "[web]") {
  p2x::test::TempDir dir("p2x-web-token");
  const std::string path = dir.file("token");
  std::ofstream(path) << "0123456789abcdef0123\n";
  ::chmod(path.c_str(), 0644);
  CHECK_THROWS_WITH(service::read_metrics_token(path), Catch::Contains("chmod 600"));
  ::chmod(path.c_str(), 0600);
  CHECK(service::read_metrics_token(path) == "0123456789abcdef0123");
  std::ofstream(path) << "short\n";
  CHECK_THROWS_WITH(service::read_metrics_token(path), Catch::Contains("at least 16"));
  CHECK_THROWS_WITH(service::read_metrics_token(dir.file("missing")),
                    Catch::Contains("web.metrics_token_file"));
}
