// xnat::Client against an XNAT that answers with garbage (HostileHttp, issue 21 items 2 and 5):
// listings that are not JSON, HTML where JSON was asked for, documents nested 100,000 levels
// (DCMTK's XML parser crashed on them), counts like 1e300 or 2^64-1, rows without the keys
// every row has. Each is an XnatError of kind Unreadable, transient(): never "no session",
// never a count, never a crash; and once XNAT answers properly the same call goes through.
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <string>

#include "hostile_http.hpp"
#include "xnat/requests.hpp"
#include "xnat/xnat.hpp"

using namespace p2x::xnat;
using p2x::test::HostileHttp;
using p2x::test::HttpAnswer;
using p2x::test::HttpExchange;

namespace {

// A fake XNAT: login works; every other answer is looked up by path (query cut off) in a
// table the test changes as it goes. Unknown paths are 404.
class FakeXnat {
 public:
  FakeXnat()
      : server_([this](const HttpExchange& ex) -> std::optional<HttpAnswer> {
          const std::string path = ex.target.substr(0, ex.target.find('?'));
          std::lock_guard<std::mutex> lock(mu_);
          const auto it = answers_.find(path);
          if (it != answers_.end()) return it->second;
          if (path == "/data/JSESSION") return HttpAnswer{200, "text/plain", "ABC123", {}};
          return HttpAnswer{404, "text/html", "<html>Not found</html>", {}};
        }) {}

  void set(const std::string& path, std::string body, int status = 200,
           std::string type = "application/json") {
    std::lock_guard<std::mutex> lock(mu_);
    answers_[path] = HttpAnswer{status, std::move(type), std::move(body), {}};
  }
  Client client() const {
    Settings s;
    s.url = server_.url();
    s.timeout_s = 10;
    return Client(s, Credentials{"alice", "secret"});
  }

  // An archived session E (XNAT_E1) with one scan "1" of series 1.2.3 and one DICOM resource
  // whose file_count is `count` (JSON text).
  void archive_session(const std::string& count = "\"2\"") {
    set("/data/projects/P/experiments",
        R"({"ResultSet":{"Result":[{"ID":"XNAT_E1","label":"E","UID":"1.2","subject_label":"S"}],"totalRecords":"1"}})");
    set("/data/experiments/XNAT_E1",
        R"({"items":[{"data_fields":{"ID":"XNAT_E1"},"children":[{"field":"scans/scan","items":[{"data_fields":{"ID":"1","UID":"1.2.3"}}]}]}]})");
    set("/data/experiments/XNAT_E1/scans/ALL/resources",
        R"({"ResultSet":{"Result":[{"cat_id":"1","label":"DICOM","file_count":)" + count +
            R"(,"file_size":"100"}]}})");
  }
  // A READY prearchive entry E whose session document is `xml`.
  void prearchive_session(const std::string& xml) {
    set("/data/prearchive/projects/P",
        R"({"ResultSet":{"Result":[{"url":"/prearchive/projects/P/20240101_1/E","name":"E","folderName":"E","tag":"1.2","status":"READY","subject":"S"}]}})");
    set("/data/prearchive/projects/P/20240101_1/E", xml, 200, "text/xml");
    set("/data/prearchive/projects/P/20240101_1/E/resources",
        R"({"ResultSet":{"Result":[{"category":"scans","cat_id":"1","label":"DICOM","file_count":"2","file_size":"100"}]}})");
  }

 private:
  std::mutex mu_;
  std::map<std::string, HttpAnswer> answers_;
  HostileHttp server_;
};

// The XnatError `f` throws (FAILs when it returns).
template <class F>
XnatError error_of(F&& f) {
  try {
    f();
  } catch (const XnatError& e) {
    return e;
  }
  FAIL("no XnatError thrown");
  throw std::logic_error("unreachable");
}

const char* kGoodDocument = R"(<?xml version="1.0" encoding="UTF-8"?>
<xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" label="E">
  <xnat:scans><xnat:scan ID="1" UID="1.2.3" xsi:type="xnat:mrScanData"/></xnat:scans>
</xnat:MRSession>)";

}  // namespace

