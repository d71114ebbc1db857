// intake: study-list CSV -> validated rows or a complete list of problems.
#include "intake/intake.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>

#include "intake/csv_reader.hpp"
#include "intake/fields.hpp"
#include "intake/text.hpp"
#include "intake/validator.hpp"
#include "text/text.hpp"

namespace p2x::intake {

namespace {

using detail::CleanRecord;
using detail::Field;

constexpr std::size_t kMaxProblems = 1000;

constexpr std::array<char, 3> kDelimiters{',', ';', '\t'};

std::string hex_byte(unsigned char b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("0x") + kHex[b >> 4] + kHex[b & 0xF];
}

// Cleans every cell; invalid UTF-8 is reported (once per cell) at its physical line.
void clean_record(const detail::Record& rec, CleanRecord& out, std::vector<Problem>* problems,
                  const std::vector<std::string>* headers) {
  out.text.clear();
  out.spans.clear();
  out.bad_utf8 = false;
  for (std::size_t i = 0; i < rec.cells.size(); ++i) {
    const auto& cell = rec.cells[i];
    const std::size_t begin = out.text.size();
    const std::string_view raw = rec.raw(cell);
    const auto info = detail::clean_append(raw, out.text);
    out.spans.emplace_back(begin, out.text.size());
    if (info.bad_utf8 != detail::CleanInfo::npos) {
      out.bad_utf8 = true;
      if (problems != nullptr) {
        Problem p;
        p.line = cell.line + detail::count_line_breaks(raw, info.bad_utf8);
        p.column = static_cast<int>(i) + 1;
        if (headers != nullptr && i < headers->size()) p.column_name = (*headers)[i];
        p.message = "invalid UTF-8 (byte " + hex_byte(info.bad_byte) +
                    "); save the file as 'CSV UTF-8' (in Excel: Save As > CSV UTF-8)";
        problems->push_back(std::move(p));
      }
    }
  }
}

// Number of cells of the first non-blank record that name a known column, and cell count.
std::pair<int, int> score_delimiter(std::string_view bytes, char delim) {
  detail::CsvReader reader(bytes, delim);
  detail::Record rec;
  CleanRecord clean;
  std::vector<detail::SyntaxError> ignored;
  while (reader.next(rec, ignored)) {
    clean_record(rec, clean, nullptr, nullptr);
    if (clean.blank()) continue;
    int known = 0;
    for (std::size_t i = 0; i < clean.spans.size(); ++i) {
      if (detail::match_header(clean.cell(i)) != Field::None) ++known;
    }
    return {known, static_cast<int>(rec.cells.size())};
  }
  return {0, 0};
}

char detect_delimiter(std::string_view bytes) {
  char best = ',';
  std::pair<int, int> best_score{0, 1};
  for (char d : kDelimiters) {
    const auto score = score_delimiter(bytes, d);
    if (score > best_score) {
      best = d;
      best_score = score;
    }
  }
  return best;
}

void add_file_problem(std::vector<Problem>& problems, std::string message) {
  Problem p;
  p.message = std::move(message);
  problems.push_back(std::move(p));
}

// Rejects inputs that are clearly not a UTF-8 text CSV. Returns true if it added a problem.
bool reject_non_csv(std::string_view bytes, std::vector<Problem>& problems) {
  // UTF-32 LE's BOM (FF FE 00 00) begins with UTF-16 LE's (FF FE): test it first.
  const auto starts = [&](std::string_view bom) { return bytes.substr(0, bom.size()) == bom; };
  constexpr std::string_view kUtf32Le("\xFF\xFE\0\0", 4);
  constexpr std::string_view kUtf32Be("\0\0\xFE\xFF", 4);
  if (starts(kUtf32Le) || starts(kUtf32Be)) {
    add_file_problem(problems,
                     "the file is UTF-32 encoded; save it as 'CSV UTF-8' (comma delimited)");
    return true;
  }
  if (starts("\xFF\xFE") || starts("\xFE\xFF")) {
    add_file_problem(problems,
                     "the file is UTF-16 encoded; save it as 'CSV UTF-8' (comma delimited)");
    return true;
  }
  if (bytes.size() >= 4 && bytes.substr(0, 4) == std::string_view("PK\x03\x04", 4)) {
    add_file_problem(problems,
                     "the file is a spreadsheet (zip/xlsx), not CSV; save it as 'CSV UTF-8'");
    return true;
  }
  const auto head = bytes.substr(0, 512);
  if (head.find('\0') != std::string_view::npos) {
    add_file_problem(problems,
                     "the file contains NUL bytes (UTF-16, UTF-32 or binary?); save it "
                     "as 'CSV UTF-8'");
    return true;
  }
  return false;
}

// Upper bound for the number of rows: line breaks (LF, or CR for CR-only files) plus one.
std::size_t line_count(std::string_view bytes) {
  std::size_t lf = 0;
  std::size_t cr = 0;
  for (char c : bytes) {
    lf += c == '\n';
    cr += c == '\r';
  }
  return (lf > 0 ? lf : cr) + 1;
}

// Sorts problems (or warnings) by line and column and caps them with a "... and N more".
void sort_and_cap(std::vector<Problem>& problems, const char* what) {
  std::stable_sort(problems.begin(), problems.end(), [](const Problem& a, const Problem& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  if (problems.size() > kMaxProblems) {
    const std::size_t more = problems.size() - kMaxProblems;
    problems.resize(kMaxProblems);
    Problem p;
    p.message = "... and " + std::to_string(more) + " more " + what;
    problems.push_back(std::move(p));
  }
}

void finish(Result& result) {
  sort_and_cap(result.problems, "problems");
  sort_and_cap(result.warnings, "warnings");
}

// "'a', 'b', ... and N more" for the no-key-column problem: the non-empty headings, at most 20.
std::string list_headings(const std::vector<std::string>& headers) {
  constexpr std::size_t kShown = 20;
  std::string found;
  std::size_t shown = 0;
  std::size_t more = 0;
  for (const auto& h : headers) {
    if (h.empty()) continue;
    if (shown == kShown) {
      ++more;
      continue;
    }
    if (!found.empty()) found += ", ";
    found += "'" + h + "'";
    ++shown;
  }
  if (more > 0) found += " and " + std::to_string(more) + " more";
  return found;
}

// The reader and its reusable buffers, shared by the header and the data rows.
struct Reading {
  Reading(std::string_view bytes, char delimiter) : reader(bytes, delimiter) {}
  detail::CsvReader reader;
  detail::Record rec;
  CleanRecord cells;
  std::vector<detail::SyntaxError> syntax;
};

// Reads the header, the first non-blank record, into result.headers (cleaned cells as written,
// abbreviated for messages; in.cells keeps them whole). Returns its line, or 0 when the file has
// none.
int read_header(Reading& in, Result& result) {
  int header_line = 0;
  while (in.reader.next(in.rec, in.syntax)) {
    clean_record(in.rec, in.cells, &result.problems, nullptr);
    if (in.cells.blank() && !in.cells.bad_utf8) continue;
    header_line = in.rec.line;
    break;
  }
  for (const auto& e : in.syntax) result.problems.push_back({e.line, e.column, {}, e.message});
  in.syntax.clear();
  if (header_line == 0) return 0;
  result.headers.reserve(in.cells.spans.size());
  for (std::size_t i = 0; i < in.cells.spans.size(); ++i) {
    result.headers.push_back(text::abbreviate(in.cells.cell(i)));
  }
  return header_line;
}

// Which column holds which field; a second column for one field is a problem (the first wins).
// Unknown columns are ignored.
detail::Columns map_columns(const detail::Record& header, const CleanRecord& cells,
                            Result& result) {
  detail::Columns columns;
  columns.fill(-1);
  for (std::size_t i = 0; i < result.headers.size(); ++i) {
    const Field f = detail::match_header(cells.cell(i));
    if (f == Field::None) continue;
    int& slot = columns[static_cast<std::size_t>(f)];
    if (slot < 0) {
      slot = static_cast<int>(i);
      continue;
    }
    Problem p;
    p.line = header.cells[i].line;
    p.column = static_cast<int>(i) + 1;
    p.column_name = result.headers[i];
    p.message = "column '" + result.headers[i] + "' means " + std::string(detail::field_title(f)) +
                ", as does column " + std::to_string(slot + 1) + " ('" +
                result.headers[static_cast<std::size_t>(slot)] + "'); keep only one of them";
    result.problems.push_back(std::move(p));
  }
  return columns;
}

// Why no row could name its study with these columns; "" when some row kind is possible.
std::string missing_key_columns(const detail::Columns& columns) {
  const auto has = [&](Field f) { return columns[static_cast<std::size_t>(f)] >= 0; };
  if (has(Field::Accession) || has(Field::StudyUid) ||
      (has(Field::PatientId) && has(Field::StudyDate))) {
    return {};
  }
  return has(Field::PatientId)
             ? "the header has a Patient ID column but no Study Date column"
             : "no accession number, Study Instance UID or patient ID column found";
}

// Validates every data record after the header; returns the number of data rows (blank lines
// are not rows). `max_rows` bounds them, so that nothing is reallocated while validating.
int read_rows(Reading& in, const detail::Columns& columns, std::size_t max_rows, Result& result) {
  auto& problems = result.problems;
  detail::Validator validator(result, columns);
  validator.reserve(max_rows);
  int row_number = 0;
  while (in.reader.next(in.rec, in.syntax)) {
    for (const auto& e : in.syntax) {
      Problem p{e.line, e.column, {}, e.message};
      if (e.column > 0 && static_cast<std::size_t>(e.column) <= result.headers.size()) {
        p.column_name = result.headers[static_cast<std::size_t>(e.column - 1)];
      }
      problems.push_back(std::move(p));
    }
    const bool syntax_bad = !in.syntax.empty();
    in.syntax.clear();
    clean_record(in.rec, in.cells, &problems, &result.headers);
    if (in.cells.blank() && !in.cells.bad_utf8 && !syntax_bad) continue;  // blank line
    ++row_number;
    if (in.cells.blank()) continue;  // only junk, already reported
    validator.row(in.rec, in.cells, row_number);
  }
  validator.finish();
  return row_number;
}

}  // namespace

std::string format(const Problem& p) {
  std::string out;
  if (p.line <= 0) {
    out = "file";
  } else {
    out = "line " + std::to_string(p.line);
    if (p.column > 0) {
      out += ", column " + std::to_string(p.column);
      if (!p.column_name.empty()) out += " (" + p.column_name + ")";
    }
  }
  out += ": ";
  out += p.message;
  return out;
}

Result parse_csv(std::string_view bytes) {
  Result result;
  auto& problems = result.problems;
  if (reject_non_csv(bytes, problems)) return result;
  if (bytes.size() >= 3 && bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);

  result.delimiter = detect_delimiter(bytes);
  Reading in(bytes, result.delimiter);
  const int header_line = read_header(in, result);
  if (header_line == 0) {
    add_file_problem(problems, "the file is empty; " + detail::accepted_headings());
    finish(result);
    return result;
  }
  const detail::Columns columns = map_columns(in.rec, in.cells, result);
  const std::string missing = missing_key_columns(columns);
  if (!missing.empty()) {
    const std::string found = list_headings(result.headers);
    add_file_problem(problems, missing + " (header on line " + std::to_string(header_line) +
                                   (found.empty() ? std::string() : ": " + found) + "); " +
                                   detail::accepted_headings());
    finish(result);
    return result;
  }

  const int rows = read_rows(in, columns, line_count(bytes), result);
  if (rows == 0) {
    add_file_problem(problems, "the file has a header (line " + std::to_string(header_line) +
                                   ") but no data rows");
  }
  if (!problems.empty()) result.rows.clear();
  finish(result);
  return result;
}

}  // namespace p2x::intake
