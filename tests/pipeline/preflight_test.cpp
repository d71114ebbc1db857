// pipeline/preflight with the fake PACS and XNAT (fakes.hpp): the submit pre-flight refuses a
// project XNAT lacks, one without an anonymisation script (unless waived), an XNAT that does not
// answer, and rows naming sessions XNAT holds (unless skipped or appended to); it reports where
// sessions would go by the project's prearchive setting. The dry run lists what C-FIND finds
// per row, names rows without a match and a PACS that cannot be reached, and says whether a
// submit would pass. The same commands against real peers: tests/service/operations_test.cpp,
// tests/pipeline/sop_test.cpp, import_test.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "fakes.hpp"
#include "pipeline/preflight.hpp"
#include "support/temp_dir.hpp"

using namespace p2x;
using Catch::Contains;
using Catch::StartsWith;
using p2x::test::FakeArchive;
using p2x::test::FakePacs;

namespace {

std::vector<test::GeneratedStudy> make_studies(const std::string& dir, int n) {
  auto specs = test::uniform_corpus(n, 2, 3);
  for (auto& s : specs) s.rows = s.cols = 16;
  return test::generate(specs, dir);
}

// Two studies on the fake PACS, an XNAT project P that holds nothing yet (a typical site:
// the site-wide anonymisation script, auto-archive).
struct Rig {
  test::TempDir tmp{"p2x-preflight"};
  std::vector<test::GeneratedStudy> studies{make_studies(tmp.path() + "/pacs", 2)};
  FakePacs pacs{studies};
  FakeArchive xnat{studies};

  // Rows E1, E2 by accession (lines 2 and 3).
  std::vector<store::NewItem> items() const {
    std::vector<store::NewItem> out;
    for (int i = 0; i < 2; ++i) {
      store::NewItem it;
      it.row = i + 1;
      it.line = i + 2;
      it.accession = studies[static_cast<std::size_t>(i)].spec.accession;
      it.session = "E" + std::to_string(i + 1);
      out.push_back(it);
    }
    return out;
  }
  pipeline::DryRunRequest dry_request(const std::vector<std::string>& accessions) const {
    pipeline::DryRunRequest r;
    for (std::size_t i = 0; i < accessions.size(); ++i) {
      intake::Row row;
      row.row = static_cast<int>(i) + 1;
      row.line = static_cast<int>(i) + 2;
      row.kind = domain::RowKind::Accession;
      row.accession = accessions[i];
      r.rows.push_back(row);
    }
    r.node.name = "FAKE";
    r.node.ae_title = "FAKE";
    r.node.host = "127.0.0.1";
    r.our_ae = "P2X";
    r.project = "P";
    return r;
  }
  std::vector<std::string> both() const {
    return {studies[0].spec.accession, studies[1].spec.accession};
  }
  // The message of the pre-flight's refusal.
  std::string refusal(const pipeline::JobOptions& opt = {}) {
    try {
      pipeline::submit_preflight(xnat, "P", opt, items(), std::nullopt);
    } catch (const pipeline::PreflightRefused& e) {
      return e.what();
    }
    FAIL("the pre-flight passed");
    return {};
  }
};

}  // namespace

TEST_CASE("pre-flight: all good", "[preflight]") {
  Rig r;
  const auto pre = pipeline::submit_preflight(r.xnat, "P", {}, r.items(), std::nullopt);
  CHECK(pre.skip_rows.empty());
  CHECK(pre.warnings.empty());
  CHECK(pre.checks ==
        std::vector<std::string>{
            "anonymisation: the site-wide script is enabled",
            "project P archives automatically (prearchive_code 4): into the archive"});

  const auto dry = pipeline::dry_run(r.pacs, &r.xnat, r.dry_request(r.both()));
  CHECK(dry.ok);
  CHECK(dry.found == 2);
  CHECK(dry.instances == 12);
  REQUIRE(dry.rows.size() == 2);
  REQUIRE(dry.rows[1].found);
  CHECK(dry.rows[1].found->study.study_uid == r.studies[1].study_uid);
  CHECK(dry.rows[1].found->series.size() == 2);
  REQUIRE(dry.project);
  CHECK(dry.project->ok);
  CHECK(dry.text.rfind("XNAT project P: anonymisation: the site-wide script is enabled\n"
                       "XNAT destination: project P archives automatically",
                       0) == 0);
  CHECK_THAT(dry.text, Contains("row 2 (line 3, accession " + r.studies[1].spec.accession +
                                "): study " + r.studies[1].study_uid));
  CHECK_THAT(dry.text, Contains("2 of 2 rows found, 12 instances would be retrieved; nothing "
                                "was queued"));
  CHECK(r.pacs.opens == 1);  // every row's C-FIND on one association
  CHECK(r.pacs.fetches == 0);
}

