// lib/service/operations: `pacs echo` and `submit --dry-run` (the PACS reached through the
// dispatcher: an in-process Storage SCP answers C-ECHO, a closed port stands for a PACS that is
// down) and the submit pre-flight against the XNAT stand-in.
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "ipc/protocol.hpp"
#include "pacs/pacs.hpp"
#include "service/operations.hpp"
#include "standin.hpp"
#include "support/counting_proxy.hpp"
#include "support/pacs_fixture.hpp"
#include "support/testdata.hpp"
#include "xnat/xnat.hpp"

using namespace p2x::service::test;
using p2x::service::xnat_preflight;
namespace ipc = p2x::ipc;
namespace xnat = p2x::xnat;

TEST_CASE("pacs echo answers the round trip of a configured PACS", "[service][pacs]") {
  p2x::pacs::init_network();
  const std::uint16_t port = p2x::test::free_port();
  p2x::pacs::StorageScp scp("TESTPACS", port, 2);
  scp.start();
  // 50 ms each way: the echo's three exchanges (associate, C-ECHO, release) take >= 300 ms.
  p2x::test::CountingProxy proxy(port);
  proxy.set_delay(std::chrono::milliseconds(50), std::chrono::milliseconds(50));
  Commands c(proxy.port());
  const auto t0 = std::chrono::steady_clock::now();
  json r = c.ok("pacs_echo", {{"pacs", "otherpacs"}});
  const auto call_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  CHECK(r.at("pacs") == "otherpacs");
  CHECK(r.at("ae_title") == "TESTPACS");
  CHECK(r.at("host") == "127.0.0.1");
  CHECK(r.at("port") == proxy.port());
  // "ms" is the measured round trip in milliseconds: at least the network's share of it, at
  // most the whole command.
  const auto ms = r.at("ms").get<long long>();
  INFO("ms " << ms << ", command " << call_ms << " ms");
  CHECK(ms >= 300);
  CHECK(static_cast<double>(ms) <= call_ms + 1);
  CHECK(proxy.total_connections() == 1);
}

TEST_CASE("pacs echo refuses an unknown or unreachable PACS", "[service][pacs]") {
  Commands c;  // the PACS nodes point at 127.0.0.1:1, where nothing listens
  json e = error_of(c.call("pacs_echo", {{"pacs", "nope"}}));
  CHECK(e.at("code") == ipc::code::refused);
  CHECK(e.at("message") == "unknown PACS \"nope\"; configured: testpacs, otherpacs");

  e = error_of(c.call("pacs_echo", {{"pacs", "testpacs"}}));
  CHECK(e.at("code") == ipc::code::refused);
  CHECK(e.at("message").get<std::string>().rfind(
            "C-ECHO to testpacs (TESTPACS@127.0.0.1:1) failed: ", 0) == 0);

  e = error_of(c.call("pacs_echo", json::object()));
  CHECK(e.at("code") == ipc::code::bad_request);
}

TEST_CASE("dry run: bad requests are refused, unreachable rows are listed", "[service][pacs]") {
  Commands c;
  json e = error_of(c.call("dry_run", submit_args(accession_csv(1), "PROJ1", "nope")));
  CHECK(e.at("code") == ipc::code::refused);
  CHECK(e.at("message") == "unknown PACS \"nope\"; configured: testpacs, otherpacs");

  e = error_of(c.call("dry_run", submit_args("Accession Number,Session\r\nA1,E1\r\nA2,E1\r\n")));
  CHECK(e.at("code") == ipc::code::refused);
  CHECK(e.at("message").get<std::string>().rfind("2 problem(s) in the CSV:\n  line 2, ", 0) == 0);

  json r = c.ok("dry_run", submit_args(accession_csv(2)));
  CHECK(r.at("ok") == false);
  CHECK(r.at("found") == 0);
  CHECK(r.at("total") == 2);
  CHECK(r.at("instances") == 0);
  REQUIRE(r.at("rows").size() == 2);
  for (const auto& row : r.at("rows")) {
    CHECK(row.at("found") == false);
    CHECK_FALSE(row.at("reason").get<std::string>().empty());
  }
  const std::string text = r.at("text");
  CHECK(text.rfind("row 1 (line 2, ", 0) == 0);
  CHECK(text.find("NOT RETRIEVABLE: ") != std::string::npos);
  CHECK(text.find("0 of 2 rows found, 0 instances would be retrieved; nothing was queued") !=
        std::string::npos);
  CHECK(c.store.jobs().empty());
}

