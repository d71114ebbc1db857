// intake against hostile or careless input (issue 12, items 10 and 12): formula cells warned
// about by line and column, UTF-32 told from UTF-16, huge cells cut short in messages, and
// read_csv_file refusing what is not a regular file or is too large.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include "intake/intake.hpp"
#include "support/temp_dir.hpp"

using p2x::intake::parse_csv;
using p2x::intake::Problem;
using p2x::intake::Result;
using p2x::test::TempDir;
namespace intake = p2x::intake;
using namespace std::string_literals;

namespace {

std::string dump(const std::vector<Problem>& problems) {
  std::string out;
  for (const auto& p : problems) out += "  " + intake::format(p) + "\n";
  return out;
}

// The message of what read_csv_file throws, or "<no exception>".
std::string read_error(const std::string& path, std::uint64_t max_bytes) {
  try {
    intake::read_csv_file(path, max_bytes);
  } catch (const intake::FileError& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

TEST_CASE("formula cells are warnings naming line, column and row - the CSV stays valid",
          "[intake][formula]") {
  const Result r = parse_csv(
      "Patient ID,Study Date,Accession Number,Notes\n"
      "=cmd|' /C calc'!A0,20240101,,=not read\n"
      ",,@SUM(1),\n"
      ",,+1-1,\n"
      "P4,2024-01-02,-5,\n"
      "P5,2024-01-03,ACC-5,\n");
  INFO(dump(r.problems) << dump(r.warnings));
  REQUIRE(r.ok());
  REQUIRE(r.rows.size() == 5);
  CHECK(r.rows[0].patient_id == "=cmd|' /C calc'!A0");  // kept as written: only warned about
  REQUIRE(r.warnings.size() == 4);
  const struct {
    int line, column;
    const char* heading;
    const char* text;
  } want[] = {{2, 1, "Patient ID", "row 1: '=cmd|' /C calc'!A0' starts with '='"},
              {3, 3, "Accession Number", "row 2: '@SUM(1)' starts with '@'"},
              {4, 3, "Accession Number", "row 3: '+1-1' starts with '+'"},
              {5, 3, "Accession Number", "row 4: '-5' starts with '-'"}};
  for (std::size_t i = 0; i < 4; ++i) {
    const Problem& w = r.warnings[i];
    CHECK(w.line == want[i].line);
    CHECK(w.column == want[i].column);
    CHECK(w.column_name == want[i].heading);
    CHECK(w.message.find(want[i].text) == 0);
    CHECK(w.message.find("formula") != std::string::npos);
  }
  // A cell with leading blanks is cleaned first; the warning is about what pacs2xnat keeps.
  const Result blank = parse_csv("Accession\n  =1+1\n");
  REQUIRE(blank.warnings.size() == 1);
  CHECK(blank.warnings[0].message.find("'=1+1'") != std::string::npos);
}

TEST_CASE("UTF-32 is named UTF-32, UTF-16 stays UTF-16", "[intake][encoding]") {
  const std::string csv = "Accession\nA1\n";
  auto utf32 = [&](bool le) {
    std::string out = le ? "\xFF\xFE\0\0"s : "\0\0\xFE\xFF"s;
    for (char c : csv) {
      out += le ? std::string{c, '\0', '\0', '\0'} : std::string{'\0', '\0', '\0', c};
    }
    return out;
  };
  for (bool le : {true, false}) {
    const Result r = parse_csv(utf32(le));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].message.find("UTF-32") != std::string::npos);
    CHECK(r.problems[0].message.find("UTF-16") == std::string::npos);
  }
  const Result utf16 = parse_csv(
      "\xFF\xFE"
      "A\0c\0c\0\n\0"s);
  REQUIRE(utf16.problems.size() == 1);
  CHECK(utf16.problems[0].message.find("UTF-16 encoded") != std::string::npos);
}

TEST_CASE("a 10 MB cell or heading is cut to 60 characters in every message",
          "[intake][messages]") {
  const std::string huge(10 * 1024 * 1024, 'A');
  const std::string shown = std::string(60, 'A') + "\xE2\x80\xA6(10485760 bytes)";

  const Result cell = parse_csv("Accession Number,Patient ID\n" + huge + "," + huge + "\n");
  INFO(dump(cell.problems).substr(0, 2000));
  REQUIRE(cell.problems.size() == 2);
  for (const auto& p : cell.problems) {
    CHECK(p.message.size() < 300);
    CHECK(p.message.find(shown) != std::string::npos);
  }

  // A huge heading: as the column's name in a problem and in the no-key-column list.
  const Result heading = parse_csv("Accession," + huge + "\nA1,\"x\"y\n");
  REQUIRE(heading.problems.size() == 1);
  CHECK(heading.problems[0].column_name == shown);
  const Result no_key = parse_csv(huge + "\nx\n");
  REQUIRE(no_key.problems.size() == 1);
  CHECK(no_key.problems[0].message.size() < 2000);
  CHECK(no_key.problems[0].message.find("'" + shown + "'") != std::string::npos);

  // A heading longer than 60 characters still matches its alias before it is cut.
  const Result long_alias = parse_csv("Accession" + std::string(70, '.') + "\nA1\n");
  CHECK(long_alias.ok());
}

TEST_CASE("read_csv_file reads regular files only, within a size", "[intake][file]") {
  TempDir t("p2x-intake");
  std::ofstream(t.file("ok.csv")) << "Accession\nA1\n";
  CHECK(intake::read_csv_file(t.file("ok.csv"), 100) == "Accession\nA1\n");
  CHECK(intake::read_csv_file(t.file("ok.csv"), 13) == "Accession\nA1\n");

  try {
    intake::read_csv_file(t.file("ok.csv"), 12);
    FAIL("no exception");
  } catch (const intake::FileTooLarge& e) {
    CHECK(e.size == 13);
    CHECK(e.limit == 12);
    CHECK(std::string(e.what()).find(t.file("ok.csv")) == 0);
  }

  CHECK(read_error(t.path(), 1000) == t.path() + " is a directory, not a CSV file");
  CHECK(read_error("/dev/zero", 1000) ==
        "/dev/zero is a character device (like /dev/zero or a terminal), not a CSV file");
  REQUIRE(mkfifo(t.file("fifo").c_str(), 0600) == 0);
  CHECK(read_error(t.file("fifo"), 1000) ==
        t.file("fifo") + " is a FIFO (named pipe), not a CSV file");
  CHECK(read_error(t.file("absent.csv"), 1000) ==
        "cannot read " + t.file("absent.csv") + ": No such file or directory");
}
