// parse_csv: CSV syntax, line numbers, header aliases, row kinds, problem collection, scale.
#include <catch2/catch.hpp>

#include <string>

#include "intake/intake.hpp"

using p2x::intake::parse_csv;
using p2x::intake::Problem;
using p2x::intake::Result;
using p2x::intake::RowKind;

namespace {

std::string dump(const Result& r) {
  std::string out;
  for (const auto& p : r.problems) out += "  " + p2x::intake::format(p) + "\n";
  return out;
}

bool has_problem(const Result& r, int line, int column, const std::string& text) {
  for (const Problem& p : r.problems) {
    if (p.line == line && p.column == column && p.message.find(text) != std::string::npos) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("quoted cells keep delimiters - quotes and line breaks", "[intake][csv]") {
  const Result r = parse_csv(
      "Accession,Session\n"
      "\"A,1\",\"S\"\"1\"\n"
      "A2 , \"S2\" \n");
  INFO(dump(r));
  // "A,1" is a valid accession; S"1 is not a valid label.
  REQUIRE(r.problems.size() == 1);
  CHECK(has_problem(r, 2, 2, "'\"'"));

  const Result ok = parse_csv("Accession,Notes\n\"A,1\",\"x\"\"y\nz\"\n A2 , \"q\" \n");
  INFO(dump(ok));
  REQUIRE(ok.ok());
  REQUIRE(ok.rows.size() == 2);
  CHECK(ok.rows[0].accession == "A,1");
  CHECK(ok.rows[1].accession == "A2");
  CHECK(ok.rows[1].line == 4);
}

TEST_CASE("line numbers stay physical across quoted line breaks", "[intake][csv]") {
  for (const std::string eol : {"\n", "\r\n", "\r"}) {
    const std::string csv = "Accession,Notes,Study Date" + eol + "A1,\"a" + eol + "b" + eol +
                            "c\",20240101" + eol +                  // lines 2-4
                            eol +                                   // line 5
                            "A2,\"d" + eol + "e\",20241301" + eol;  // lines 6-7
    const Result r = parse_csv(csv);
    INFO(dump(r));
    REQUIRE(r.problems.size() == 1);
    CHECK(r.problems[0].line == 7);  // the date cell sits on the row's second line
    CHECK(r.problems[0].column == 3);
    CHECK(r.problems[0].column_name == "Study Date");
  }
  const Result r = parse_csv("Accession,Notes\nA1,\"x\ny\"\nA2,\nA3,\"p\r\nq\r\nr\"\nA4,\n");
  INFO(dump(r));
  REQUIRE(r.rows.size() == 4);
  CHECK(r.rows[0].line == 2);
  CHECK(r.rows[1].line == 4);
  CHECK(r.rows[2].line == 5);
  CHECK(r.rows[3].line == 8);
  CHECK(r.rows[3].row == 4);
}

TEST_CASE("a problem inside a cell after a quoted line break is on the cell's line",
          "[intake][csv]") {
  // The date cell starts on line 3, after the Notes cell's line break.
  const Result r = parse_csv("Accession,Notes,Study Date\nA1,\"x\ny\",2024-02-30\n");
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].line == 3);
  CHECK(r.problems[0].column == 3);
}

TEST_CASE("delimiter is detected from the header", "[intake][csv]") {
  CHECK(parse_csv("Accession;Patient ID\nA1;P1\n").delimiter == ';');
  CHECK(parse_csv("Accession\tPatient ID\nA1\tP1\n").delimiter == '\t');
  CHECK(parse_csv("Accession,Patient ID\nA1,P1\n").delimiter == ',');
  // Commas inside a quoted header cell do not count; ';' separates known headings.
  const Result r = parse_csv("\"Notes, free text\";Accession Number\nx,y;A1\n");
  INFO(dump(r));
  CHECK(r.delimiter == ';');
  REQUIRE(r.ok());
  CHECK(r.rows[0].accession == "A1");
  // A ',' inside an unknown header cell must not beat the ';' between known headings.
  const Result s = parse_csv("Accession;Study Date;Notes (a, b)\nA1;20240101;x\n");
  CHECK(s.delimiter == ';');
  CHECK(s.ok());
}

TEST_CASE("headers match aliases ignoring case - spaces and punctuation", "[intake][csv]") {
  const char* accession_headers[] = {
      "Accession Number", "AccessionNumber", "Accession",     "ACC",
      "Accession_No",     "Acc No",          "accession-no.", " ACCESSION  NUMBER "};
  for (const char* h : accession_headers) {
    const Result r = parse_csv(std::string(h) + "\nX1\n");
    INFO(h << "\n" << dump(r));
    REQUIRE(r.ok());
    CHECK(r.rows[0].kind == RowKind::Accession);
    CHECK(r.rows[0].accession == "X1");
  }
  const char* patient_headers[] = {"Patient ID", "PatientID", "PID", "MRN", "patient_id"};
  const char* date_headers[] = {"Study Date", "StudyDate", "Date", "study_date"};
  for (const char* p : patient_headers) {
    for (const char* d : date_headers) {
      const Result r = parse_csv(std::string(p) + "," + d + "\nP1,2024-01-02\n");
      INFO(p << " / " << d << "\n" << dump(r));
      REQUIRE(r.ok());
      CHECK(r.rows[0].kind == RowKind::PatientDate);
      CHECK(r.rows[0].patient_id == "P1");
      CHECK(r.rows[0].study_date == "20240102");
    }
  }
  for (const char* u : {"Study Instance UID", "StudyInstanceUID", "Study UID"}) {
    const Result r = parse_csv(std::string(u) + "\n1.2.3\n");
    REQUIRE(r.ok());
    CHECK(r.rows[0].kind == RowKind::StudyUid);
    CHECK(r.rows[0].study_uid == "1.2.3");
  }
  for (const char* s : {"Subject", "Subject Label", "XNAT Subject"}) {
    const Result r = parse_csv(std::string("ACC,") + s + "\nA1,Sub_1\n");
    REQUIRE(r.ok());
    CHECK(r.rows[0].subject == "Sub_1");
  }
  for (const char* s : {"Session", "Session Label", "Experiment", "XNAT Session"}) {
    const Result r = parse_csv(std::string("ACC,") + s + "\nA1,Ses-1\n");
    REQUIRE(r.ok());
    CHECK(r.rows[0].session == "Ses-1");
  }
  // Lookalikes are not aliases: they are ignored like any unknown column.
  const Result r = parse_csv("Accession,Patient Name,Birth Date,Study Description\nA1,X,1/1/1,Y\n");
  INFO(dump(r));
  REQUIRE(r.ok());
  CHECK(r.rows[0].patient_id.empty());
  CHECK(r.rows[0].study_date.empty());
  CHECK(r.headers.size() == 4);
  CHECK(r.headers[1] == "Patient Name");
}

TEST_CASE("row kind precedence: UID - then accession - then patient+date", "[intake][csv]") {
  const Result r = parse_csv(
      "Study UID,Accession,Patient ID,Study Date\n"
      "1.2.3,A1,P1,20240101\n"
      ",A2,P2,20240102\n"
      ",,P3,20240103\n");
  INFO(dump(r));
  REQUIRE(r.ok());
  REQUIRE(r.rows.size() == 3);
  CHECK(r.rows[0].kind == RowKind::StudyUid);
  CHECK(r.rows[0].session.empty());  // generated after C-FIND
  CHECK(r.rows[0].subject == "P1");
  CHECK(r.rows[1].kind == RowKind::Accession);
  CHECK(r.rows[1].session == "A2");
  CHECK(r.rows[2].kind == RowKind::PatientDate);
  CHECK(r.rows[2].session == "P3_20240103");
  CHECK(p2x::intake::to_string(RowKind::PatientDate) == "patient_date");
}

TEST_CASE("generated labels follow the documented rule", "[intake][labels]") {
  const Result r = parse_csv(
      "Accession,Patient ID,Study Date,Subject\n"
      "ACC.1/2,P 1,,\n"          // session from accession, subject from PID
      ",P.2,2024-01-02,\n"       // session <pid>_<date>
      ",P3,03/01/2024,Sub3\n");  // session <subject>_<date>
  INFO(dump(r));
  REQUIRE(r.ok());
  CHECK(r.rows[0].session == "ACC_1_2");
  CHECK(r.rows[0].subject == "P_1");
  CHECK(r.rows[1].subject == "P_2");
  CHECK(r.rows[1].session == "P_2_20240102");
  CHECK(r.rows[2].subject == "Sub3");
  CHECK(r.rows[2].session == "Sub3_20240103");

  // No patient ID at all: subject left empty (resolved from the PACS later).
  const Result s = parse_csv("Accession\nA1\n");
  REQUIRE(s.ok());
  CHECK(s.rows[0].subject.empty());
  CHECK(s.rows[0].session == "A1");
}

TEST_CASE("generated and given session labels must not clash", "[intake][labels]") {
  // Row 3's given session equals row 2's generated one.
  const Result r = parse_csv("Accession,Session\nA_1,\nA2,a_1\n");
  INFO(dump(r));
  CHECK(has_problem(r, 2, 2, "used again on line 3"));
  CHECK(has_problem(r, 3, 2, "already used on line 2"));
  CHECK(r.rows.empty());
}

TEST_CASE("invisible and control characters are stripped", "[intake][csv]") {
  const Result r = parse_csv(
      "\xEF\xBB\xBF\f Accession\xC2\xA0Number\xE2\x80\x8B\v,\xE2\x81\xA0Patient\tID\n"
      "\xE2\x80\x8B"
      "A\xE2\x80\x8C"
      "B\xE2\x80\x8D"
      "C\xEF\xBB\xBF"
      "1\f,\xC2\xA0P1\xC2\xA0\x01\n");
  INFO(dump(r));
  REQUIRE(r.ok());
  CHECK(r.headers[0] == "Accession Number");
  CHECK(r.headers[1] == "Patient ID");
  CHECK(r.rows[0].accession == "ABC1");
  CHECK(r.rows[0].patient_id == "P1");
}

TEST_CASE("invalid UTF-8 is reported with line and column", "[intake][csv]") {
  const Result r = parse_csv("Accession,Name\nA1,ok\nA2,bad\xC3\n");
  INFO(dump(r));
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].line == 3);
  CHECK(r.problems[0].column == 2);
  CHECK(r.problems[0].column_name == "Name");
  // Overlong encoding and UTF-16 surrogates are invalid too.
  CHECK_FALSE(parse_csv("Accession\nA\xC0\xAF\n").ok());
  CHECK_FALSE(parse_csv("Accession\nA\xED\xA0\x80\n").ok());
  CHECK(parse_csv("Accession,Name\nA1,J\xC3\xBCrgen \xF0\x9F\x98\x80\n").ok());
}