namespace {

// The XNAT stand-in with project PROJ1 holding session SESS2 (subject SUBJ2), and a client.
struct Xnat {
  p2x::test::TempDir dir{"p2x-service-xnat"};
  p2x::test::XnatStandin standin{dir.file("xnat"), {"admin:admin"}, {"PROJ1", "EMPTY"}};
  xnat::Client client{settings(), xnat::Credentials{"admin", "admin"}};

  Xnat() {
    p2x::test::generate(p2x::test::uniform_corpus(1, 1, 1), dir.file("study"));
    client.import_study("PROJ1", "SUBJ2", "SESS2", dir.file("study"));
  }
  xnat::Settings settings() const {
    xnat::Settings s;
    s.url = standin.url();
    s.timeout_s = 10;
    return s;
  }
};

std::vector<p2x::store::NewItem> rows(int n) {
  std::vector<p2x::store::NewItem> out;
  for (int i = 1; i <= n; ++i) {
    p2x::store::NewItem it;
    it.row = i;
    it.line = i + 1;
    it.session = "SESS" + std::to_string(i);
    out.push_back(it);
  }
  return out;
}

json without_checks(json pre) {
  CHECK(pre.at("checks").size() == 2);  // anonymisation, destination
  pre.erase("checks");
  return pre;
}

std::string refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const ipc::CommandError& e) {
    CHECK(e.code() == ipc::code::refused);
    return e.what();
  }
  FAIL("not refused");
  return "";
}

}  // namespace

TEST_CASE("submit pre-flight against XNAT", "[service][xnat]") {
  Xnat x;
  const std::string exists =
      "line 3: session SESS2 already exists in project PROJ1 (subject SUBJ2)";

  SECTION("a project XNAT does not show is refused") {
    CHECK(refusal([&] {
            xnat_preflight(x.client, {{"project", "NOPE"}}, rows(1));
          }).rfind("project NOPE does not exist in XNAT", 0) == 0);
  }
  SECTION("no existing session: nothing to skip or warn about") {
    CHECK(without_checks(xnat_preflight(x.client, {{"project", "EMPTY"}}, rows(3))) ==
          json{{"skip_rows", json::array()}, {"warnings", json::array()}});
  }
  SECTION("an existing session refuses the CSV and names the line") {
    CHECK(refusal([&] {
            xnat_preflight(x.client, {{"project", "PROJ1"}}, rows(3));
          }) ==
          "1 row(s) name sessions that already exist in XNAT; nothing was queued. Use "
          "--skip-existing to skip them or --append to add to them:\n  " +
              exists);
  }
  SECTION("--skip-existing skips its row") {
    CHECK(without_checks(
              xnat_preflight(x.client, {{"project", "PROJ1"}, {"skip_existing", true}}, rows(3))) ==
          json{{"skip_rows", {2}}, {"warnings", {exists + "; skipped"}}});
  }
  SECTION("--append appends to it") {
    CHECK(without_checks(
              xnat_preflight(x.client, {{"project", "PROJ1"}, {"append", true}}, rows(3))) ==
          json{{"skip_rows", json::array()},
               {"warnings", {exists + "; the study will be appended to it"}}});
  }
  SECTION("through submit: the skipped row is cancelled in the store") {
    Commands c;
    c.ctx.hooks.preflight = [&](const json& args, const std::vector<p2x::store::NewItem>& items) {
      return xnat_preflight(x.client, args, items);
    };
    json args = submit_args(accession_csv(3));
    args["skip_existing"] = true;
    json r = c.ok("submit", args);
    CHECK(r.at("skipped") == 1);
    auto items = c.store.items(r.at("job"));
    CHECK(items.at(1).state == p2x::store::ItemState::Cancelled);
    json again = submit_args(accession_csv(3));
    again["allow_duplicate"] = true;  // past the duplicate check, to XNAT's refusal
    json e = error_of(c.call("submit", again));
    CHECK(e.at("message").get<std::string>().find(exists) != std::string::npos);
    CHECK(c.store.jobs().size() == 1);
  }
  SECTION("XNAT down: refused, nothing queued") {
    x.standin.stop();
    CHECK(refusal([&] {
            xnat_preflight(x.client, {{"project", "PROJ1"}}, rows(1));
          }).rfind("cannot check project PROJ1 in XNAT: ", 0) == 0);
  }
}