TEST_CASE("pre-flight: a project XNAT does not have", "[preflight]") {
  Rig r;
  r.xnat.missing_projects = {"P"};
  CHECK_THAT(r.refusal(), StartsWith("project P does not exist in XNAT") &&
                              Contains("Unassigned prearchive") && Contains("nothing was queued"));
  const auto dry = pipeline::dry_run(r.pacs, &r.xnat, r.dry_request(r.both()));
  CHECK_FALSE(dry.ok);
  CHECK(dry.found == 2);  // the PACS side is still reported
  REQUIRE(dry.project);
  CHECK_FALSE(dry.project->report);
  CHECK(dry.project->text == "project P does not exist in XNAT (or this account cannot see it)");
}

TEST_CASE("pre-flight: the project's anonymisation script", "[preflight]") {
  Rig r;
  r.xnat.anonymisation_answer = {xnat::Answer::No, xnat::Answer::No, {}, {}};
  SECTION("neither the project's nor the site's: refused, saying what to set") {
    CHECK_THAT(r.refusal(), StartsWith("project P has no anonymisation script enabled and "
                                       "neither has the site") &&
                                Contains(". Nothing was queued"));
    const auto dry = pipeline::dry_run(r.pacs, &r.xnat, r.dry_request(r.both()));
    CHECK_FALSE(dry.ok);
    CHECK(dry.found == 2);
    CHECK_THAT(dry.text, StartsWith("XNAT project P: REFUSED: project P has no anonymisation"));
  }
  SECTION("an XNAT that does not say: not verified, refused") {
    r.xnat.anonymisation_answer = {xnat::Answer::Unanswered, xnat::Answer::Unanswered, "HTTP 404",
                                   "HTTP 404"};
    CHECK_THAT(r.refusal(), StartsWith("anonymisation script of project P not verified"));
  }
  SECTION("the project's own script is enough") {
    r.xnat.anonymisation_answer.project = xnat::Answer::Yes;
    const auto pre = pipeline::submit_preflight(r.xnat, "P", {}, r.items(), std::nullopt);
    CHECK(pre.checks.at(0) == "anonymisation: project P's script is enabled");
  }
  SECTION("the override: not asked, and said so") {
    pipeline::JobOptions opt;
    opt.no_anonymisation_check = true;
    const auto pre = pipeline::submit_preflight(r.xnat, "P", opt, r.items(), std::nullopt);
    CHECK(pre.checks.at(0) == "anonymisation: not checked (--no-anonymisation-check)");
  }
}

TEST_CASE("pre-flight: where sessions go follows the prearchive setting", "[preflight]") {
  Rig r;
  SECTION("the project reviews sessions in the prearchive") {
    r.xnat.prearchive_answer = 0;
    const auto pre = pipeline::submit_preflight(r.xnat, "P", {}, r.items(), std::nullopt);
    CHECK(pre.checks.at(1) ==
          "project P reviews sessions in the prearchive (prearchive_code 0): "
          "into the prearchive, awaiting review");
  }
  SECTION("XNAT does not give the setting: the prearchive, to be safe") {
    r.xnat.prearchive_answer = std::nullopt;
    const auto report = pipeline::report_project(r.xnat, "P", false, std::nullopt);
    CHECK(report.destination.prearchive);
    CHECK_THAT(report.destination.why,
               Contains("(HTTP 404 from FAKE XNAT)") && Contains("to be safe"));
  }
  SECTION("xnat.prearchive forces it") {
    r.xnat.prearchive_answer = 0;
    const auto pre = pipeline::submit_preflight(r.xnat, "P", {}, r.items(), false);
    CHECK(pre.checks.at(1) == "xnat.prearchive is false: into the archive");
  }
}