TEST_CASE("blank lines are skipped and rows numbered without them", "[intake][csv]") {
  const Result r = parse_csv("\r\n\r\nAccession\r\n\r\nA1\r\n \r\n\r\nA2\r\n\r\n");
  INFO(dump(r));
  REQUIRE(r.ok());
  REQUIRE(r.rows.size() == 2);
  CHECK(r.rows[0].line == 5);
  CHECK(r.rows[0].row == 1);
  CHECK(r.rows[1].line == 8);
  CHECK(r.rows[1].row == 2);
}

TEST_CASE("unknown columns never cause problems", "[intake][csv]") {
  const Result r = parse_csv("Foo,Accession,Foo,,Bar\nx,A1,y,\"z\nw\",1 2 3 / *\n");
  INFO(dump(r));
  REQUIRE(r.ok());
  CHECK(r.rows[0].accession == "A1");
}

TEST_CASE("every problem is collected - capped with a summary", "[intake][csv]") {
  std::string csv = "Accession,Study Date\n";
  for (int i = 0; i < 1500; ++i) csv += "A" + std::to_string(i) + ",2024-02-30\n";
  const Result r = parse_csv(csv);
  REQUIRE(r.problems.size() == 1001);
  CHECK(r.problems[0].line == 2);
  CHECK(r.problems[999].line == 1001);
  CHECK(r.problems[1000].message == "... and 500 more problems");
  CHECK(r.rows.empty());
}

