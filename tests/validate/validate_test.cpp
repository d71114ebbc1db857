// lib/validate: is a retrieved study in the spool complete and sane? Real Part 10 files from the
// test-data generator, copied flat into a spool directory the way the SCP leaves them, then
// damaged in the ways a retrieval can go wrong.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "support/temp_dir.hpp"
#include "support/testdata.hpp"
#include "validate/validate.hpp"

namespace fs = std::filesystem;
using namespace p2x::test;
using p2x::validate::check_study;
using p2x::validate::count_by_series;
using p2x::validate::ExpectedSeries;
using p2x::validate::Report;

namespace {

// One generated study (`series` x `instances`) and a flat spool directory holding its files as
// <SOP Instance UID>.dcm.
class Spool {
 public:
  explicit Spool(int series = 2, int instances = 3, unsigned seed = 1)
      : spool_(dir_.file("spool")) {
    fs::create_directories(spool_);
    StudySpec spec = uniform_corpus(1, series, instances).at(0);
    study_ = generate({spec}, dir_.file("generated"), seed).at(0);
    for (const auto& s : study_.series) {
      for (const auto& f : s.files) fs::copy_file(f.path, in_spool(f));
    }
  }

  const std::string& dir() const { return spool_; }
  const GeneratedStudy& study() const { return study_; }
  const std::string& uid() const { return study_.study_uid; }
  std::string in_spool(const GeneratedFile& f) const { return spool_ + "/" + f.sop_uid + ".dcm"; }
  std::string file(int series, int instance) const {
    return in_spool(study_.series.at(series).files.at(instance));
  }
  // What the PACS's C-FIND reported: every series with its instance count.
  std::vector<ExpectedSeries> expected() const {
    std::vector<ExpectedSeries> out;
    for (const auto& s : study_.series) {
      out.push_back({s.uid, s.description, static_cast<std::int64_t>(s.files.size())});
    }
    return out;
  }
  std::int64_t spool_bytes() const {
    std::int64_t n = 0;
    for (const auto& e : fs::directory_iterator(spool_)) {
      if (e.path().extension() == ".dcm") n += static_cast<std::int64_t>(e.file_size());
    }
    return n;
  }
  Report check() const { return check_study(spool_, uid(), expected()); }

