// Tests for lib/config: the example file, defaults, value forms and file loading.
#include "config/config.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

using namespace p2x::config;
using Json = nlohmann::json;

namespace {

const std::string kExample = std::string(P2X_SOURCE_DIR) + "/config/pacs2xnat.example.json";

Json minimal() {
  return Json::parse(R"({
    "pacs": [{"name": "main", "ae_title": "PACS", "host": "pacs.local", "port": 104}],
    "xnat": {"url": "https://xnat.local", "credentials_file": "/etc/p2x/cred"}
  })");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void collect_keys(const Json& j, std::vector<std::string>& keys) {
  if (j.is_object()) {
    for (const auto& item : j.items()) {
      keys.push_back(item.key());
      collect_keys(item.value(), keys);
    }
  } else if (j.is_array()) {
    for (const auto& e : j) collect_keys(e, keys);
  }
}

}  // namespace

TEST_CASE("the example file parses and holds the documented defaults", "[config]") {
  Config c = load_file(kExample);
  Config defaults;
  CHECK(c.ae_title == defaults.ae_title);
  CHECK(c.storage_port == defaults.storage_port);
  CHECK(c.storage_max_associations == defaults.storage_max_associations);
  CHECK(c.storage_max_associations_per_address == defaults.storage_max_associations_per_address);
  CHECK(c.storage_max_associations_per_ae == defaults.storage_max_associations_per_ae);
  CHECK(c.storage_busy_idle_s == defaults.storage_busy_idle_s);
  CHECK(c.log_level == defaults.log_level);
  CHECK(c.paths.state_dir == Paths{}.state_dir);
  CHECK(c.paths.spool_dir == Paths{}.state_dir + "/spool");
  CHECK(c.paths.socket == Paths{}.socket);

  Limits l;
  CHECK(c.limits.max_attempts == l.max_attempts);
  CHECK(c.limits.backoff_initial_s == l.backoff_initial_s);
  CHECK(c.limits.backoff_max_s == l.backoff_max_s);
  CHECK(c.limits.circuit_failures == l.circuit_failures);
  CHECK(c.limits.circuit_probe_s == l.circuit_probe_s);
  CHECK(c.limits.max_request_bytes == l.max_request_bytes);
  CHECK(c.limits.spool_min_free_mb == l.spool_min_free_mb);
  CHECK(c.limits.spool_max_mb == l.spool_max_mb);
  CHECK(c.limits.study_max_mb == l.study_max_mb);
  CHECK(c.limits.drain_timeout_s == l.drain_timeout_s);

  REQUIRE(c.pacs.size() == 1);
  const PacsNode& p = c.pacs[0];
  PacsNode pd;
  CHECK(p.name == "main");
  CHECK(p.ae_title == "PACS");
  CHECK(p.host == "pacs.example.org");
  CHECK(p.port == pd.port);
  CHECK(p.retrieve == pd.retrieve);
  CHECK(p.max_associations == pd.max_associations);
  CHECK(p.parallel_series == pd.parallel_series);
  CHECK(p.timeouts.connect_s == pd.timeouts.connect_s);
  CHECK(p.timeouts.acse_s == pd.timeouts.acse_s);
  CHECK(p.timeouts.dimse_s == pd.timeouts.dimse_s);
  CHECK(p.timeouts.idle_s == pd.timeouts.idle_s);
  REQUIRE(p.windows.size() == 4);
  CHECK(p.windows[0].days == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(p.windows[0].start_min == 7 * 60);
  CHECK(p.windows[0].end_min == 19 * 60);
  CHECK(p.windows[0].max_associations == 1);
  CHECK(p.windows[1].end_min == 24 * 60);
  CHECK(p.windows[2].days == std::vector<int>{1, 2, 3, 4, 5});
  CHECK(p.windows[2].max_associations == p.max_associations);  // defaults to the node's
  CHECK(p.windows[3].days == std::vector<int>{0, 6});
  CHECK(p.skip_sop_classes ==
        std::vector<std::string>{"1.2.840.10008.5.1.4.1.1.11.1", "1.2.840.10008.5.1.4.1.1.104.1"});

  Xnat xd;
  CHECK(c.xnat.url == "https://xnat.example.org");
  CHECK(c.xnat.credentials_file == "/etc/pacs2xnat/xnat.credentials");
  CHECK(c.xnat.push == xd.push);
  CHECK(c.xnat.verify_tls == xd.verify_tls);
  CHECK(c.xnat.ca_file == xd.ca_file);
  CHECK(c.xnat.prearchive == xd.prearchive);
  CHECK(c.xnat.max_pushes == xd.max_pushes);
  CHECK(c.xnat.timeout_s == xd.timeout_s);
  CHECK(c.xnat.dicom_ae == "XNAT");
  CHECK(c.xnat.dicom_host == xd.dicom_host);
  CHECK(c.xnat.dicom_port == xd.dicom_port);
}

TEST_CASE("every key of the example file is documented in config/README.md", "[config]") {
  std::string readme = read_text(std::string(P2X_SOURCE_DIR) + "/config/README.md");
  REQUIRE_FALSE(readme.empty());
  std::vector<std::string> keys;
  collect_keys(Json::parse(read_text(kExample)), keys);
  REQUIRE(keys.size() > 40);
  for (const auto& key : keys) {
    INFO(key);
    bool documented = readme.find("`" + key + "`") != std::string::npos ||
                      readme.find("." + key + "`") != std::string::npos;
    CHECK(documented);
  }
}

TEST_CASE("a minimal config gets every default", "[config]") {
  Config c = parse(minimal().dump(), "config.json");
  CHECK(c.ae_title == "PACS2XNAT");
  CHECK(c.storage_port == 11112);
  CHECK(c.storage_max_associations == 16);
  CHECK(c.log_level == "info");
  CHECK(c.paths.state_dir == "/var/lib/pacs2xnat");
  CHECK(c.paths.spool_dir == "/var/lib/pacs2xnat/spool");
  CHECK(c.paths.socket == "/run/pacs2xnat/pacs2xnatd.sock");
  CHECK(c.limits.max_attempts == 5);
  CHECK(c.limits.backoff_max_s == 900);
  CHECK(c.limits.max_request_bytes == 64 * 1024 * 1024);
  CHECK(c.limits.study_max_mb == 20000);
  REQUIRE(c.pacs.size() == 1);
  CHECK(c.pacs[0].retrieve == RetrieveMethod::Move);
  CHECK(c.pacs[0].max_associations == 2);
  CHECK(c.pacs[0].timeouts.idle_s == 120);
  CHECK(c.pacs[0].windows.empty());
  CHECK(c.pacs[0].skip_sop_classes.empty());
  CHECK(c.pacs[0].parallel_series);  // a study's series over free association slots
  CHECK(c.xnat.push == PushMethod::Rest);
  CHECK(c.xnat.verify_tls);
  CHECK_FALSE(c.xnat.prearchive.has_value());  // "project": the project's prearchive_code
  CHECK(c.xnat.max_pushes == 2);
  CHECK(c.xnat.dicom_ae == "XNAT");
  CHECK(c.xnat.dicom_port == 8104);
}

TEST_CASE("parallel_series can be switched off per PACS", "[config]") {
  Json j = minimal();
  j["pacs"][0]["parallel_series"] = false;
  CHECK_FALSE(parse(j.dump()).pacs[0].parallel_series);
  j["pacs"][0]["parallel_series"] = true;
  CHECK(parse(j.dump()).pacs[0].parallel_series);
}

TEST_CASE("spool_dir defaults to <state_dir>/spool", "[config]") {
  Json j = minimal();
  j["paths"] = {{"state_dir", "/srv/p2x/"}};
  Config c = parse(j.dump());
  CHECK(c.paths.state_dir == "/srv/p2x");
  CHECK(c.paths.spool_dir == "/srv/p2x/spool");

  j["paths"]["spool_dir"] = "";
  CHECK(parse(j.dump()).paths.spool_dir == "/srv/p2x/spool");
  j["paths"]["spool_dir"] = "/data/spool";
  CHECK(parse(j.dump()).paths.spool_dir == "/data/spool");
}

TEST_CASE("explicit values override defaults", "[config]") {
  Json j = minimal();
  j["ae_title"] = "MYAE";
  j["storage_port"] = 4242;
  j["log_level"] = "debug";
  j["limits"] = {{"max_attempts", 9}, {"spool_max_mb", 5000}};
  j["pacs"][0]["retrieve"] = "get";
  j["pacs"][0]["timeouts"] = {{"dimse_s", 300}};
  j["xnat"]["push"] = "cstore";
  j["xnat"]["dicom_host"] = "xnat-dicom.local";
  j["xnat"]["url"] = "http://xnat.local:8080/xnat/";
  Config c = parse(j.dump());
  CHECK(c.ae_title == "MYAE");
  CHECK(c.storage_port == 4242);
  CHECK(c.log_level == "debug");
  CHECK(c.limits.max_attempts == 9);
  CHECK(c.limits.spool_max_mb == 5000);
  CHECK(c.limits.backoff_initial_s == 10);
  CHECK(c.pacs[0].retrieve == RetrieveMethod::Get);
  CHECK(c.pacs[0].timeouts.dimse_s == 300);
  CHECK(c.pacs[0].timeouts.connect_s == 10);
  CHECK(c.xnat.push == PushMethod::CStore);
  CHECK(c.xnat.dicom_host == "xnat-dicom.local");
  CHECK(c.xnat.url == "http://xnat.local:8080/xnat");  // trailing slash removed
}

TEST_CASE("window days accept numbers and names and groups", "[config]") {
  auto days_of = [](Json days) {
    Json j = minimal();
    j["pacs"][0]["windows"] = Json::array({{{"days", days}, {"start", "08:00"}, {"end", "09:30"}}});
    Config c = parse(j.dump());
    REQUIRE(c.pacs[0].windows.size() == 1);
    CHECK(c.pacs[0].windows[0].start_min == 480);
    CHECK(c.pacs[0].windows[0].end_min == 570);
    return c.pacs[0].windows[0].days;
  };
  CHECK(days_of(Json::array({0, 6, 6})) == std::vector<int>{0, 6});
  CHECK(days_of("weekend") == std::vector<int>{0, 6});
  CHECK(days_of("all") == std::vector<int>{0, 1, 2, 3, 4, 5, 6});
  CHECK(days_of(Json::array({"Friday", "mon", 3})) == std::vector<int>{1, 3, 5});
  CHECK(days_of(Json::array({"weekdays", "sat"})) == std::vector<int>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("adjacent windows and windows on different days may share times", "[config]") {
  Json j = minimal();
  j["pacs"][0]["windows"] = Json::parse(R"([
    {"days": "weekdays", "start": "00:00", "end": "07:00", "max_associations": 0},
    {"days": "weekdays", "start": "07:00", "end": "24:00"},
    {"days": "weekend"}])");
  Config c = parse(j.dump());
  REQUIRE(c.pacs[0].windows.size() == 3);
  CHECK(c.pacs[0].windows[0].max_associations == 0);
  CHECK(c.pacs[0].windows[2].start_min == 0);
  CHECK(c.pacs[0].windows[2].end_min == 24 * 60);
}

TEST_CASE("find_pacs finds a node by name", "[config]") {
  Json j = minimal();
  j["pacs"].push_back({{"name", "second"}, {"ae_title", "P2"}, {"host", "h2"}, {"port", 105}});
  Config c = parse(j.dump());
  REQUIRE(c.find_pacs("second") != nullptr);
  CHECK(c.find_pacs("second")->port == 105);
  CHECK(c.find_pacs("main")->host == "pacs.local");
  CHECK(c.find_pacs("Second") == nullptr);
  CHECK(c.find_pacs("") == nullptr);
}

TEST_CASE("load_file reads a file and names it in errors", "[config]") {
  std::string dir = std::string(P2X_BINARY_DIR) + "/tests/config";
  std::string good = dir + "/good_config.json";
  std::ofstream(good) << minimal().dump(2);
  CHECK(load_file(good).pacs.at(0).name == "main");

  std::string bad = dir + "/bad_config.json";
  Json j = minimal();
  j["storage_port"] = 0;
  std::ofstream(bad) << j.dump(2);
  CHECK_THROWS_WITH(load_file(bad), bad + ": storage_port: expected an integer 1..65535, got 0");
}

TEST_CASE("load_file reports unreadable files", "[config]") {
  std::string missing = std::string(P2X_BINARY_DIR) + "/tests/config/no-such-file.json";
  CHECK_THROWS_WITH(load_file(missing),
                    missing + ": cannot open config file: No such file or directory");
  std::string dir = std::string(P2X_BINARY_DIR) + "/tests/config";
  CHECK_THROWS_WITH(load_file(dir), Catch::Contains(dir) && Catch::Contains("Is a directory"));
  CHECK_THROWS_AS(load_file(dir), ConfigError);
}

TEST_CASE(
    "storage_allowed_calling_aes and pacs[].storing_ae_titles default to the PACS AE "
    "titles and are checked",
    "[config]") {
  Json j = minimal();
  Config c = parse(j.dump(), "config.json");
  REQUIRE(c.pacs.size() == 1);
  CHECK(c.storage_allowed_calling_aes == std::vector<std::string>{c.pacs[0].ae_title});

  CHECK(c.pacs[0].storing_ae_titles == std::vector<std::string>{c.pacs[0].ae_title});

  // The PACS's storing AE titles always may associate; the key adds others.
  const std::string queried = c.pacs[0].ae_title;
  j["pacs"][0]["storing_ae_titles"] = {"PACS-NODE1", "PACS-NODE2"};
  j["storage_allowed_calling_aes"] = {"WORKSTATION"};
  c = parse(j.dump(), "config.json");
  CHECK(c.pacs[0].storing_ae_titles == std::vector<std::string>{"PACS-NODE1", "PACS-NODE2"});
  CHECK(c.storage_allowed_calling_aes ==
        std::vector<std::string>{"PACS-NODE1", "PACS-NODE2", "WORKSTATION"});
  CHECK(c.pacs[0].ae_title == queried);
  j["pacs"][0]["storing_ae_titles"] = Json::array();
  CHECK_THROWS_WITH(parse(j.dump(), "config.json"), Catch::Contains("pacs[0].storing_ae_titles"));
  j["pacs"][0].erase("storing_ae_titles");

  j["storage_allowed_calling_aes"] = Json::array();
  CHECK_THROWS_WITH(parse(j.dump(), "config.json"), Catch::Contains("storage_allowed_calling_aes"));
  j["storage_allowed_calling_aes"] = {"WAY-TOO-LONG-AE-TITLE"};
  CHECK_THROWS_WITH(parse(j.dump(), "config.json"),
                    Catch::Contains("storage_allowed_calling_aes[0]"));
}
