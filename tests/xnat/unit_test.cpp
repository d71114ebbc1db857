// Unit tests of the socket-free XNAT layer: URLs, query strings, answer classification, uri-list
// and JSON listing parsing, credentials files, the DICOM routing text. The zip writer's tests
// are in zip_test.cpp.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "xnat/project_checks.hpp"
#include "xnat/requests.hpp"
#include "support/temp_dir.hpp"
#include "xnat/xnat.hpp"

namespace fs = std::filesystem;
using namespace p2x::xnat;
using p2x::test::TempDir;
using namespace p2x::xnat::detail;

namespace {

fs::path write_file(const fs::path& p, const std::string& text, mode_t mode = 0600) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
  ::chmod(p.c_str(), mode);
  return p;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

TEST_CASE("parse_url handles schemes - ports - prefixes") {
  auto u = parse_url("https://xnat.example.org/xnat/");
  CHECK(u.tls);
  CHECK(u.host == "xnat.example.org");
  CHECK(u.port == "443");
  CHECK(u.prefix == "/xnat");
  CHECK(u.host_header() == "xnat.example.org");

  u = parse_url("http://127.0.0.1:8080");
  CHECK_FALSE(u.tls);
  CHECK(u.port == "8080");
  CHECK(u.prefix.empty());
  CHECK(u.host_header() == "127.0.0.1:8080");

  u = parse_url("HTTP://[::1]:8443/a/b/data");
  CHECK(u.host == "::1");
  CHECK(u.prefix == "/a/b");
  CHECK(u.host_header() == "[::1]:8443");

  CHECK_THROWS_AS(parse_url("ftp://x"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://h:0"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://h:99999"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://h:80x"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://h:"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://u:pw@h/"), std::invalid_argument);
  CHECK_THROWS_AS(parse_url("http://h/x?y=1"), std::invalid_argument);
  // The message names the URL but never user info.
  CHECK(message_of([] { parse_url("http://u:secretpw@h/"); }).find("secretpw") ==
        std::string::npos);
}

TEST_CASE("make_target encodes query values and keeps the prefix") {
  auto u = parse_url("https://h/xnat");
  CHECK(make_target(u, "/data/JSESSION") == "/xnat/data/JSESSION");
  CHECK(make_target(u, "/data/projects/" + seg("P 1/x")) == "/xnat/data/projects/P%201%2Fx");
  auto t = make_target(u, "/data/services/import", import_query("P1", "S 1", "E&1", false, true));
  CHECK(t ==
        "/xnat/data/services/import?import-handler=DICOM-zip&inbody=true&PROJECT_ID=P1&"
        "SUBJECT_ID=S%201&EXPT_LABEL=E%261&dest=/archive&overwrite=append");
  t = make_target(u, "/data/services/import", import_query("P1", "S", "E", true, false));
  CHECK(t.find("dest=/prearchive") != std::string::npos);
  CHECK(t.find("overwrite") == std::string::npos);
  CHECK(percent_encode("a+b=c?") == "a%2Bb%3Dc%3F");
}

TEST_CASE("basic auth header is base64 of user:password") {
  CHECK(basic_auth("alice", "secret") == "Basic YWxpY2U6c2VjcmV0");
  CHECK(basic_auth("f", "") == "Basic Zjo=");
  CHECK(basic_auth("", "") == "Basic Og==");
}

TEST_CASE("status classification") {
  CHECK(classify_status(500) == ErrorKind::Transient);
  CHECK(classify_status(503) == ErrorKind::Transient);
  CHECK(classify_status(401) == ErrorKind::Auth);
  CHECK(classify_status(403) == ErrorKind::Forbidden);
  CHECK(classify_status(404) == ErrorKind::NotFound);
  CHECK(classify_status(409) == ErrorKind::Conflict);
  CHECK(classify_status(400) == ErrorKind::BadRequest);
  CHECK(classify_status(413) == ErrorKind::Other4xx);
  CHECK(classify_status(429) == ErrorKind::Transient);
  CHECK(classify_status(302) == ErrorKind::Protocol);
  CHECK_NOTHROW(check("x", Response{200, "OK", "", "", {}, ""}));
  CHECK_NOTHROW(check("x", Response{204, "No Content", "", "", {}, ""}));
}

TEST_CASE("failure messages carry XNAT's reason and a text extract of the body") {
  Response r;
  r.status = 409;
  r.reason = "Session already exists, retry with overwrite enabled";
  r.body =
      "<html><head><title>Status page</title><style>body{color:red}</style>"
      "<script>var x = 1;</script></head><body><h3>The session &quot;E1&quot; already\n\n exists"
      "</h3></body></html>";
  try {
    check("XNAT import of P/S/E", r);
    FAIL("no exception");
  } catch (const XnatError& e) {
    CHECK(e.kind == ErrorKind::Conflict);
    CHECK(e.http_status == 409);
    CHECK_FALSE(e.transient());
    std::string m = e.what();
    CHECK(m.find("XNAT import of P/S/E: HTTP 409 Session already exists") == 0);
    CHECK(m.find(": The session \"E1\" already exists") != std::string::npos);
    CHECK(m.find("Status page") == std::string::npos);
    CHECK(m.find("color") == std::string::npos);
    CHECK(m.find("var x") == std::string::npos);
  }
  r.status = 502;
  r.reason = "Bad Gateway";
  r.body = "";
  try {
    check("q", r);
    FAIL("no exception");
  } catch (const XnatError& e) {
    CHECK(e.transient());
    CHECK(std::string(e.what()) == "q: HTTP 502 Bad Gateway");
  }
  r = Response{};
  r.status = 302;
  r.reason = "Found";
  r.location = "https://h/xnat/";
  CHECK(failure_message("q", r).find("redirected to https://h/xnat/") != std::string::npos);
  CHECK(text_extract(std::string(1000, 'a'), 50).size() == 53);
}

TEST_CASE("XNAT's words, not its page: Restlet's and Tomcat's status pages stripped to the message",
          "[xnat][unit]") {
  // Restlet's status page as XNAT's REST API sends it (the message in <h3>).
  const std::string restlet =
      "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body>\n<h3>unable to archive "
      "for the Prearchive session</h3><p>You can get technical details <a href=\"http://www.w3.org/"
      "Protocols/rfc2616/rfc2616-sec10.html#sec10.4.1\">here</a>.<br>\nPlease continue your visit "
      "at our <a href=\"/\">home page</a>.\n</p>\n</body>\n</html>\n";
  CHECK(error_text(restlet, 400, "") == "unable to archive for the Prearchive session");
  // The stand-in's variant: the reason phrase as a heading, the message in a paragraph.
  const std::string standin =
      "<html><head><title>Status page</title></head>\n<body>\n<h3>Bad Request</h3>\n<p>Session "
      "already exists with matching files.</p>\n<p>You can get technical details <a href=\"x\">"
      "here</a>.</p>\n</body>\n</html>\n";
  CHECK(error_text(standin, 400, "") == "Session already exists with matching files.");
  // Tomcat 9's own error page (no reason phrase on the status line).
  const std::string tomcat =
      "<!doctype html><html lang=\"en\"><head><title>HTTP Status 400 – Bad Request</title><style "
      "type=\"text/css\">body {font-family:Tahoma}</style></head><body><h1>HTTP Status 400 – Bad "
      "Request</h1><hr class=\"line\" /><p><b>Type</b> Status Report</p><p><b>Message</b> "
      "Concurrent file sends of the same data is not supported.</p><p><b>Description</b> The "
      "server cannot or will not process the request due to something that is perceived to be a "
      "client error.</p><hr class=\"line\" /><h3>Apache Tomcat/9.0.82</h3></body></html>";
  CHECK(error_text(tomcat, 400, "") == "Concurrent file sends of the same data is not supported.");
  CHECK(error_text("plain words", 500, "") == "plain words");
  CHECK(error_text("<html><body><h3>Bad Request</h3></body></html>", 400, "") == "Bad Request");
  Response r;
  r.status = 400;
  r.body = restlet;
  CHECK(failure_message("XNAT import of P/S/E", r) ==
        "XNAT import of P/S/E: HTTP 400: unable to archive for the Prearchive session");
  r.body = tomcat;
  CHECK(classify(r) == ErrorKind::Transient);
}

TEST_CASE("every DICOM resource of a scan counts: DICOM, secondary, unlabelled, others never",
          "[xnat][unit]") {
  const auto counts = parse_scan_resources(
      R"({"ResultSet":{"Result":[)"
      R"({"cat_id":"1","label":"DICOM","file_count":"10","file_size":"100"},)"
      R"({"cat_id":"1","label":"secondary","file_count":"2","file_size":"20"},)"
      R"({"cat_id":"1","label":"SNAPSHOTS","file_count":"3","file_size":"30"},)"
      R"({"cat_id":"2","label":"secondary","file_count":"1","file_size":"5"},)"
      R"({"cat_id":"3","label":"NIFTI","file_count":"4","file_size":"40"},)"
      R"({"cat_id":"4","label":"","file_count":"6","file_size":"60"}]}})");
  CHECK(counts.at("1") == std::make_pair<std::int64_t, std::int64_t>(12, 120));
  CHECK(counts.at("2") == std::make_pair<std::int64_t, std::int64_t>(1, 5));
  CHECK(counts.count("3") == 0);
  CHECK(counts.at("4") == std::make_pair<std::int64_t, std::int64_t>(6, 60));
  const auto files = parse_scan_files(
      R"({"ResultSet":{"Result":[)"
      R"({"URI":"/data/experiments/E/scans/7/resources/DICOM/files/a.dcm","collection":"DICOM","Size":"10"},)"
      R"({"URI":"/data/experiments/E/scans/7/resources/secondary/files/b.dcm","collection":"secondary","Size":"5"},)"
      R"({"URI":"/data/experiments/E/scans/7/resources/SNAPSHOTS/files/c.gif","collection":"SNAPSHOTS","Size":"1"}]}})");
  CHECK(files.at("7") == std::make_pair<std::int64_t, std::int64_t>(2, 15));
}

TEST_CASE("uri-list parsing and destination checks") {
  CHECK(parse_uri_list("/a\r\n\r\n# comment\r\n/b") == std::vector<std::string>{"/a", "/b"});
  CHECK(parse_uri_list("").empty());

  CHECK(check_import_uris("/data/archive/projects/P1/subjects/S/experiments/E\r\n", "P1", false) ==
        "/data/archive/projects/P1/subjects/S/experiments/E");
  CHECK(check_import_uris("http://h/xnat/data/archive/projects/P1/subjects/S/experiments/E", "P1",
                          false)
            .find("/archive/projects/P1/") != std::string::npos);
  CHECK(check_import_uris("/data/prearchive/projects/P1/20240101_120000/E\r\n", "P1", true) ==
        "/data/prearchive/projects/P1/20240101_120000/E");

  auto kind_of = [](const std::string& body, const std::string& p, bool pre) {
    try {
      check_import_uris(body, p, pre);
    } catch (const XnatError& e) {
      return e.kind;
    }
    return ErrorKind::Other4xx;  // sentinel: no error
  };
  CHECK(kind_of("/data/prearchive/projects/P1/20240101_120000/E\r\n", "P1", false) ==
        ErrorKind::Misrouted);
  CHECK(kind_of("/data/prearchive/projects/Unassigned/20240101_120000/E\r\n", "P1", true) ==
        ErrorKind::Misrouted);
  CHECK(kind_of("/data/archive/projects/P2/subjects/S/experiments/E\r\n", "P1", false) ==
        ErrorKind::Misrouted);
  CHECK(kind_of("/data/prearchive/projects//P1/1/E\r\n", "P1", true) == ErrorKind::Unreadable);
  // An empty answer: XNAT filed nothing (a series import filter dropped every object).
  CHECK(kind_of("", "P1", false) == ErrorKind::Other4xx);
  CHECK(check_import_uris("\r\n", "P1", false).empty());
  CHECK(kind_of("<html>ok</html>", "P1", false) == ErrorKind::Unreadable);
  CHECK(message_of([] {
          check_import_uris("/data/prearchive/projects/P1/1/E", "P1", false);
        }).find("prearchive instead of the archive") != std::string::npos);
}

TEST_CASE("JSON listings") {
  auto ex = parse_experiments(R"({"ResultSet":{"totalRecords":"2","Result":[
      {"ID":"XNAT_E00001","label":"E1","UID":"1.2.3","subject_label":"S1","URI":"/data/experiments/XNAT_E00001"},
      {"ID":"XNAT_E00002","label":"E2","URI":"/data/experiments/XNAT_E00002"}]}})");
  REQUIRE(ex.size() == 2);
  CHECK(ex[0].id == "XNAT_E00001");
  CHECK(ex[0].label == "E1");
  CHECK(ex[0].study_uid == "1.2.3");
  CHECK(ex[0].subject_label == "S1");
  CHECK(ex[1].study_uid.empty());