TEST_CASE("pre-flight: sessions XNAT already holds", "[preflight]") {
  Rig r;
  r.xnat.existing_sessions = {{"E2", "S2"}};
  SECTION("refused, naming the line") {
    CHECK(r.refusal() ==
          "1 row(s) name sessions that already exist in XNAT; nothing was queued. Use "
          "--skip-existing to skip them or --append to add to them:\n"
          "  line 3: session E2 already exists in project P (subject S2)");
  }
  SECTION("--skip-existing skips the row") {
    pipeline::JobOptions opt;
    opt.skip_existing = true;
    const auto pre = pipeline::submit_preflight(r.xnat, "P", opt, r.items(), std::nullopt);
    CHECK(pre.skip_rows == std::vector<int>{2});
    CHECK(pre.warnings ==
          std::vector<std::string>{
              "line 3: session E2 already exists in project P (subject S2); skipped"});
  }
  SECTION("--append appends to it") {
    pipeline::JobOptions opt;
    opt.append = true;
    const auto pre = pipeline::submit_preflight(r.xnat, "P", opt, r.items(), std::nullopt);
    CHECK(pre.skip_rows.empty());
    CHECK_THAT(pre.warnings.at(0), Contains("the study will be appended to it"));
  }
}

TEST_CASE("pre-flight: XNAT does not answer", "[preflight]") {
  Rig r;
  r.xnat.settings_errors = 1;
  CHECK_THAT(r.refusal(), StartsWith("cannot check project P in XNAT: connection refused") &&
                              Contains("nothing was queued"));
  const auto dry_ok = pipeline::dry_run(r.pacs, &r.xnat, r.dry_request(r.both()));
  CHECK(dry_ok.ok);
  r.xnat.settings_errors = 1;
  const auto dry = pipeline::dry_run(r.pacs, &r.xnat, r.dry_request(r.both()));
  CHECK_FALSE(dry.ok);
  REQUIRE(dry.project);
  CHECK_THAT(dry.project->text, StartsWith("cannot check project P in XNAT: connection refused"));
}

TEST_CASE("dry run: a row without a match and a PACS that cannot be reached", "[preflight]") {
  Rig r;
  SECTION("the row without a match is named with the reason; the others are found") {
    const auto dry =
        pipeline::dry_run(r.pacs, &r.xnat, r.dry_request({r.studies[0].spec.accession, "NOSUCH"}));
    CHECK_FALSE(dry.ok);
    CHECK(dry.found == 1);
    CHECK(dry.instances == 6);
    REQUIRE(dry.rows.size() == 2);
    CHECK(dry.rows[0].found);
    CHECK_FALSE(dry.rows[1].found);
    CHECK_FALSE(dry.rows[1].reason.empty());
    CHECK_THAT(dry.text, Contains("row 2 (line 3, accession NOSUCH): NOT RETRIEVABLE: " +
                                  dry.rows[1].reason));
    CHECK_THAT(dry.text, Contains("1 of 2 rows found, 6 instances would be retrieved"));
  }
  SECTION("the PACS is down: every row says why, nothing is found") {
    r.pacs.down_for = 1;
    const auto dry = pipeline::dry_run(r.pacs, &r.xnat, r.dry_request(r.both()));
    CHECK_FALSE(dry.ok);
    CHECK(dry.found == 0);
    CHECK(dry.instances == 0);
    for (const auto& row : dry.rows) {
      CHECK_FALSE(row.found);
      CHECK_THAT(row.reason, Contains("connection refused by FAKE"));
    }
    CHECK(dry.project->ok);  // XNAT was still asked
  }
  SECTION("without XNAT: only the PACS side") {
    const auto dry = pipeline::dry_run(r.pacs, nullptr, r.dry_request(r.both()));
    CHECK(dry.ok);
    CHECK_FALSE(dry.project);
    CHECK(dry.text.rfind("row 1 (line 2, ", 0) == 0);
  }
}
