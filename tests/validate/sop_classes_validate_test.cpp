// lib/validate with the SOP classes real studies carry: every object of the generator's SOP class
// corpus (reports and key objects without pixel data, a PDF, RT objects, multi-frame Enhanced MR
// and RT Dose, a private class, a secondary capture inside the CT series) is a valid member of
// its series; the study is complete with exact per-series counts. (validate.cpp needed no change:
// it reads UIDs, never pixel data or the SOP class.)
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "support/temp_dir.hpp"
#include "support/testdata.hpp"
#include "validate/validate.hpp"

namespace fs = std::filesystem;
using namespace p2x::test;

TEST_CASE("validate: every SOP class of real studies is a valid member of its series",
          "[validate][sop]") {
  TempDir tmp("p2x-validate-sop");
  const auto studies = generate(sop_class_corpus("VAL"), tmp.file("generated"));
  for (const auto& study : studies) {
    INFO(study.spec.accession);
    const std::string spool = tmp.file("spool-" + study.spec.accession);
    fs::create_directories(spool);
    std::vector<p2x::validate::ExpectedSeries> expected;
    std::map<std::string, std::int64_t> want;
    for (const auto& se : study.series) {
      for (const auto& f : se.files) fs::copy_file(f.path, spool + "/" + f.sop_uid + ".dcm");
      expected.push_back({se.uid, se.description, static_cast<std::int64_t>(se.files.size())});
      want[se.uid] = static_cast<std::int64_t>(se.files.size());
    }
    const auto r = p2x::validate::check_study(spool, study.study_uid, expected);
    INFO(r.summary());
    CHECK(r.complete);
    CHECK(r.problems.empty());
    CHECK(r.bad_files.empty());
    CHECK(r.foreign.empty());
    CHECK(r.files == study.instance_count());
    CHECK(r.received_by_series == want);
    CHECK(p2x::validate::count_by_series(spool) == want);
  }
}