  auto scans = parse_scans(R"({"ResultSet":{"Result":[
      {"ID":"1","type":"T1","series_description":"t1 mprage","URI":"/data/experiments/X/scans/1"},
      {"ID":2,"type":"DWI","series_description":"dwi","UID":"1.2.3.4"}]}})");
  REQUIRE(scans.size() == 2);
  CHECK(scans[0].id == "1");
  CHECK(scans[0].description == "t1 mprage");
  CHECK(scans[1].id == "2");
  CHECK(scans[1].series_uid == "1.2.3.4");

  parse_scan_item(R"({"items":[{"data_fields":{"ID":"1","UID":"1.2.9","type":"T1"}}]})", scans[0]);
  CHECK(scans[0].series_uid == "1.2.9");

  auto files = parse_scan_files(R"({"ResultSet":{"Result":[
      {"Name":"a.dcm","Size":"100","URI":"/data/experiments/X/scans/1/resources/11/files/a.dcm","collection":"DICOM"},
      {"Name":"b.dcm","Size":50,"URI":"/data/experiments/X/scans/1/resources/11/files/b.dcm","collection":"DICOM"},
      {"Name":"t.gif","Size":"7","URI":"/data/experiments/X/scans/1/resources/12/files/t.gif","collection":"SNAPSHOTS"},
      {"Name":"c.dcm","Size":"10","URI":"/data/experiments/X/scans/22/resources/13/files/c.dcm"}]}})");
  REQUIRE(files.size() == 2);
  CHECK(files["1"] == std::pair<std::int64_t, std::int64_t>{2, 150});
  CHECK(files["22"] == std::pair<std::int64_t, std::int64_t>{1, 10});

  CHECK_THROWS_AS(parse_experiments("<html>"), XnatError);
  CHECK_THROWS_AS(parse_experiments(R"({"items":[]})"), XnatError);
  CHECK_THROWS_AS(parse_scan_item(R"({"items":[]})", scans[0]), XnatError);
}

