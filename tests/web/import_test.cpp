// The web door on a whole import world (Orthanc, the XNAT stand-in, the real daemon):
// - a real browser (browser.py: headless Chromium via Selenium) logs in, meets a CSV error with
//   its line and column, submits the fixed CSV, follows the job to verified, retries the row
//   XNAT refused, and saves a screenshot of each page under <build>/web-screenshots/;
// - /metrics after a job passes `promtool check metrics` and its values equal the job's.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "web_client.hpp"
#include "world.hpp"

using namespace p2x::test;
using nlohmann::json;

namespace {

WorldOptions web_world(int studies, std::uint16_t port) {
  WorldOptions o;
  o.studies = uniform_corpus(studies, 2, 3, "MR", "WEB");
  o.xnat_args = {"--users", "admin:admin,alice:alice-pw", "--role", "alice:PROJ:member"};
  o.config = json{{"web", {{"listen", "127.0.0.1:" + std::to_string(port)}}}};
  return o;
}

// Prometheus text -> "name{labels}" -> value (comments skipped).
std::map<std::string, double> parse_metrics(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

double value(const std::map<std::string, double>& m, const std::string& key) {
  auto it = m.find(key);
  INFO("metric " << key);
  REQUIRE(it != m.end());
  return it->second;
}

}  // namespace

TEST_CASE("a person imports from the browser: error, fix, verified, retry", "[web][browser]") {
  const std::uint16_t port = free_port();
  World w(web_world(2, port));
  const auto& s = w.studies();
  // The first upload is refused by XNAT (a conflict): that row fails, the retry succeeds.
  w.xnat().admin("POST",
                 "/_admin/fail?count=1&status=409&reason=Conflict&path=/data/services/import");
  const std::string bad = w.write_csv(
      "bad.csv", "Accession Number,Subject,Session\n" + s[0].spec.accession + ",S 1,E1\n");
  const std::string good = w.write_csv("studies.csv", w.accession_csv({0, 1}));
  const std::string shots = std::string(P2X_BINARY_DIR) + "/web-screenshots";
  const auto run = run_program(
      {"/usr/bin/python3", "-B", std::string(P2X_SOURCE_DIR) + "/tests/web/browser.py", "--url",
       "http://127.0.0.1:" + std::to_string(port), "--user", "alice", "--password", "alice-pw",
       "--project", "PROJ", "--bad-csv", bad, "--good-csv", good, "--shots", shots});
  INFO("browser: " << run.out << run.err);
  REQUIRE(run.exit_code == 0);
  const json seen = json::parse(run.out)["seen"];
  CHECK(seen["problem"]["line"] == "2");
  CHECK(seen["problem"]["column"].get<std::string>().rfind("2", 0) == 0);
  CHECK(seen["dry_run"].get<std::string>().find("2 of 2 rows found") != std::string::npos);
  int failed = 0, verified = 0;
  for (const auto& st : seen["first_pass"]) {
    failed += st == "failed";
    verified += st == "verified";
  }
  CHECK(failed == 1);
  CHECK(verified == 1);
  CHECK(seen["reasons"].dump().find("409") != std::string::npos);
  // The first row's series: expected, received and verified instances each (2 series x 3).
  REQUIRE(seen["series"].size() == 2);
  for (const auto& row : seen["series"]) {
    CHECK(row[3] == "3");
    CHECK(row[4] == "3");
    CHECK(row[5] == "3");
  }
  const int job = seen["job"].get<int>();
  const json status = w.status(job);
  CHECK(status["submitted_user"] == "alice");
  w.check_verified_once(job, {0, 1});
  for (const char* page :
       {"login", "submit-error", "submit-dry-run", "job-with-failure", "job-verified", "jobs"}) {
    std::ifstream png(shots + "/" + page + ".png", std::ios::binary);
    char magic[4] = {};
    png.read(magic, 4);
    CHECK(std::string(magic + 1, 3) == "PNG");
  }
}

TEST_CASE("/metrics passes promtool and counts what the job did", "[web][metrics]") {
  const std::uint16_t port = free_port();
  World w(web_world(2, port));
  // One transient XNAT error (retried) and one row the PACS does not have (fails).
  w.xnat().admin("POST", "/_admin/fail?count=1&status=503&path=/data/services/import");
  const std::string csv = w.write_csv("m.csv", w.accession_csv({0, 1}) + "NOSUCHACC,SX,EX\n");
  const int job = w.submit(csv);
  const json st = w.wait_done(job);
  REQUIRE(st["counts"]["verified"] == 2);
  REQUIRE(st["counts"]["failed"] == 1);

  WebClient c(port);
  const auto r = c.get("/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.header("content-type").find("version=0.0.4") != std::string::npos);
  const std::string file = w.dir() + "/metrics.txt";
  write_file(file, r.body);
  const auto check =
      run_program({"/bin/sh", "-c", "/usr/bin/promtool check metrics < '" + file + "'"});
  INFO("promtool: " << check.out << check.err);
  CHECK(check.exit_code == 0);

  const auto m = parse_metrics(r.body);
  const std::int64_t expected = st["instances"]["expected"].get<std::int64_t>();
  CHECK(value(m, "p2x_items{project=\"PROJ\",state=\"verified\"}") == 2);
  CHECK(value(m, "p2x_items{project=\"PROJ\",state=\"failed\"}") == 1);
  CHECK(value(m, "p2x_studies_total{outcome=\"verified\"}") == 2);
  CHECK(value(m, "p2x_studies_total{outcome=\"failed\"}") == 1);
  CHECK(value(m, "p2x_retrieved_instances_total{pacs=\"testpacs\"}") == expected);
  CHECK(value(m, "p2x_retrieved_bytes_total{pacs=\"testpacs\"}") == st["bytes"].get<double>());
  CHECK(value(m, "p2x_pacs_suboperation_failures_total{pacs=\"testpacs\"}") == 0);
  CHECK(value(m, "p2x_pacs_associations_in_use{pacs=\"testpacs\"}") == 0);
  CHECK(value(m, "p2x_pacs_associations_free{pacs=\"testpacs\"}") == 2);
  CHECK(value(m, "p2x_xnat_request_duration_seconds_count{kind=\"import\"}") == 3);  // 503 + 2
  CHECK(value(m, "p2x_xnat_request_errors_total{status=\"503\"}") == 1);
  CHECK(value(m, "p2x_xnat_uploaded_bytes_total") >= st["bytes"].get<double>());
  CHECK(value(m, "p2x_oldest_queued_item_age_seconds") == 0);
  CHECK(value(m, "p2x_oldest_in_flight_item_age_seconds") == 0);
  CHECK(value(m, "p2x_last_verified_age_seconds") < 120);
  CHECK(value(m, "p2x_spool_free_bytes") > 0);
}
