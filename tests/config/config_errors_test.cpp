// Tests for lib/config: every class of error names the source and the exact JSON path.
#include "config/config.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

using namespace p2x::config;
using Json = nlohmann::json;

namespace {

Json minimal() {
  return Json::parse(R"({
    "pacs": [{"name": "main", "ae_title": "PACS", "host": "pacs.local", "port": 104},
             {"name": "second", "ae_title": "PACS2", "host": "pacs2.local", "port": 105}],
    "xnat": {"url": "https://xnat.local", "credentials_file": "/etc/p2x/cred"}
  })");
}

// Applies `change` to a valid config and returns the ConfigError message (or a marker).
std::string error_of(const std::function<void(Json&)>& change) {
  Json j = minimal();
  change(j);
  try {
    parse(j.dump(2), "config.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

std::string error_of_text(const std::string& text) {
  try {
    parse(text, "config.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

TEST_CASE("the unchanged base config is valid", "[config][errors]") {
  CHECK(error_of([](Json&) {}) == "<no error>");
}

TEST_CASE("wrong types and out-of-range numbers", "[config][errors]") {
  CHECK(error_of([](Json& j) { j["pacs"][1]["port"] = "abc"; }) ==
        "config.json: pacs[1].port: expected an integer 1..65535, got \"abc\"");
  CHECK(error_of([](Json& j) { j["pacs"][0]["port"] = 70000; }) ==
        "config.json: pacs[0].port: expected an integer 1..65535, got 70000");
  CHECK(error_of([](Json& j) { j["pacs"][0]["port"] = 104.0; }) ==
        "config.json: pacs[0].port: expected an integer 1..65535, got 104.0");
  CHECK(error_of([](Json& j) {
          j["pacs"][0]["timeouts"] = {{"dimse_s", 0}};
        }) == "config.json: pacs[0].timeouts.dimse_s: expected an integer 1..86400, got 0");
  CHECK(error_of([](Json& j) {
          j["limits"] = {{"spool_max_mb", -1}};
        }) == "config.json: limits.spool_max_mb: expected an integer >= 0, got -1");
  CHECK(error_of([](Json& j) {
          j["limits"] = {{"study_max_mb", 18446744073709551615ULL}};
        }) ==
        "config.json: limits.study_max_mb: expected an integer >= 1, "
        "got 18446744073709551615");
  CHECK(error_of([](Json& j) { j["xnat"]["verify_tls"] = "yes"; }) ==
        "config.json: xnat.verify_tls: expected true or false, got \"yes\"");
  CHECK(error_of([](Json& j) { j["xnat"]["ca_file"] = 5; }) ==
        "config.json: xnat.ca_file: expected a string, got 5");
  CHECK(error_of([](Json& j) { j["limits"] = Json::array(); }) ==
        "config.json: limits: expected an object, got []");
  CHECK(error_of([](Json& j) { j["pacs"][1] = "pacs2"; }) ==
        "config.json: pacs[1]: expected an object, got \"pacs2\"");
  CHECK(error_of_text("[1, 2]") == "config.json: expected an object, got an array");
}

TEST_CASE("enumerations", "[config][errors]") {
  CHECK(error_of([](Json& j) { j["pacs"][0]["retrieve"] = "fetch"; }) ==
        "config.json: pacs[0].retrieve: expected one of \"move\", \"get\", got \"fetch\"");
  CHECK(error_of([](Json& j) { j["xnat"]["push"] = "REST"; }) ==
        "config.json: xnat.push: expected one of \"rest\", \"cstore\", got \"REST\"");
  CHECK(error_of([](Json& j) { j["log_level"] = "verbose"; }) ==
        "config.json: log_level: expected one of \"trace\", \"debug\", \"info\", \"warn\", "
        "\"error\", \"critical\", \"off\", got \"verbose\"");
}

TEST_CASE("unknown keys suggest the closest known key", "[config][errors]") {
  CHECK(error_of([](Json& j) { j["xnat"]["verfy_tls"] = true; }) ==
        "config.json: xnat.verfy_tls: unknown key (did you mean verify_tls?)");
  CHECK(error_of([](Json& j) {
          j["pacs"][1]["timeouts"] = {{"dimse", 5}};
        }) == "config.json: pacs[1].timeouts.dimse: unknown key (did you mean dimse_s?)");
  CHECK(error_of([](Json& j) { j["pacs"][0]["AE_Title"] = "X"; }) ==
        "config.json: pacs[0].AE_Title: unknown key (did you mean ae_title?)");
  CHECK(error_of([](Json& j) { j["storage_prot"] = 1; }) ==
        "config.json: storage_prot: unknown key (did you mean storage_port?)");
  CHECK(error_of([](Json& j) {
          j["limits"] = {{"zzzz", 1}};
        }) ==
        "config.json: limits.zzzz: unknown key (known keys: max_attempts, backoff_initial_s, "
        "backoff_max_s, circuit_failures, circuit_probe_s, max_request_bytes, spool_min_free_mb, "
        "spool_max_mb, study_max_mb, drain_timeout_s)");
  CHECK(error_of([](Json& j) {
          j["pacs"][0]["windows"] = Json::parse(R"([{"days": "all", "strat": "10:00"}])");
        }) == "config.json: pacs[0].windows[0].strat: unknown key (did you mean start?)");
}

TEST_CASE("missing required keys", "[config][errors]") {
  CHECK(error_of([](Json& j) { j.erase("pacs"); }) == "config.json: pacs: missing required key");
  CHECK(error_of([](Json& j) { j.erase("xnat"); }) == "config.json: xnat: missing required key");
  CHECK(error_of([](Json& j) { j["xnat"].erase("url"); }) ==
        "config.json: xnat.url: missing required key");
  CHECK(error_of([](Json& j) { j["xnat"].erase("credentials_file"); }) ==
        "config.json: xnat.credentials_file: missing required key");
  CHECK(error_of([](Json& j) { j["xnat"]["credentials_file"] = ""; }) ==
        "config.json: xnat.credentials_file: expected a non-empty string, got \"\"");
  CHECK(error_of([](Json& j) { j["pacs"][1].erase("host"); }) ==
        "config.json: pacs[1].host: missing required key");
  CHECK(error_of([](Json& j) { j["pacs"][0].erase("name"); }) ==
        "config.json: pacs[0].name: missing required key");
  CHECK(error_of([](Json& j) { j["pacs"][0].erase("ae_title"); }) ==
        "config.json: pacs[0].ae_title: missing required key");
  CHECK(error_of([](Json& j) { j["pacs"][0].erase("port"); }) ==
        "config.json: pacs[0].port: missing required key");
  CHECK(error_of([](Json& j) { j["pacs"] = Json::array(); }) ==
        "config.json: pacs: expected a non-empty array of PACS objects, got []");
}

TEST_CASE("PACS names and AE titles", "[config][errors]") {
  CHECK(error_of([](Json& j) { j["pacs"][1]["name"] = "main"; }) ==
        "config.json: pacs[1].name: duplicate PACS name \"main\" (also pacs[0])");
  CHECK(error_of([](Json& j) { j["pacs"][1]["name"] = "my pacs"; }) ==
        "config.json: pacs[1].name: expected a name of letters, digits, '.', '_' or '-' "
        "(at most 64), got \"my pacs\"");
  CHECK(error_of([](Json& j) { j["pacs"][0]["ae_title"] = "ABCDEFGHIJKLMNOPQ"; }) ==
        "config.json: pacs[0].ae_title: AE title \"ABCDEFGHIJKLMNOPQ\" is 17 characters long; "
        "at most 16 are allowed");
  CHECK(error_of([](Json& j) { j["ae_title"] = "A\\B"; }) ==
        "config.json: ae_title: AE title \"A\\\\B\" contains a backslash or a control character");
  CHECK(error_of([](Json& j) { j["xnat"]["dicom_ae"] = "XN\tAT"; }) ==
        "config.json: xnat.dicom_ae: AE title \"XN\\tAT\" contains a backslash or a control "
        "character");
  CHECK(error_of([](Json& j) { j["ae_title"] = "   "; }) ==
        "config.json: ae_title: AE title must not be empty or only spaces");
  CHECK(error_of([](Json& j) { j["pacs"][0]["host"] = "pacs local"; }) ==
        "config.json: pacs[0].host: expected a host name or IP address, got \"pacs local\"");
  CHECK(error_of([](Json& j) { j["pacs"][0]["ae_title"] = "ABCDEFGHIJKLMNOP"; }) == "<no error>");
}

TEST_CASE("availability windows", "[config][errors]") {
  auto window_error = [](const char* windows) {
    return error_of([&](Json& j) { j["pacs"][1]["windows"] = Json::parse(windows); });
  };
  CHECK(window_error(R"([{"start": "25:00", "end": "26:00"}])") ==
        "config.json: pacs[1].windows[0].start: expected a time \"HH:MM\" between 00:00 and "
        "24:00, got \"25:00\"");
  CHECK(window_error(R"([{"start": "7:00"}])") ==
        "config.json: pacs[1].windows[0].start: expected a time \"HH:MM\" between 00:00 and "
        "24:00, got \"7:00\"");
  CHECK(window_error(R"([{"start": "08:00", "end": "08:60"}])") ==
        "config.json: pacs[1].windows[0].end: expected a time \"HH:MM\" between 00:00 and "
        "24:00, got \"08:60\"");
  CHECK(window_error(R"([{"days": "all"}, {"days": "mon", "start": "19:00", "end": "07:00"}])") ==
        "config.json: pacs[1].windows[1].end: window start must be before its end (split a "
        "window that crosses midnight into two)");
  CHECK(window_error(R"([{"start": "10:00", "end": "10:00"}])") ==
        "config.json: pacs[1].windows[0].end: window start must be before its end (split a "
        "window that crosses midnight into two)");
  CHECK(window_error(R"([{"days": ["mon", "funday"]}])") ==
        "config.json: pacs[1].windows[0].days[1]: expected a day (0-6 with 0 = Sunday, "
        "\"sun\"..\"sat\", \"weekdays\", \"weekend\" or \"all\"), got \"funday\"");
  CHECK(window_error(R"([{"days": [7]}])") ==
        "config.json: pacs[1].windows[0].days[0]: expected an integer 0..6, got 7");
  CHECK(window_error(R"([{"days": []}])") ==
        "config.json: pacs[1].windows[0].days: expected a non-empty array, got []");
  CHECK(window_error(R"([{"days": "weekdays", "start": "07:00", "end": "19:00"},
                         {"days": ["sat", "fri"], "start": "18:00", "end": "20:00"}])") ==
        "config.json: pacs[1].windows[1]: overlaps windows[0] on fri");
  CHECK(window_error(R"([{"max_associations": 65}])") ==
        "config.json: pacs[1].windows[0].max_associations: expected an integer 0..64, got 65");
}

TEST_CASE("XNAT settings", "[config][errors]") {
  CHECK(error_of([](Json& j) { j["xnat"]["push"] = "cstore"; }) ==
        "config.json: xnat.dicom_host: required when xnat.push is \"cstore\"");
  CHECK(error_of([](Json& j) {
          j["xnat"]["push"] = "cstore";
          j["xnat"]["dicom_host"] = "";
        }) == "config.json: xnat.dicom_host: required when xnat.push is \"cstore\"");
  for (const bool forced : {true, false}) {
    CHECK(error_of([&](Json& j) {
            j["xnat"]["push"] = "cstore";
            j["xnat"]["dicom_host"] = "xnat.local";
            j["xnat"]["prearchive"] = forced;
          }) ==
          "config.json: xnat.prearchive: must be \"project\" when xnat.push is \"cstore\": "
          "XNAT's DICOM receiver files sessions by each project's own prearchive setting, "
          "a push cannot force it");
  }
  CHECK(error_of([](Json& j) { j["xnat"]["url"] = "ftp://xnat.local"; }) ==
        "config.json: xnat.url: expected an http:// or https:// URL, got \"ftp://xnat.local\"");
  CHECK(error_of([](Json& j) { j["xnat"]["url"] = "xnat.local"; }) ==
        "config.json: xnat.url: expected an http:// or https:// URL, got \"xnat.local\"");
  CHECK(error_of([](Json& j) { j["xnat"]["url"] = "https://"; }) ==
        "config.json: xnat.url: expected an http:// or https:// URL with a host, got "
        "\"https://\"");
  CHECK(error_of([](Json& j) { j["xnat"]["url"] = "https://xnat.local/data/"; }) ==
        "config.json: xnat.url: expected the XNAT base URL without the trailing /data, got "
        "\"https://xnat.local/data/\"");
}

TEST_CASE("a C-STORE push aimed at our own Storage SCP is refused", "[config][errors]") {
  char own[256] = {};
  REQUIRE(::gethostname(own, sizeof own - 1) == 0);
  const auto push_to = [](const std::string& host, int port, int storage_port) {
    return error_of([&](Json& j) {
      j["storage_port"] = storage_port;
      j["xnat"]["push"] = "cstore";
      j["xnat"]["dicom_host"] = host;
      j["xnat"]["dicom_port"] = port;
    });
  };
  for (const std::string& host :
       std::vector<std::string>{"127.0.0.1", "127.0.1.1", "localhost", "LOCALHOST", "::1",
                                "0.0.0.0", "::ffff:127.0.0.1", own}) {
    INFO(host);
    CHECK(push_to(host, 11112, 11112) ==
          "config.json: xnat.dicom_port: the C-STORE push goes to " + host +
              ":11112, which is this daemon's own Storage SCP (storage_port 11112 on this "
              "machine): studies would be sent back into pacs2xnatd. Set xnat.dicom_host and "
              "xnat.dicom_port to XNAT's DICOM receiver");
  }
  // The default dicom_port (8104) when the SCP listens there.
  CHECK(error_of([](Json& j) {
          j["storage_port"] = 8104;
          j["xnat"]["push"] = "cstore";
          j["xnat"]["dicom_host"] = "localhost";
        }).find("config.json: xnat: the C-STORE push goes to localhost:8104") == 0);
  CHECK(push_to("127.0.0.1", 11113, 11112) == "<no error>");  // another port: XNAT's receiver
  CHECK(push_to("192.0.2.7", 11112, 11112) == "<no error>");  // another machine
}

TEST_CASE("the Storage SCP's caps per address and per AE title", "[config][errors]") {
  const auto caps = [](const std::function<void(Json&)>& change) {
    Json j = minimal();
    change(j);
    const Config c = parse(j.dump(), "config.json");
    return std::make_pair(c.storage_max_associations_per_address,
                          c.storage_max_associations_per_ae);
  };
  CHECK(caps([](Json&) {}) == std::make_pair(8, 8));  // half of 16
  CHECK(caps([](Json& j) { j["storage_max_associations"] = 5; }) == std::make_pair(3, 3));
  // A C-MOVE PACS that may open more gets them (not beyond the SCP's total); C-GET ones no.
  CHECK(caps([](Json& j) { j["pacs"][0]["max_associations"] = 12; }) == std::make_pair(12, 12));
  CHECK(caps([](Json& j) {
          j["pacs"][1]["max_associations"] = 12;
          j["pacs"][1]["retrieve"] = "get";
        }) == std::make_pair(8, 8));
  CHECK(caps([](Json& j) {
          j["storage_max_associations"] = 4;
          j["pacs"][0]["windows"] = Json::parse(R"([{"max_associations": 10}])");
        }) == std::make_pair(4, 4));
  CHECK(caps([](Json& j) {
          j["storage_max_associations_per_address"] = 2;
          j["storage_max_associations_per_ae"] = 16;
        }) == std::make_pair(2, 16));
  CHECK(error_of([](Json& j) { j["storage_max_associations_per_ae"] = 17; }) ==
        "config.json: storage_max_associations_per_ae: must not be larger than "
        "storage_max_associations (16)");
  CHECK(error_of([](Json& j) { j["storage_max_associations_per_address"] = 0; }) ==
        "config.json: storage_max_associations_per_address: expected an integer 1..256, got 0");
  CHECK(error_of([](Json& j) { j["storage_busy_idle_s"] = 0; }) ==
        "config.json: storage_busy_idle_s: expected an integer 1..3600, got 0");
}

TEST_CASE("paths and limits and UIDs", "[config][errors]") {
  CHECK(error_of([](Json& j) {
          j["paths"] = {{"state_dir", "var/lib/p2x"}};
        }) == "config.json: paths.state_dir: expected an absolute path, got \"var/lib/p2x\"");
  CHECK(error_of([](Json& j) {
          j["paths"] = {{"socket", "/" + std::string(120, 's')}};
        }) == "config.json: paths.socket: expected an absolute path of at most 107 bytes, got \"/" +
                  std::string(55, 's') + "...");
  CHECK(error_of([](Json& j) {
          j["limits"] = {{"backoff_initial_s", 60}, {"backoff_max_s", 30}};
        }) ==
        "config.json: limits.backoff_max_s: limits.backoff_max_s (30) must not be smaller than "
        "limits.backoff_initial_s (60)");
  CHECK(error_of([](Json& j) {
          j["limits"] = {{"backoff_initial_s", 1000}};
        }) ==
        "config.json: limits.backoff_initial_s: limits.backoff_max_s (900) must not be smaller "
        "than limits.backoff_initial_s (1000)");
  CHECK(error_of([](Json& j) {
          j["pacs"][0]["skip_sop_classes"] = {"1.2.840.10008.5.1.4.1.1.11.1", "1.2..3"};
        }) ==
        "config.json: pacs[0].skip_sop_classes[1]: expected a DICOM UID (digits and dots, "
        "at most 64 characters), got \"1.2..3\"");
  CHECK(error_of([](Json& j) { j["pacs"][0]["skip_sop_classes"] = "1.2.3"; }) ==
        "config.json: pacs[0].skip_sop_classes: expected an array, got \"1.2.3\"");
}

TEST_CASE("JSON syntax errors give line and column", "[config][errors]") {
  std::string err = error_of_text("{\n  \"ae_title\": \"X\",\n}\n");
  CHECK_THAT(err, Catch::StartsWith("config.json:3:1: invalid JSON: "));
  CHECK_THAT(err, !Catch::Contains("json.exception"));

  err = error_of_text("{\n  \"pacs\": [\n    {\"name\": \"a\" \"host\": 1}\n  ]\n}");
  // nlohmann reports the last character of the offending token (the closing quote of "host")
  CHECK_THAT(err, Catch::StartsWith("config.json:3:23: invalid JSON: syntax error while parsing "
                                    "object - unexpected string literal"));

  CHECK_THAT(error_of_text(""), Catch::StartsWith("config.json:1:1: invalid JSON: "));
  CHECK_THAT(error_of_text("{\"a\": 1"), Catch::StartsWith("config.json:1:8: invalid JSON: "));
  CHECK_THAT(error_of_text("{\"pacs\": [] // comment\n}"),
             Catch::StartsWith("config.json:1:13: invalid JSON: "));
}

TEST_CASE("duplicate keys are errors with their full path", "[config][errors]") {
  CHECK(error_of_text(R"({"xnat": {"url": "https://a", "url": "https://b"}})") ==
        "config.json: xnat.url: duplicate key");
  CHECK(error_of_text(R"({"pacs": [{"name": "a"},
      {"name": "b", "windows": [{"start": "01:00"}, {"start": "02:00", "start": "03:00"}]}]})") ==
        "config.json: pacs[1].windows[1].start: duplicate key");
  CHECK(error_of_text(R"({"log_level": "info", "pacs": [[1, {"x": 1, "x": 2}]]})") ==
        "config.json: pacs[0][1].x: duplicate key");
  CHECK(error_of_text(R"({"ae_title": "A", "ae_title": "B"})") ==
        "config.json: ae_title: duplicate key");
}