TEST_CASE("problems are sorted by line and column", "[intake][csv]") {
  const Result r = parse_csv("Accession,Session,Study Date\nA1,S1,x\nA2,bad label,y\nA3,S1,\n");
  INFO(dump(r));
  REQUIRE(r.problems.size() == 5);
  for (std::size_t i = 1; i < r.problems.size(); ++i) {
    const auto& a = r.problems[i - 1];
    const auto& b = r.problems[i];
    CHECK((a.line < b.line || (a.line == b.line && a.column <= b.column)));
  }
}

TEST_CASE("format() names line - column and heading", "[intake]") {
  Problem p;
  p.line = 12;
  p.column = 3;
  p.column_name = "Session";
  p.message = "bad";
  CHECK(p2x::intake::format(p) == "line 12, column 3 (Session): bad");
  p.column_name.clear();
  CHECK(p2x::intake::format(p) == "line 12, column 3: bad");
  p.column = 0;
  CHECK(p2x::intake::format(p) == "line 12: bad");
  p.line = 0;
  CHECK(p2x::intake::format(p) == "file: bad");
}

TEST_CASE("100k rows parse and validate", "[intake][scale]") {
  std::string csv = "Accession Number;Patient ID;Study Date;Modality;Notes\r\n";
  csv.reserve(100000 * 48);
  for (int i = 0; i < 100000; ++i) {
    csv += "ACC" + std::to_string(i) + ";PID" + std::to_string(i % 5000) + ";2024-0" +
           std::to_string(1 + i % 9) + "-1" + std::to_string(i % 10) + ";MR;\"note, " +
           std::to_string(i) + "\"\r\n";
  }
  const Result r = parse_csv(csv);
  INFO(dump(r));
  REQUIRE(r.ok());
  REQUIRE(r.rows.size() == 100000);
  CHECK(r.rows[99999].accession == "ACC99999");
  CHECK(r.rows[99999].line == 100001);
  CHECK(r.rows[99999].session == "ACC99999");
  CHECK(r.rows[99999].study_date == "20240119");

  // One duplicate at the very end is still found (and names the first line).
  csv += "ACC5;P;;;\r\n";
  const Result d = parse_csv(csv);
  REQUIRE(d.problems.size() == 1);
  CHECK(d.problems[0].line == 100002);
  CHECK(d.problems[0].message.find("line 7") != std::string::npos);
}
