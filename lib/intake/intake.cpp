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
  if (bytes.size() >= 2 && ((bytes[0] == '\xFF' && bytes[1] == '\xFE') ||
                            (bytes[0] == '\xFE' && bytes[1] == '\xFF'))) {
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
                     "the file contains NUL bytes (UTF-16 or binary?); save it as 'CSV UTF-8'");
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

void finish(std::vector<Problem>& problems) {
  std::stable_sort(problems.begin(), problems.end(), [](const Problem& a, const Problem& b) {
    return a.line != b.line ? a.line < b.line : a.column < b.column;
  });
  if (problems.size() > kMaxProblems) {
    const std::size_t more = problems.size() - kMaxProblems;
    problems.resize(kMaxProblems);
    Problem p;
    p.message = "... and " + std::to_string(more) + " more problems";
    problems.push_back(std::move(p));
  }
}

}  // namespace

std::string_view to_string(RowKind kind) {
  switch (kind) {
    case RowKind::Accession: return "accession";
    case RowKind::PatientDate: return "patient_date";
    case RowKind::StudyUid: return "study_uid";
  }
  return "unknown";
}

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

bool valid_label(std::string_view label) {
  if (label.empty() || label.size() > 64) return false;
  for (char c : label) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string sanitize_label(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const char c = text[pos];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (ok) {
      out.push_back(c);
      ++pos;
      continue;
    }
    char32_t cp = 0;
    const std::size_t len = detail::decode_utf8(text, pos, cp);
    out.push_back('_');  // one '_' per character, not per byte
    pos += len == 0 ? 1 : len;
  }
  return out;
}

Result parse_csv(std::string_view bytes) {
  Result result;
  auto& problems = result.problems;
  if (reject_non_csv(bytes, problems)) return result;
  if (bytes.size() >= 3 && bytes.substr(0, 3) == "\xEF\xBB\xBF") bytes.remove_prefix(3);

  result.delimiter = detect_delimiter(bytes);
  detail::CsvReader reader(bytes, result.delimiter);
  detail::Record rec;
  CleanRecord cells;
  std::vector<detail::SyntaxError> syntax;

  // Header: the first non-blank record.
  bool have_header = false;
  int header_line = 0;
  while (reader.next(rec, syntax)) {
    clean_record(rec, cells, &problems, nullptr);
    if (cells.blank() && !cells.bad_utf8) continue;
    have_header = true;
    header_line = rec.line;
    break;
  }
  for (const auto& e : syntax) problems.push_back({e.line, e.column, {}, e.message});
  syntax.clear();
  if (!have_header) {
    add_file_problem(problems, "the file is empty; " + detail::accepted_headings());
    finish(problems);
    return result;
  }
  result.headers.reserve(cells.spans.size());
  for (std::size_t i = 0; i < cells.spans.size(); ++i) {
    result.headers.emplace_back(cells.cell(i));
  }

  detail::Columns columns;
  columns.fill(-1);
  for (std::size_t i = 0; i < result.headers.size(); ++i) {
    const Field f = detail::match_header(result.headers[i]);
    if (f == Field::None) continue;  // unknown columns are ignored
    int& slot = columns[static_cast<std::size_t>(f)];
    if (slot >= 0) {
      Problem p;
      p.line = rec.cells[i].line;
      p.column = static_cast<int>(i) + 1;
      p.column_name = result.headers[i];
      p.message = "column '" + result.headers[i] + "' means " +
                  std::string(detail::field_title(f)) + ", as does column " +
                  std::to_string(slot + 1) + " ('" +
                  result.headers[static_cast<std::size_t>(slot)] + "'); keep only one of them";
      problems.push_back(std::move(p));
      continue;
    }
    slot = static_cast<int>(i);
  }
  const auto has = [&](Field f) { return columns[static_cast<std::size_t>(f)] >= 0; };
  if (!has(Field::Accession) && !has(Field::StudyUid) &&
      !(has(Field::PatientId) && has(Field::StudyDate))) {
    std::string found;
    for (const auto& h : result.headers) {
      if (h.empty()) continue;
      if (!found.empty()) found += ", ";
      found += "'" + h + "'";
    }
    std::string why = has(Field::PatientId)
                          ? "the header has a Patient ID column but no Study Date column"
                          : "no accession number, Study Instance UID or patient ID column found";
    add_file_problem(problems, why + " (header on line " + std::to_string(header_line) +
                                   (found.empty() ? std::string() : ": " + found) + "); " +
                                   detail::accepted_headings());
    finish(problems);
    return result;
  }

  // Room for every row up front: no rehashing or reallocation while validating.
  const std::size_t lines = line_count(bytes);
  detail::Validator validator(result, columns);
  validator.reserve(lines);
  int row_number = 0;
  while (reader.next(rec, syntax)) {
    for (const auto& e : syntax) {
      Problem p{e.line, e.column, {}, e.message};
      if (e.column > 0 && static_cast<std::size_t>(e.column) <= result.headers.size()) {
        p.column_name = result.headers[static_cast<std::size_t>(e.column - 1)];
      }
      problems.push_back(std::move(p));
    }
    const bool syntax_bad = !syntax.empty();
    syntax.clear();
    clean_record(rec, cells, &problems, &result.headers);
    if (cells.blank() && !cells.bad_utf8 && !syntax_bad) continue;  // blank lines: skipped
    ++row_number;
    if (cells.blank()) continue;  // only junk, already reported
    validator.row(rec, cells, row_number);
  }
  validator.finish();
  if (row_number == 0) {
    add_file_problem(problems, "the file has a header (line " + std::to_string(header_line) +
                                   ") but no data rows");
  }
  if (!problems.empty()) result.rows.clear();
  finish(problems);
  return result;
}

}  // namespace p2x::intake