TEST_CASE("submit pre-flight: the project's anonymisation script", "[service][xnat]") {
  Xnat x;
  auto anon = [&](const std::string& q) { x.standin.admin("POST", "/_admin/anonymisation?" + q); };
  const json args{{"project", "EMPTY"}};
  SECTION("a typical site: the site-wide script is enabled") {
    CHECK(xnat_preflight(x.client, args, rows(1)).at("checks").at(0) ==
          "anonymisation: the site-wide script is enabled");
  }
  SECTION("the project's own script is enabled while the site's is not") {
    anon("mode=off");
    anon("project=EMPTY&mode=on");
    CHECK(xnat_preflight(x.client, args, rows(1)).at("checks").at(0) ==
          "anonymisation: project EMPTY's script is enabled");
  }
  SECTION("neither: refused with what to set in XNAT and where") {
    anon("mode=off");
    const std::string why = refusal([&] { xnat_preflight(x.client, args, rows(1)); });
    CHECK_THAT(why, Catch::StartsWith("project EMPTY has no anonymisation script enabled and "
                                      "neither has the site") &&
                        Catch::Contains("Project Settings > Anonymization Script") &&
                        Catch::Contains("Administer > Site Administration > Anonymization") &&
                        Catch::Contains("--no-anonymisation-check") &&
                        Catch::EndsWith("Nothing was queued"));
  }
  SECTION("an XNAT that does not answer the endpoints: not verified, refused") {
    anon("mode=missing");
    anon("project=EMPTY&mode=forbidden");
    const std::string why = refusal([&] { xnat_preflight(x.client, args, rows(1)); });
    CHECK_THAT(why,
               Catch::StartsWith("anonymisation script of project EMPTY not verified") &&
                   Catch::Contains("/xapi/anonymize/projects/EMPTY/enabled answered HTTP 403") &&
                   Catch::Contains("/xapi/anonymize/site/enabled answered HTTP 404"));
  }
  SECTION("the override: not asked, said so") {
    anon("mode=off");
    json waived = args;
    waived["no_anonymisation_check"] = true;
    CHECK(xnat_preflight(x.client, waived, rows(1)).at("checks").at(0) ==
          "anonymisation: not checked (--no-anonymisation-check)");
  }
  SECTION("the destination follows the project's prearchive_code") {
    x.standin.admin("POST", "/_admin/prearchive_code?project=EMPTY&code=0");
    CHECK_THAT(xnat_preflight(x.client, args, rows(1)).at("checks").at(1).get<std::string>(),
               Catch::Contains("reviews sessions in the prearchive (prearchive_code 0)"));
    CHECK_THAT(xnat_preflight(x.client, args, rows(1), false).at("checks").at(1).get<std::string>(),
               Catch::Contains("xnat.prearchive is false: into the archive"));
  }
}