TEST_CASE("a listing XNAT answers with garbage is an error that waits, never 'no session'",
          "[xnat][hostile]") {
  FakeXnat x;
  Client c = x.client();
  const std::vector<std::pair<std::string, std::string>> garbage = {
      {"an HTML page", "<html><body>Down for maintenance</body></html>"},
      {"empty", ""},
      {"no ResultSet", R"({"items":[]})"},
      {"rows that are not objects", R"({"ResultSet":{"Result":[1,"x",null]}})"},
      {"rows without ID and label", R"({"ResultSet":{"Result":[{"foo":"bar"}]}})"},
      {"fewer rows than totalRecords", R"({"ResultSet":{"Result":[],"totalRecords":"3"}})"},
      {"100,000 nested arrays", p2x::test::nested_arrays(100000)},
      {"truncated", R"({"ResultSet":{"Result":[{"ID":"XNAT_E1","lab)"},
  };
  for (const auto& [what, body] : garbage) {
    INFO(what);
    x.set("/data/projects/P/experiments", body);
    const XnatError e = error_of([&] { c.session("P", "E"); });
    CHECK(e.kind == ErrorKind::Unreadable);
    CHECK(e.transient());
    CHECK(std::string(e.what()).find("experiment listing") != std::string::npos);
    CHECK_THROWS_AS(c.sessions("P"), XnatError);
  }
  // XNAT answers properly again: the same call goes on by itself.
  x.archive_session();
  const auto s = c.session("P", "E");
  REQUIRE(s);
  REQUIRE(s->scans.size() == 1);
  CHECK(s->scans[0].files == 2);
  // A listing that really has no such session is still "nothing there".
  x.set("/data/projects/P/experiments", R"({"ResultSet":{"Result":[],"totalRecords":"0"}})");
  CHECK_FALSE(c.session("P", "E").has_value());
}

TEST_CASE("counts and sizes from XNAT are bounded non-negative integers", "[xnat][hostile]") {
  FakeXnat x;
  Client c = x.client();
  for (const char* count :
       {"1e300", "\"1e300\"", "18446744073709551615", "-1", "\"-1\"", "1.5", "\"1.5\"", "\"1e400\"",
        "\"0x10\"", "\" 2\"", "true", "[2]", "9007199254740992"}) {
    INFO("file_count " << count);
    x.archive_session(count);
    const XnatError e = error_of([&] { c.session("P", "E"); });
    CHECK(e.kind == ErrorKind::Unreadable);
    CHECK(e.transient());
    CHECK(std::string(e.what()).find("file_count") != std::string::npos);
    CHECK(std::string(e.what()).find("scan 1") != std::string::npos);
  }
  // Two rows of 2^62 each: within the bound alone, their sum is not.
  x.archive_session();
  x.set(
      "/data/experiments/XNAT_E1/scans/ALL/resources",
      R"({"ResultSet":{"Result":[{"cat_id":"1","label":"DICOM","file_count":"4","file_size":"4611686018427387904"},
                                    {"cat_id":"1","label":"DICOM","file_count":"4","file_size":"4611686018427387904"}]}})");
  CHECK(error_of([&] { c.session("P", "E"); }).kind == ErrorKind::Unreadable);
  x.set(
      "/data/experiments/XNAT_E1/scans/ALL/resources",
      R"({"ResultSet":{"Result":[{"cat_id":"1","label":"DICOM","file_count":"4503599627370496","file_size":"1"},
                                    {"cat_id":"1","label":"DICOM","file_count":"4503599627370496","file_size":"1"}]}})");
  CHECK_THROWS_WITH(c.session("P", "E"), Catch::Contains("add up to more than"));
  // Strings and JSON numbers within the bound, and an empty count (XNAT has none cached).
  x.set(
      "/data/experiments/XNAT_E1/scans/ALL/resources",
      R"({"ResultSet":{"Result":[{"cat_id":"1","label":"DICOM","file_count":"9007199254740990","file_size":7},
                                    {"cat_id":"1","label":"DICOM","file_count":1,"file_size":""}]}})");
  const auto s = c.session("P", "E");
  REQUIRE(s);
  CHECK(s->scans.at(0).files == 9007199254740991);
  CHECK(s->scans.at(0).bytes == 7);
}