 private:
  TempDir dir_{"p2x-validate"};
  std::string spool_;
  GeneratedStudy study_;
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// A copy of the file's first `keep` bytes, written over it.
void truncate_to(const std::string& path, std::uintmax_t keep) {
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  REQUIRE(keep < bytes.size());
  write_bytes(path, bytes.substr(0, keep));
}

}  // namespace

TEST_CASE("validate: a complete study is complete", "[validate]") {
  Spool s(2, 3);
  Report r = s.check();
  CHECK(r.complete);
  CHECK(r.files == 6);
  CHECK(r.bytes == s.spool_bytes());
  CHECK(r.missing.empty());
  CHECK(r.problems.empty());
  CHECK(r.bad_files.empty());
  CHECK(r.sop_uids.size() == 6);
  REQUIRE(r.series.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(r.series[i].series_uid == s.study().series[i].uid);
    CHECK(r.series[i].description == s.study().series[i].description);
    CHECK(r.series[i].expected == 3);
    CHECK(r.series[i].received == 3);
  }
  CHECK(r.summary() == "complete: 2 series, 6 instances");
  CHECK(count_by_series(s.dir()) == r.received_by_series);
}

TEST_CASE("validate: missing instances in one series are named with their counts", "[validate]") {
  Spool s(2, 3);
  fs::remove(s.file(1, 0));
  fs::remove(s.file(1, 2));
  Report r = s.check();
  CHECK_FALSE(r.complete);
  CHECK(r.files == 4);
  CHECK(r.problems.empty());
  CHECK(r.bad_files.empty());
  REQUIRE(r.missing.size() == 1);
  const auto& series = s.study().series[1];
  CHECK(r.missing[0].series_uid == series.uid);
  CHECK(r.missing[0].expected == 3);
  CHECK(r.missing[0].received == 1);
  CHECK(r.series.at(0).received == 3);
  CHECK(r.series.at(1).received == 1);
  CHECK(r.summary() == "series " + series.uid + " (" + series.description + "): 1 of 3 instances");
}

TEST_CASE("validate: a series the PACS did not report is foreign, never counted", "[validate]") {
  Spool s(3, 2);
  std::vector<ExpectedSeries> expected = s.expected();
  const std::string extra = expected.back().series_uid;
  expected.pop_back();
  Report r = check_study(s.dir(), s.uid(), expected);
  // The study is complete on the series the PACS reported; the extra series' files are listed
  // to be quarantined, and counted nowhere but per series.
  CHECK(r.complete);
  CHECK(r.files == 4);
  std::int64_t expected_bytes = 0;
  for (int series = 0; series < 2; ++series)
    for (int i = 0; i < 2; ++i)
      expected_bytes += static_cast<std::int64_t>(fs::file_size(s.file(series, i)));
  CHECK(r.bytes == expected_bytes);
  CHECK(r.sop_uids.size() == 4);
  CHECK(r.series.size() == 2);
  CHECK(r.received_by_series.at(extra) == 2);
  CHECK(r.bad_files.empty());
  CHECK(r.problems.empty());
  REQUIRE(r.foreign.size() == 2);
  std::set<std::string> paths;
  for (const auto& f : r.foreign) {
    paths.insert(f.path);
    CHECK(f.reason == "series " + extra + " was not reported by the PACS (C-FIND)");
  }
  CHECK(paths == std::set<std::string>{s.file(2, 0), s.file(2, 1)});
  CHECK(r.summary() == "complete: 2 series, 4 instances");
}

TEST_CASE("validate: with no series reported nothing is called foreign", "[validate]") {
  Spool s(1, 2);
  Report r = check_study(s.dir(), s.uid(), {});
  CHECK(r.foreign.empty());
  CHECK_FALSE(r.complete);
}

TEST_CASE("validate: a file of another study is foreign, not part of the study", "[validate]") {
  Spool s(1, 3, 1);
  Spool other(1, 1, 2);
  REQUIRE(other.uid() != s.uid());
  const std::string stray = s.dir() + "/stray.dcm";
  fs::copy_file(other.file(0, 0), stray);
  // Also when its series UID is one the PACS reported for this study.
  std::vector<ExpectedSeries> expected = s.expected();
  expected.push_back({other.study().series[0].uid, "", 0});
  Report r = check_study(s.dir(), s.uid(), expected);
  CHECK(r.complete);
  CHECK(r.files == 3);
  CHECK(r.missing.empty());
  CHECK(r.bad_files.empty());
  CHECK(r.problems.empty());
  REQUIRE(r.foreign.size() == 1);
  CHECK(r.foreign[0].path == stray);
  CHECK(r.foreign[0].reason == "of study " + other.uid() + ", not the study retrieved");
  CHECK(r.sop_uids.count(other.study().series[0].files[0].sop_uid) == 0);
  CHECK(r.received_by_series.count(other.study().series[0].uid) == 0);
}

TEST_CASE("validate: unreadable files are bad files and their series is short", "[validate]") {
  Spool s(2, 3);
  const std::string damage = GENERATE(as<std::string>{}, "header", "half", "empty", "text");
  const std::string damaged = s.file(0, 1);
  const auto size = fs::file_size(damaged);
  if (damage == "header") truncate_to(damaged, 200);     // cut inside the meta header
  if (damage == "half") truncate_to(damaged, size / 2);  // cut inside the pixel data
  if (damage == "empty") write_bytes(damaged, "");
  if (damage == "text") write_bytes(damaged, "this is not a DICOM file\n");
  INFO(damage);
  Report r = s.check();
  CHECK_FALSE(r.complete);
  CHECK(r.files == 5);
  CHECK(r.bad_files == std::vector<std::string>{damaged});
  REQUIRE(r.problems.size() == 1);
  const std::string name = fs::path(damaged).filename().string();
  CHECK(r.problems[0].rfind(name + " does not parse as DICOM: ", 0) == 0);
  REQUIRE(r.missing.size() == 1);
  CHECK(r.missing[0].series_uid == s.study().series[0].uid);
  CHECK(r.missing[0].received == 2);
  const std::string summary = r.summary();
  CHECK(summary.find(": 2 of 3 instances; " + name + " does not parse as DICOM") !=
        std::string::npos);
  CHECK(count_by_series(s.dir()).at(s.study().series[0].uid) == 2);
}

TEST_CASE("validate: only *.dcm files are examined", "[validate]") {
  Spool s(1, 2);
  write_bytes(s.dir() + "/notes.txt", "not DICOM, not named .dcm\n");
  fs::create_directories(s.dir() + "/sub.dcm");
  fs::copy_file(s.file(0, 0), s.dir() + "/copy.dcm.part");
  Report r = s.check();
  CHECK(r.complete);
  CHECK(r.files == 2);
  CHECK(r.bad_files.empty());
}

TEST_CASE("validate: the same SOP instance twice is one bad file", "[validate]") {
  Spool s(1, 2);
  const std::string twin = s.dir() + "/twin.dcm";
  fs::copy_file(s.file(0, 0), twin);
  Report r = s.check();
  CHECK_FALSE(r.complete);
  CHECK(r.files == 2);
  REQUIRE(r.bad_files.size() == 1);
  CHECK((r.bad_files[0] == twin || r.bad_files[0] == s.file(0, 0)));
  const std::string sop = s.study().series[0].files[0].sop_uid;
  CHECK(r.problems == std::vector<std::string>{"SOP instance " + sop + " is present twice"});
  CHECK(r.missing.empty());
}

TEST_CASE("validate: series with zero expected instances", "[validate]") {
  Spool s(1, 2);
  std::vector<ExpectedSeries> expected = s.expected();

  SECTION("an empty series the PACS reported does not hold the study back") {
    expected.push_back({"1.2.3.4.5", "empty", 0});
    Report r = check_study(s.dir(), s.uid(), expected);
    CHECK(r.complete);
    REQUIRE(r.series.size() == 2);
    CHECK(r.series[1].received == 0);
    CHECK(r.summary() == "complete: 2 series, 2 instances");
  }
  SECTION("instances in a series reported as empty are more than expected") {
    expected[0].expected = 0;
    Report r = check_study(s.dir(), s.uid(), expected);
    CHECK_FALSE(r.complete);
    CHECK(r.missing.empty());
    CHECK(r.problems == std::vector<std::string>{"series " + expected[0].series_uid +
                                                 " has 2 instances, more than the 0 the PACS "
                                                 "reported"});
  }
  SECTION("no series at all is never complete") {
    Report r = check_study(s.dir(), s.uid(), {});
    CHECK_FALSE(r.complete);
    CHECK(r.files == 2);
    CHECK(r.summary() == "the PACS reported no series for this study");
  }
}

TEST_CASE("validate: a missing spool directory is an empty, incomplete study", "[validate]") {
  Spool s(1, 2);
  Report r = check_study(s.dir() + "/absent", s.uid(), s.expected());
  CHECK_FALSE(r.complete);
  CHECK(r.files == 0);
  REQUIRE(r.missing.size() == 1);
  CHECK(r.missing[0].received == 0);
  CHECK(r.bad_files.empty());
}