TEST_CASE("what cannot be read in a listing is Unreadable, never empty", "[xnat][unit]") {
  auto kind_of = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const XnatError& e) {
      return e.kind;
    }
    return ErrorKind::Other4xx;  // sentinel: no error
  };
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const std::string& body :
       {std::string("<html>"), std::string(), deep, std::string(R"({"ResultSet":{"Result":{}}})"),
        std::string(R"({"ResultSet":{"Result":[[]]}})"),
        std::string(R"({"ResultSet":{"Result":[{"ID":"1"}],"totalRecords":"2"}})"),
        std::string(R"({"ResultSet":{"Result":[{"ID":"1"}],"totalRecords":-1}})")}) {
    INFO(body.substr(0, 60));
    CHECK(kind_of([&] { parse_experiments(body); }) == ErrorKind::Unreadable);
    CHECK(kind_of([&] { parse_scans(body); }) == ErrorKind::Unreadable);
    CHECK(kind_of([&] { parse_prearchive(body); }) == ErrorKind::Unreadable);
    CHECK(kind_of([&] { parse_scan_files(body); }) == ErrorKind::Unreadable);
    CHECK(kind_of([&] { parse_scan_resources(body); }) == ErrorKind::Unreadable);
  }
  // A row without what every row of its listing has.
  CHECK(kind_of([] { parse_experiments(R"({"ResultSet":{"Result":[{"ID":"X1"}]}})"); }) ==
        ErrorKind::Unreadable);
  CHECK(kind_of([] { parse_scans(R"({"ResultSet":{"Result":[{"type":"T1"}]}})"); }) ==
        ErrorKind::Unreadable);
  CHECK(kind_of([] { parse_prearchive(R"({"ResultSet":{"Result":[{"name":"E"}]}})"); }) ==
        ErrorKind::Unreadable);
  // Another shape that an older XNAT may give: Protocol (the client asks differently).
  CHECK(kind_of([] { parse_experiment_scans(R"({"items":[]})"); }) == ErrorKind::Protocol);
  CHECK(kind_of([] { parse_experiment_scans(R"({"items":[{"children":[{"field":3}]}]})"); }) ==
        ErrorKind::Other4xx);
  CHECK(kind_of([&] { parse_experiment_scans(deep); }) == ErrorKind::Unreadable);
  CHECK(kind_of([] { parse_scan_resources(R"({"ResultSet":{"Result":[{"label":"DICOM"}]}})"); }) ==
        ErrorKind::Protocol);
  // Unreadable is transient: the pipeline waits, it draws no verdict.
  CHECK(XnatError(ErrorKind::Unreadable, 200, "x").transient());
  CHECK_FALSE(XnatError(ErrorKind::Protocol, 302, "x").transient());
  CHECK(std::string(to_string(ErrorKind::Unreadable)) == "unreadable");
}

