// fuzz_csv: intake::parse_csv, the function `pacs2xnat check` and `submit` (and the daemon, on
// a submit) run on a CSV's bytes. Besides crashes, sanitizer reports and hangs it checks what
// lib/intake/intake.hpp promises of the result: rows only without problems, problems sorted and
// capped, and every accepted row a usable study key with labels XNAT accepts.
#include "expect.hpp"
#include "intake/intake.hpp"
#include "text/text.hpp"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace {

using p2x::intake::Problem;
using p2x::intake::Result;
using p2x::intake::Row;
using p2x::intake::RowKind;

bool is_date(std::string_view s) {
  if (s.size() != 8) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Characters (UTF-8 code points; DICOM's SH/LO limits count characters), or npos when `s` is not
// valid UTF-8 (rows hold only valid UTF-8).
std::size_t characters(std::string_view s) {
  std::size_t count = 0;
  for (std::size_t at = 0; at < s.size(); ++count) {
    char32_t cp = 0;
    const std::size_t length = p2x::text::decode_utf8(s, at, cp);
    if (length == 0) return std::string_view::npos;
    at += length;
  }
  return count;
}

// A usable C-FIND key: 1..max characters, no wildcard or backslash.
bool is_key(std::string_view s, std::size_t max) {
  return !s.empty() && characters(s) <= max && s.find_first_of("*?\\") == std::string_view::npos;
}

std::string describe(const Row& row) {
  return "row " + std::to_string(row.row) + " (line " + std::to_string(row.line) + ") kind " +
         std::string(p2x::intake::to_string(row.kind)) + " acc='" + row.accession + "' pid='" +
         row.patient_id + "' date='" + row.study_date + "' uid='" + row.study_uid + "' subject='" +
         row.subject + "' session='" + row.session + "'";
}

void check_row(const Row& row) {
  using p2x::text::is_valid_label;
  P2X_FUZZ_EXPECT(row.line >= 1 && row.row >= 1, describe(row));
  P2X_FUZZ_EXPECT(row.study_date.empty() || is_date(row.study_date), describe(row));
  P2X_FUZZ_EXPECT(row.subject.empty() || is_valid_label(row.subject), describe(row));
  P2X_FUZZ_EXPECT(row.session.empty() || is_valid_label(row.session), describe(row));
  switch (row.kind) {
    case RowKind::StudyUid:
      P2X_FUZZ_EXPECT(p2x::text::is_valid_uid(row.study_uid), describe(row));
      break;
    case RowKind::Accession:
      P2X_FUZZ_EXPECT(is_key(row.accession, 16), describe(row));
      P2X_FUZZ_EXPECT(!row.session.empty(), describe(row));
      break;
    case RowKind::PatientDate:
      P2X_FUZZ_EXPECT(is_key(row.patient_id, 64) && is_date(row.study_date), describe(row));
      P2X_FUZZ_EXPECT(!row.session.empty(), describe(row));
      break;
  }
}

void check_problems(const Result& result) {
  const auto& problems = result.problems;
  P2X_FUZZ_EXPECT(problems.size() <= 1001, std::to_string(problems.size()) + " problems");
  const std::size_t sorted = problems.size() > 1000 ? 1000 : problems.size();
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const Problem& p = problems[i];
    const std::string text = p2x::intake::format(p);
    P2X_FUZZ_EXPECT(!p.message.empty() && p.line >= 0 && p.column >= 0, text);
    if (i > 0 && i < sorted) {
      const Problem& q = problems[i - 1];
      P2X_FUZZ_EXPECT(q.line < p.line || (q.line == p.line && q.column <= p.column),
                      p2x::intake::format(q) + " before " + text);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const Result result = p2x::intake::parse_csv(bytes);
  P2X_FUZZ_EXPECT(result.delimiter == ',' || result.delimiter == ';' || result.delimiter == '\t',
                  "delimiter " + std::to_string(result.delimiter));
  check_problems(result);
  if (!result.ok()) {
    P2X_FUZZ_EXPECT(result.rows.empty(), "rows kept beside problems");
    return 0;
  }
  P2X_FUZZ_EXPECT(!result.rows.empty(), "accepted without a row");
  std::set<std::string> sessions;
  int previous_line = 0;
  for (const Row& row : result.rows) {
    check_row(row);
    P2X_FUZZ_EXPECT(row.line > previous_line, describe(row));
    previous_line = row.line;
    if (!row.session.empty()) {
      P2X_FUZZ_EXPECT(sessions.insert(p2x::text::to_lower(row.session)).second,
                      "session used twice: " + describe(row));
    }
  }
  return 0;
}
