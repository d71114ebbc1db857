// Value rules: dates, UIDs, modality, keys, labels and sanitize_label.
#include <catch2/catch.hpp>

#include <string>

#include "intake/intake.hpp"

using p2x::intake::parse_csv;
using p2x::intake::Result;

namespace {

// Study date of a one-row accession CSV, or "!" + message when rejected.
std::string date_of(const std::string& text) {
  const Result r = parse_csv("Accession,Study Date\nA1,\"" + text + "\"\n");
  if (!r.ok()) return "!" + r.problems.at(0).message;
  return r.rows.at(0).study_date;
}

std::string problem_of(const std::string& header, const std::string& value) {
  const Result r = parse_csv("Accession," + header + "\nA1,\"" + value + "\"\n");
  return r.ok() ? std::string() : r.problems.at(0).message;
}

}  // namespace

TEST_CASE("study dates are normalised to YYYYMMDD", "[intake][dates]") {
  CHECK(date_of("20240305") == "20240305");
  CHECK(date_of("2024-03-05") == "20240305");
  CHECK(date_of("2024-3-5") == "20240305");
  CHECK(date_of("2024/03/05") == "20240305");
  CHECK(date_of("05/03/2024") == "20240305");  // DD/MM/YYYY, not US order
  CHECK(date_of("5/3/2024") == "20240305");
  CHECK(date_of("05.03.2024") == "20240305");
  CHECK(date_of("05-03-2024") == "20240305");
  CHECK(date_of("2024-03-05 00:00") == "20240305");
  CHECK(date_of("05/03/2024 00:00:00") == "20240305");
  CHECK(date_of("2024-03-05T13:45:10") == "20240305");
  CHECK(date_of("29/02/2024") == "20240229");
  CHECK(date_of("2000-02-29") == "20000229");
}

TEST_CASE("impossible or unparseable dates are problems", "[intake][dates]") {
  CHECK(date_of("1900-02-29").find("February 1900 has 28 days") != std::string::npos);
  CHECK(date_of("2023-02-29").find("February 2023 has 28 days") != std::string::npos);
  CHECK(date_of("2024-04-31").find("April 2024 has 30 days") != std::string::npos);
  CHECK(date_of("12/25/2024").find("no month 25") != std::string::npos);
  CHECK(date_of("12/25/2024").find("DD/MM/YYYY") != std::string::npos);
  CHECK(date_of("2024-00-10").find("no month 0") != std::string::npos);
  CHECK(date_of("2024-01-00").find("January 2024 has 31 days") != std::string::npos);
  CHECK(date_of("05/03/24").find("two-digit year") != std::string::npos);
  for (const char* bad : {"2024", "202403051", "2024-03", "2024-03-05-01", "5 March 2024",
                          "2024-03-05 7pm", "2024--03", "2024/03-05", "+2024-03-05"}) {
    INFO(bad);
    CHECK(date_of(bad).find("not a date in a known format") != std::string::npos);
  }
  CHECK(date_of("1850-01-01").find("year 1850") != std::string::npos);
}

TEST_CASE("Study Instance UID syntax", "[intake][uid]") {
  const auto uid_problem = [](const std::string& uid) {
    const Result r = parse_csv("Study Instance UID\n" + uid + "\n");
    return r.ok() ? std::string() : r.problems.at(0).message;
  };
  CHECK(uid_problem("1.2.840.10008.1.2").empty());
  CHECK(uid_problem("0.0.1").empty());
  CHECK(uid_problem("1.2.0").empty());
  CHECK(uid_problem(std::string(64, '1')).empty());
  CHECK(uid_problem(std::string(65, '1')).find("at most 64") != std::string::npos);
  CHECK(uid_problem("1.02").empty());  // leading zeros: accepted on purpose (text/text.hpp)
  CHECK(uid_problem("1.2.").find("empty component") != std::string::npos);
  CHECK(uid_problem("1.2.3a").find("contains 'a'") != std::string::npos);
  CHECK(uid_problem("1.2 .3").find("contains ' '") != std::string::npos);
}

TEST_CASE("modality is letters and digits - upper-cased", "[intake][modality]") {
  const Result r = parse_csv("Accession,Modality\nA1,mr\nA2,PT\\ct\n");
  REQUIRE(r.ok());
  CHECK(r.rows[0].modality == "MR");
  CHECK(r.rows[1].modality == "PT\\CT");
  CHECK(problem_of("Modality", "M_R").find("contains '_'") != std::string::npos);
  CHECK(problem_of("Modality", std::string(17, 'X')).find("1-16") != std::string::npos);
  CHECK(problem_of("Modality", std::string(16, 'X')).empty());
}

TEST_CASE("accession and patient ID must not be wildcards or lists", "[intake][keys]") {
  CHECK(problem_of("Patient ID", "P*").find("wildcard '*'") != std::string::npos);
  CHECK(problem_of("Patient ID", "P?").find("wildcard '?'") != std::string::npos);
  CHECK(problem_of("Patient ID", std::string(65, 'p')).find("at most 64") != std::string::npos);
  CHECK(problem_of("Patient ID", std::string(64, 'p')).empty());
  CHECK(problem_of("Patient ID", "1.23457E+11").find("scientific notation") != std::string::npos);
  CHECK(problem_of("Patient ID", "4E+12").find("scientific notation") != std::string::npos);
  CHECK(problem_of("Patient ID", "12E3A").empty());
  CHECK(problem_of("Patient ID", "12E3").empty());
  CHECK(problem_of("Patient ID", "E12").empty());
  const Result r = parse_csv("Accession\n" + std::string(17, '1') + "\n");
  REQUIRE_FALSE(r.ok());
  CHECK(r.problems[0].message.find("at most 16") != std::string::npos);
}

TEST_CASE("labels follow the XNAT charset", "[intake][labels]") {
  // The rule itself (text::is_valid_label) is tested in tests/text; here, its messages.
  CHECK(problem_of("Session", "a.b c").find("'.', ' ' (space)") != std::string::npos);
  CHECK(problem_of("Subject", "x+y+z").find("contains '+';") != std::string::npos);
  CHECK(problem_of("Session", std::string(65, 's')).find("65 characters") != std::string::npos);
  CHECK(problem_of("Session", std::string(64, 's')).empty());
}

TEST_CASE("generated labels replace each foreign character by one '_'", "[intake][labels]") {
  const Result r = parse_csv(
      "Accession,Patient ID\n"
      "A.1,J\xC3\xBCrgen 7\n");
  REQUIRE(r.ok());
  CHECK(r.rows.at(0).session == "A_1");
  CHECK(r.rows.at(0).subject == "J_rgen_7");
}