TEST_CASE("parse_count: decimal digits up to 2^53 - 1 and nothing else", "[xnat][unit]") {
  CHECK(parse_count("0") == 0);
  CHECK(parse_count("42") == 42);
  CHECK(parse_count("9007199254740991") == kMaxCount);
  for (const char* bad : {"", "9007199254740992", "18446744073709551615", "1e300", "1e400", "-1",
                          "1.0", "1.5", " 1", "1 ", "+1", "0x10", "99999999999999999999"}) {
    INFO(bad);
    CHECK_FALSE(parse_count(bad).has_value());
  }
}

TEST_CASE("credentials file modes and formats") {
  TempDir d("p2x-xnat-unit");
  auto ok = write_file(d.file("ok"), "alice:s3cr:et\nignored\n", 0600);
  auto c = read_credentials(ok.string());
  CHECK(c.user == "alice");
  CHECK(c.password == "s3cr:et");

  auto js = write_file(d.file("js"), R"({"user":"bob","password":"pa ss"})", 0400);
  c = read_credentials(js.string());
  CHECK(c.user == "bob");
  CHECK(c.password == "pa ss");

  auto crlf = write_file(d.file("crlf"),
                         "\xEF\xBB\xBF"
                         "carol:pw\r\n",
                         0600);
  c = read_credentials(crlf.string());
  CHECK(c.user == "carol");
  CHECK(c.password == "pw");

  const std::string secret = "TopSecret99";
  auto m644 = write_file(d.file("m644"), "alice:" + secret, 0644);
  auto msg = message_of([&] { read_credentials(m644.string()); });
  CHECK(msg.find("has mode 0644") != std::string::npos);
  CHECK(msg.find("chmod 600 " + m644.string()) != std::string::npos);

  auto m640 = write_file(d.file("m640"), "alice:" + secret, 0640);
  CHECK(message_of([&] { read_credentials(m640.string()); }).find("mode 0640") !=
        std::string::npos);
  auto m602 = write_file(d.file("m602"), "alice:" + secret, 0602);
  CHECK(message_of([&] { read_credentials(m602.string()); }).find("mode 0602") !=
        std::string::npos);

  CHECK(message_of([&] { read_credentials(d.file("missing")); }).find("No such file") !=
        std::string::npos);
  CHECK(message_of([&] { read_credentials(d.path()); }).find("not a regular file") !=
        std::string::npos);

  std::vector<std::string> malformed = {
      secret,                                              // no colon
      ":" + secret,                                        // no user
      "alice:",                                            // no password
      "",                                                  // empty
      "{\"user\":\"alice\",\"password\":\"" + secret,      // broken JSON quoting the secret
      "{\"user\":\"alice\",\"pw\":\"" + secret + "\"}",    // wrong key
      "{\"user\":\"alice\",\"password\":" + secret + "}",  // invalid literal
  };
  int i = 0;
  for (const auto& text : malformed) {
    auto p = write_file(d.file("bad" + std::to_string(i++)), text, 0600);
    auto m = message_of([&] { read_credentials(p.string()); });
    INFO(text << " -> " << m);
    CHECK(m != "<no exception>");
    CHECK(m.find(p.string()) != std::string::npos);
    CHECK(m.find(secret) == std::string::npos);
  }
}