TEST_CASE("a session document nested 100,000 levels deep is an error that waits, not a crash",
          "[xnat][hostile]") {
  FakeXnat x;
  Client c = x.client();
  std::string deep_elements;
  for (int i = 0; i < 100000; ++i) deep_elements += "<a>";
  const std::vector<std::pair<std::string, std::string>> documents = {
      {"<!a> x 100,000", p2x::test::nested_declarations(100000)},
      {"<?x> + <a> x 100,000 + ?>", p2x::test::nested_in_instruction(100000)},
      {"<a> x 100,000", deep_elements},
      {"a DOCTYPE with an entity bomb",
       R"(<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]><s><scans><scan ID="1" UID="&h;"/></scans></s>)"},
      {"an HTML page", "<html><body>Status page<p>Down</body></html>"},
      {"JSON", R"({"ResultSet":{}})"},
      {"truncated", std::string(kGoodDocument).substr(0, 200)},
  };
  for (const auto& [what, xml] : documents) {
    INFO(what);
    x.prearchive_session(xml);
    const XnatError e = error_of([&] { c.prearchive_session("P", "E", "1.2"); });
    CHECK(e.kind == ErrorKind::Unreadable);
    CHECK(e.transient());
    CHECK(std::string(e.what()).find("session document") != std::string::npos);
  }
  x.prearchive_session(kGoodDocument);
  const auto s = c.prearchive_session("P", "E", "1.2");
  REQUIRE(s);
  REQUIRE(s->scans.size() == 1);
  CHECK(s->scans[0].series_uid == "1.2.3");
  CHECK(s->scans[0].files == 2);
}

TEST_CASE("unreadable answers to the login, the import and the project settings wait too",
          "[xnat][hostile]") {
  FakeXnat x;
  SECTION("project settings") {
    Client c = x.client();
    x.set("/xapi/anonymize/projects/P/enabled", "<html>Login</html>", 200, "text/html");
    x.set("/xapi/anonymize/site/enabled", "true");
    CHECK(error_of([&] { c.anonymisation("P"); }).kind == ErrorKind::Unreadable);
    x.set("/xapi/anonymize/projects/P/enabled", "false");
    CHECK(c.anonymisation("P").site == Answer::Yes);
    x.set("/data/projects/P/prearchive_code", "<html>Login</html>", 200, "text/html");
    CHECK(error_of([&] { c.prearchive_code("P"); }).transient());
    x.set("/data/projects/P/prearchive_code", "0");
    CHECK(c.prearchive_code("P") == 0);
  }
  SECTION("login") {
    Client c = x.client();
    x.set("/data/JSESSION", "<html><body>Welcome! Please log in</body></html>", 200, "text/html");
    const XnatError e = error_of([&] { c.login(); });
    CHECK(e.kind == ErrorKind::Unreadable);
    CHECK(e.transient());
    x.set("/data/JSESSION", "ABC123", 200, "text/plain");
    c.login();
    CHECK(c.logins_made() == 2);
  }
  SECTION("uri-list of the import service") {
    using p2x::xnat::detail::check_import_uris;
    for (const std::string& body :
         {std::string("<html>ok</html>"), std::string("garbage\r\nmore garbage"),
          std::string("\0\0", 2), std::string("\x01\r\n")}) {
      const XnatError e = error_of([&] { check_import_uris(body, "P", false); });
      CHECK(e.kind == ErrorKind::Unreadable);
      CHECK(e.transient());
    }
    // An empty list is XNAT's own answer when it filed nothing (every object dropped by a
    // series import filter): verification then finds what is missing.
    CHECK(check_import_uris("", "P", false).empty());
    CHECK(check_import_uris(std::string(100000, '\n'), "P", false).empty());
  }
}