TEST_CASE("client construction validates the URL without network traffic") {
  Settings s;
  s.url = "xnat.example.org";
  CHECK_THROWS_AS(Client(s, Credentials{"u", "p"}), std::invalid_argument);
  s.url = "https://xnat.example.org/xnat";
  Client c(s, Credentials{"u", "p"});
  CHECK(c.requests_made() == 0);
  CHECK(c.logins_made() == 0);
}

TEST_CASE("routing comment for XNAT's DICOM receiver") {
  CHECK(routing_comment("P", "S", "E") == "Project: P Subject: S Session: E");
  CHECK(routing_comment("Proj_1", "sub-02", "MR_2024-03-01") ==
        "Project: Proj_1 Subject: sub-02 Session: MR_2024-03-01");
  // Labels XNAT's routing rule cannot carry: BadRequest (before any network traffic, since the
  // pipeline builds the text before it connects).
  for (const char* bad : {"", "has space", "a.b", "x:y", "caf\xc3\xa9"}) {
    INFO(bad);
    for (int pos = 0; pos < 3; ++pos) {
      const std::string p = pos == 0 ? bad : "P", s = pos == 1 ? bad : "S",
                        e = pos == 2 ? bad : "E";
      try {
        routing_comment(p, s, e);
        FAIL("no XnatError thrown");
      } catch (const XnatError& err) {
        CHECK(err.kind == ErrorKind::BadRequest);
        CHECK(std::string(err.what()).find("'" + std::string(bad) + "'") != std::string::npos);
      }
    }
  }
}

TEST_CASE("XNAT's real replies: settings, one-request scan counts, 400s", "[xnat][unit]") {
  using namespace p2x::xnat::detail;
  CHECK(parse_enabled("true") == true);
  CHECK(parse_enabled(" False\n") == false);
  CHECK(parse_enabled("\"true\"") == true);
  CHECK_FALSE(parse_enabled("<html>").has_value());
  CHECK(parse_prearchive_code("0") == 0);
  CHECK(parse_prearchive_code("4\n") == 4);
  CHECK_FALSE(parse_prearchive_code("four").has_value());

  auto res = parse_scan_resources(R"({"ResultSet":{"Result":[
      {"cat_id":"1","label":"DICOM","file_count":"3","file_size":"300"},
      {"cat_id":"1","label":"SNAPSHOTS","file_count":"2","file_size":"9"},
      {"cat_id":"3-MR1","label":"DICOM","file_count":5,"file_size":500}]}})");
  CHECK(res.at("1") == std::make_pair(std::int64_t{3}, std::int64_t{300}));
  CHECK(res.at("3-MR1") == std::make_pair(std::int64_t{5}, std::int64_t{500}));
  CHECK_THROWS_AS(parse_scan_resources(R"({"ResultSet":{"Result":[{"label":"DICOM"}]}})"),
                  p2x::xnat::XnatError);

  auto scans = parse_experiment_scans(R"({"items":[{"data_fields":{"ID":"XNAT_E1"},"children":[
      {"field":"scans/scan","items":[{"data_fields":{"ID":"1","UID":"1.2.1","type":"T1"}},
                                     {"data_fields":{"ID":"1-MR1","UID":"1.2.2"}}]}]}]})");
  REQUIRE(scans.size() == 2);
  CHECK(scans[1].id == "1-MR1");
  CHECK(scans[1].series_uid == "1.2.2");

  auto pre = parse_prearchive(R"({"ResultSet":{"Result":[{"url":"/prearchive/projects/P/1/E",
      "name":"E","folderName":"E","tag":"1.2","status":"READY","subject":"S"}]}})");
  REQUIRE(pre.size() == 1);
  CHECK(pre[0].url == "/prearchive/projects/P/1/E");

  // A prearchive session: UIDs only in its session document, counts in <session>/resources
  // (which also lists session resources).
  auto uids = parse_session_xml_scan_uids(R"(<?xml version="1.0" encoding="UTF-8"?>
<xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat" ID="" project="P" label="E">
  <xnat:scans>
    <xnat:scan ID="1" type="T1" UID="1.2.1" xsi:type="xnat:mrScanData">
      <xnat:file label="DICOM" format="DICOM"/></xnat:scan>
    <xnat:scan ID="1-MR1" UID="1.2.2"/>
    <xnat:scan ID="7"/>
  </xnat:scans>
  <xnat:resources><xnat:resource ID="9" label="LOGS"/></xnat:resources>
</xnat:MRSession>)");
  REQUIRE(uids.size() == 3);
  CHECK(uids.at("1") == "1.2.1");
  CHECK(uids.at("1-MR1") == "1.2.2");
  CHECK(uids.at("7").empty());
  CHECK_THROWS_AS(parse_session_xml_scan_uids("<html><body>Status page"), p2x::xnat::XnatError);
  CHECK_THROWS_AS(parse_session_xml_scan_uids("{\"ResultSet\":{}}"), p2x::xnat::XnatError);
  // Deep nesting is refused (the reader never recurses); neither quoted '/>' nor closing tags in
  // comments or CDATA hide the depth. (The other attacks: hostile_reply_test.cpp.)
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "<a x=\"/>\"><!-- </a> --><![CDATA[</a>]]>";
  CHECK_THROWS_WITH(parse_session_xml_scan_uids(deep),
                    Catch::Contains("nested more than 64 levels deep"));
  std::string deep65 = "<r>", deep64 = "<r>";  // levels, the root and <scan> included
  for (int i = 0; i < 62; ++i) deep65 += "<a>";
  for (int i = 0; i < 61; ++i) deep64 += "<a>";
  deep65 += "<scans><scan ID=\"1\" UID=\"1.2\">text</scan></scans>";
  deep64 += "<scans><scan ID=\"1\" UID=\"1.2\">text</scan></scans>";
  for (int i = 0; i < 62; ++i) deep65 += "</a>";
  for (int i = 0; i < 61; ++i) deep64 += "</a>";
  CHECK(parse_session_xml_scan_uids(deep64 + "</r>").at("1") == "1.2");
  CHECK_THROWS_WITH(parse_session_xml_scan_uids(deep65 + "</r>"),
                    Catch::Contains("nested more than 64 levels deep"));
  std::string ok_depth = "<r>";
  for (int i = 0; i < 60; ++i) ok_depth += "<a/><b>";
  for (int i = 0; i < 60; ++i) ok_depth += "</b>";
  CHECK(parse_session_xml_scan_uids(ok_depth + "</r>").empty());  // 61 levels: parsed
  auto pre_res = parse_scan_resources(R"({"ResultSet":{"Result":[
      {"category":"scans","cat_id":"1","label":"DICOM","file_count":"4","file_size":"40"},
      {"category":"resources","cat_id":"9","label":"LOGS","file_count":"1","file_size":"5"}]}})");
  REQUIRE(pre_res.size() == 1);
  CHECK(pre_res.at("1") == std::make_pair(std::int64_t{4}, std::int64_t{40}));

  Response concurrent;
  concurrent.status = 400;
  concurrent.reason = "Concurrent file sends of the same data is not supported.";
  CHECK(classify(concurrent) == p2x::xnat::ErrorKind::Transient);
  Response wrapped;
  wrapped.status = 400;
  wrapped.reason = "Failed to archive 1 of 1 session(s)";
  CHECK(classify(wrapped) == p2x::xnat::ErrorKind::BadRequest);
}

TEST_CASE("anonymisation settings judged: enabled, disabled, not verified", "[xnat][unit]") {
  using p2x::xnat::Answer;
  using p2x::xnat::judge_anonymisation;
  CHECK(judge_anonymisation({Answer::Yes, Answer::No, {}, {}}, "P").anonymisation_ok);
  CHECK(judge_anonymisation({Answer::Unanswered, Answer::Yes, "x", {}}, "P").anonymisation_ok);
  auto off = judge_anonymisation({Answer::No, Answer::No, {}, {}}, "P");
  CHECK_FALSE(off.anonymisation_ok);
  CHECK_THAT(off.anonymisation, Catch::Contains("Anonymization Script"));
  auto unknown = judge_anonymisation({Answer::No, Answer::Unanswered, {}, "site: HTTP 404"}, "P");
  CHECK_FALSE(unknown.anonymisation_ok);
  CHECK_THAT(unknown.anonymisation,
             Catch::Contains("not verified") && Catch::Contains("site: HTTP 404"));
  p2x::xnat::ProjectChecks c;
  c.prearchive_code = 0;
  CHECK(p2x::xnat::choose_destination(std::nullopt, c, "P").prearchive);
  c.prearchive_code = 5;
  CHECK_FALSE(p2x::xnat::choose_destination(std::nullopt, c, "P").prearchive);
  CHECK(p2x::xnat::choose_destination(true, c, "P").prearchive);
  c.prearchive_code.reset();
  CHECK(p2x::xnat::choose_destination(std::nullopt, c, "P").prearchive);  // unknown: review
}
